package chainstore

import (
	"bytes"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/fednode/fednode/authority"
)

// logBatch makes n rules of b accepting a, after both geneses: n+2 leaves.
func logBatch(t *testing.T, n int) [][]byte {
	t.Helper()
	a, b := newGChain(t, "alpha", seedAlpha), newGChain(t, "beta", seedBeta)
	list := []*authority.Signed{a.genesis, b.genesis}
	for i := 0; i < n; i++ {
		list = append(list, b.rule(t, a.id()))
	}
	return envs(list...)
}

// TestLogFollowsGraph: every accepted declaration is the next leaf, refused
// ones are not, the root equals RFC 9162's over the envelopes, and merkle's
// own verifiers accept the store's proofs.
func TestLogFollowsGraph(t *testing.T) {
	s := newMemStore(t)
	batch := logBatch(t, 10)
	withJunk := append(append([][]byte{}, batch[:5]...), []byte("garbage"), batch[3])
	withJunk = append(withJunk, batch[5:]...)
	mustApplyAll := s.ApplyDeclarations(1, withJunk)
	refused := 0
	for _, err := range mustApplyAll {
		if err != nil {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("refused %d, want 2 (garbage and a duplicate)", refused)
	}
	size, root, err := s.LogRoot()
	if err != nil {
		t.Fatal(err)
	}
	if size != uint64(len(batch)) || size != s.Version() {
		t.Fatalf("log size %d, graph version %d, want %d", size, s.Version(), len(batch))
	}
	if want := naiveRoot(batch); !bytes.Equal(root, want) {
		t.Fatalf("root %x, want the RFC 9162 root %x", root, want)
	}
	for i, env := range batch {
		sd, err := authority.Parse(env)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := s.LogIndex(sd.ID)
		if err != nil || idx != uint64(i) {
			t.Fatalf("LogIndex(%d) = %d, %v", i, idx, err)
		}
		for sz := uint64(i + 1); sz <= size; sz++ {
			p, err := s.InclusionProof(uint64(i), sz)
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.LogRootAt(sz)
			if err != nil {
				t.Fatal(err)
			}
			if want := naiveRoot(batch[:sz]); !bytes.Equal(r, want) {
				t.Fatalf("root at %d = %x, want %x", sz, r, want)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), sz, rfc6962.DefaultHasher.HashLeaf(env), p, r); err != nil {
				t.Fatalf("inclusion of %d at size %d: %v", i, sz, err)
			}
		}
	}
	for m := uint64(1); m <= size; m++ {
		p, err := s.ConsistencyProof(m, size)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := s.LogRootAt(m)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, size, p, old, root); err != nil {
			t.Fatalf("consistency %d -> %d: %v", m, size, err)
		}
	}
	if _, err := s.InclusionProof(0, size+1); err == nil {
		t.Fatal("a proof for a size beyond the log was served")
	}
}

// TestLogSurvivesRestartAndRestore: the same root after Close/Open, after a
// snapshot restore into another store, and the tree keeps growing from there.
func TestLogSurvivesRestartAndRestore(t *testing.T) {
	dir := t.TempDir()
	batch := logBatch(t, 20)
	s := openDisk(t, dir)
	mustApply(t, s, 1, batch[:12])
	_, root12, _ := s.LogRoot()
	snap := snapshotBytes(t, s)
	s.Close()

	s = openDisk(t, dir)
	defer s.Close()
	if _, root, _ := s.LogRoot(); !bytes.Equal(root, root12) {
		t.Fatalf("root after restart %x, want %x", root, root12)
	}
	mustApply(t, s, 2, batch[12:])
	_, full, _ := s.LogRoot()
	if want := naiveRoot(batch); !bytes.Equal(full, want) {
		t.Fatalf("root after growing past the restart %x, want %x", full, want)
	}

	other := newMemStore(t)
	mustApply(t, other, 1, logBatch(t, 3)[:2])
	mustRestore(t, other, snap)
	if size, root, _ := other.LogRoot(); size != 12 || !bytes.Equal(root, root12) {
		t.Fatalf("restored log: size %d root %x, want 12 %x", size, root, root12)
	}
	mustApply(t, other, 2, batch[12:])
	if _, root, _ := other.LogRoot(); !bytes.Equal(root, full) {
		t.Fatalf("restored then grown: root %x, want %x", root, full)
	}
}

// naiveRoot is RFC 9162 §2.1.1's MTH, written out from the definition.
func naiveRoot(leaves [][]byte) []byte {
	h := rfc6962.DefaultHasher
	switch len(leaves) {
	case 0:
		return h.EmptyRoot()
	case 1:
		return h.HashLeaf(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return h.HashChildren(naiveRoot(leaves[:k]), naiveRoot(leaves[k:]))
}
