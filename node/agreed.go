package node

// AgreedSince calls fn for each declaration of the agreed graph with a
// version above after, in acceptance order, up to the current version; env
// is valid only during the call. It reads this replica only (for benches
// and tools that follow the graph as it grows).
func (n *Node) AgreedSince(after uint64, fn func(version uint64, env []byte) error) error {
	return n.store.Declarations(after, 0, fn)
}
