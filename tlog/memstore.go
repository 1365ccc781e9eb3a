package tlog

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// MemStore is a NodeStore and NodeWriter in memory: the twin of chainstore's
// badger-backed store, for tests and for the offline verifier (which rebuilds
// the tree from a bundle's declarations). It is safe for concurrent use.
type MemStore struct {
	mu sync.RWMutex
	// Invariant: a node, once written, keeps its hash.
	nodes map[compact.NodeID][HashSize]byte
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{nodes: make(map[compact.NodeID][HashSize]byte)}
}

// PutNode stores a node. It panics if hash is not HashSize bytes or if the
// node is already stored with another hash: only an Appender writes nodes, so
// either means the program or the log is broken, not the input.
func (m *MemStore) PutNode(id compact.NodeID, hash []byte) {
	if len(hash) != HashSize {
		panic(fmt.Sprintf("tlog: MemStore.PutNode(level %d, index %d): hash is %d bytes, want %d", id.Level, id.Index, len(hash), HashSize))
	}
	var h [HashSize]byte
	copy(h[:], hash)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.nodes[id]; ok && old != h {
		panic(fmt.Sprintf("tlog: MemStore.PutNode(level %d, index %d): node rewritten with another hash: the log diverged", id.Level, id.Index))
	}
	m.nodes[id] = h
}

// GetNodes implements NodeStore. The hashes are fresh copies.
func (m *MemStore) GetNodes(ids []compact.NodeID) ([][]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := m.nodes[id]
		if !ok {
			return nil, fmt.Errorf("tlog: %w: level %d, index %d", ErrNodeNotFound, id.Level, id.Index)
		}
		out[i] = bytes.Clone(h[:])
	}
	return out, nil
}

// Len is the number of stored nodes (2n minus the number of set bits of n for
// a tree of n leaves built from empty; fewer for one resumed from a frontier).
func (m *MemStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.nodes)
}
