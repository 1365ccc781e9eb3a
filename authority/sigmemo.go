package authority

import (
	"bytes"
	"sync"
)

// envMemo remembers, for one parsed envelope, which of its signatures
// verified and with which key. Signature verification is a pure function
// of the envelope's bytes and the key, and a Signed never changes, so a
// second check of the same signature with the same key may reuse the
// first answer: a node verifies a declaration when it arrives (Submit, the
// gossip validator) and again when Raft applies it, and the second check
// then costs a comparison instead of a signature verification. Only good
// signatures are remembered; which keys may sign what is decided afresh by
// every caller (Graph.Check judges the key set at the declaration's
// position), so nothing but the arithmetic is skipped.
//
// WARNING: the memo lives and dies with its Signed; it is not a cache
// across envelopes, and a Signed re-parsed from the same bytes starts
// empty.
type envMemo struct {
	mu sync.Mutex
	// good lists (signature index, key) pairs that verified.
	// Invariant: at most one entry per signature index and key; at most
	// MaxSignatures * (keys tried) entries, so tiny.
	good []memoEntry
	// one backs good for its first entry (a signature of one key, the
	// usual case), so that the memo costs no allocation of its own.
	one [1]memoEntry
}

// signedWithMemo is a Signed and its memo, allocated together by Parse.
type signedWithMemo struct {
	s Signed
	m envMemo
}

type memoEntry struct {
	i   int
	alg Alg
	key []byte // the PublicKey's bytes (immutable)
}

// has reports whether signature i verified with k before. A nil memo
// remembers nothing.
func (m *envMemo) has(i int, k PublicKey) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.good {
		if e.i == i && e.alg == k.Alg && bytes.Equal(e.key, k.Key) {
			return true
		}
	}
	return false
}

// add records that signature i verified with k.
func (m *envMemo) add(i int, k PublicKey) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.good {
		if e.i == i && e.alg == k.Alg && bytes.Equal(e.key, k.Key) {
			return
		}
	}
	if m.good == nil {
		m.good = m.one[:0]
	}
	m.good = append(m.good, memoEntry{i: i, alg: k.Alg, key: k.Key})
}
