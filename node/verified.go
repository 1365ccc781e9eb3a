package node

import (
	"sync"

	"github.com/fednode/fednode/authority"
)

// Parsed declarations are handed on rather than parsed again: the gossip
// validator's to delivery, the pool's to the FSM. Each keeps the memo of
// the signatures it verified (authority's sigMemo), so the FSM's check of a
// declaration this node verified on arrival skips the arithmetic while
// still judging its keys at its position in the graph.

// validatedCap bounds the declarations held between the gossip validator
// and delivery.
const validatedCap = 8192

// validatedSet holds declarations the gossip validator accepted until
// delivery takes them.
type validatedSet struct {
	mu sync.Mutex
	m  map[authority.ID]*authority.Signed // Invariant: len(m) <= validatedCap.
}

func (v *validatedSet) put(sd *authority.Signed) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= validatedCap {
		// Full of entries never delivered (duplicates the mesh dropped):
		// start again; delivery then parses, as it would without us.
		v.m = make(map[authority.ID]*authority.Signed)
	}
	v.m[sd.ID] = sd
}

func (v *validatedSet) take(id authority.ID) *authority.Signed {
	v.mu.Lock()
	defer v.mu.Unlock()
	sd := v.m[id]
	delete(v.m, id)
	return sd
}
