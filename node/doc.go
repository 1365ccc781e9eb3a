// Package node wires one fednode node together: its home directory (keys,
// identity, config), the badger store, the libp2p host and GossipSub topic,
// the Raft instance, the pending pool that carries declarations from gossip
// to Raft, and the local HTTP API.
//
// It is the only package that knows every other one. Nothing imports node
// except cmd/fednode and testnet, which both build nodes with New: there is
// no second way to assemble a node.
package node
