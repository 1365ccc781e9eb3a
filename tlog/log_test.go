package tlog_test

import (
	"bytes"
	"errors"
	"math/bits"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/fednode/fednode/tlog"
)

func TestRootsMatchRFC9162(t *testing.T) {
	ds := leaves(100)
	_, roots := tree(t, ds)
	for n := 0; n <= len(ds); n++ {
		if want := mth(ds[:n]); !bytes.Equal(roots[n], want) {
			t.Errorf("size %d: root %x, RFC 9162 MTH %x", n, roots[n], want)
		}
	}
}

func TestLeafHashAndEmptyRoot(t *testing.T) {
	if got, want := tlog.LeafHash([]byte("x")), mth([][]byte{[]byte("x")}); !bytes.Equal(got, want) {
		t.Errorf("LeafHash = %x, want %x", got, want)
	}
	if got, want := tlog.EmptyRoot(), mth(nil); !bytes.Equal(got, want) {
		t.Errorf("EmptyRoot = %x, want %x", got, want)
	}
}

// TestResumeFromFrontier stops the appender at every size, resumes a new one
// from the stored size and frontier alone, and checks that the rest of the
// tree (roots and nodes) comes out the same.
func TestResumeFromFrontier(t *testing.T) {
	const n = 70
	ds := leaves(n)
	full, roots := tree(t, ds)
	for stop := 0; stop <= n; stop++ {
		a, err := tlog.NewAppender(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		ms := tlog.NewMemStore()
		for _, d := range ds[:stop] {
			if err := a.Append(d, ms.PutNode); err != nil {
				t.Fatal(err)
			}
		}
		size, frontier := a.Size(), a.Frontier()
		if got, want := len(frontier), bits.OnesCount64(size); got != want {
			t.Fatalf("stop %d: frontier has %d hashes, want %d", stop, got, want)
		}
		b, err := tlog.NewAppender(size, frontier)
		if err != nil {
			t.Fatalf("stop %d: NewAppender: %v", stop, err)
		}
		for i, d := range ds[stop:] {
			if err := b.Append(d, ms.PutNode); err != nil {
				t.Fatal(err)
			}
			got, err := b.Root()
			if err != nil {
				t.Fatal(err)
			}
			if want := roots[stop+i+1]; !bytes.Equal(got, want) {
				t.Fatalf("stop %d: resumed root at %d = %x, want %x", stop, stop+i+1, got, want)
			}
		}
		if ms.Len() != full.Len() {
			t.Errorf("stop %d: resumed store has %d nodes, uninterrupted one %d", stop, ms.Len(), full.Len())
		}
	}
}

func TestFrontierIsACopy(t *testing.T) {
	a, _ := tlog.NewAppender(0, nil)
	for i := range 5 {
		_ = a.Append(leaf(uint64(i), 40), nil)
	}
	before, _ := a.Root()
	f := a.Frontier()
	for _, h := range f {
		h[0] ^= 0xff
	}
	b, err := tlog.NewAppender(a.Size(), a.Frontier())
	if err != nil {
		t.Fatal(err)
	}
	after, _ := a.Root()
	resumed, _ := b.Root()
	if !bytes.Equal(before, after) || !bytes.Equal(before, resumed) {
		t.Errorf("changing a returned frontier changed the appender")
	}
}

func TestNewAppenderRefusesBadState(t *testing.T) {
	h := make([]byte, tlog.HashSize)
	tests := []struct {
		name     string
		size     uint64
		frontier [][]byte
	}{
		{name: "hashes for an empty tree", size: 0, frontier: [][]byte{h}},
		{name: "too few hashes", size: 3, frontier: [][]byte{h}},
		{name: "too many hashes", size: 4, frontier: [][]byte{h, h}},
		{name: "short hash", size: 1, frontier: [][]byte{h[:31]}},
		{name: "nil hash", size: 2, frontier: [][]byte{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tlog.NewAppender(tt.size, tt.frontier); !errors.Is(err, tlog.ErrBadState) {
				t.Errorf("NewAppender(%d, %d hashes) = %v, want ErrBadState", tt.size, len(tt.frontier), err)
			}
		})
	}
}

func TestVisitReportsEveryPerfectSubtree(t *testing.T) {
	const n = 37
	ms, _ := tree(t, leaves(n))
	// Nodes of a tree of n leaves: floor(n/2^l) at each level l.
	want := 0
	for l := 0; n>>l > 0; l++ {
		want += n >> l
		ids := make([]compact.NodeID, n>>l)
		for i := range ids {
			ids[i] = compact.NewNodeID(uint(l), uint64(i))
		}
		if _, err := ms.GetNodes(ids); err != nil {
			t.Errorf("level %d: %v", l, err)
		}
	}
	if ms.Len() != want {
		t.Errorf("store has %d nodes, want %d", ms.Len(), want)
	}
	if _, err := ms.GetNodes([]compact.NodeID{compact.NewNodeID(0, n)}); !errors.Is(err, tlog.ErrNodeNotFound) {
		t.Errorf("GetNodes of leaf %d = %v, want ErrNodeNotFound", n, err)
	}
}

// TestProofsVerifyWithMerkle checks every inclusion and consistency proof up
// to size 40 with transparency-dev/merkle's own verifiers, against the
// naive model's roots, and with ours.
func TestProofsVerifyWithMerkle(t *testing.T) {
	const max = 40
	ds := leaves(max)
	ms, roots := tree(t, ds)
	h := rfc6962.DefaultHasher
	for size := uint64(1); size <= max; size++ {
		root := mth(ds[:size])
		for i := uint64(0); i < size; i++ {
			p, err := tlog.InclusionProof(ms, i, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, size, err)
			}
			if err := proof.VerifyInclusion(h, i, size, h.HashLeaf(ds[i]), p, root); err != nil {
				t.Errorf("merkle rejects inclusion of %d at %d: %v", i, size, err)
			}
			if err := tlog.VerifyInclusion(ds[i], i, size, p, root); err != nil {
				t.Errorf("VerifyInclusion(%d, %d): %v", i, size, err)
			}
		}
	}
	for n := uint64(0); n <= max; n++ {
		for m := uint64(0); m <= n; m++ {
			p, err := tlog.ConsistencyProof(ms, m, n)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
			}
			if err := proof.VerifyConsistency(h, m, n, p, mth(ds[:m]), mth(ds[:n])); err != nil {
				t.Errorf("merkle rejects consistency %d to %d: %v", m, n, err)
			}
			if err := tlog.VerifyConsistency(m, n, roots[m], roots[n], p); err != nil {
				t.Errorf("VerifyConsistency(%d, %d): %v", m, n, err)
			}
		}
	}
}

func TestRootAt(t *testing.T) {
	const max = 64
	ms, roots := tree(t, leaves(max))
	for size := uint64(0); size <= max; size++ {
		got, err := tlog.RootAt(ms, size)
		if err != nil {
			t.Fatalf("RootAt(%d): %v", size, err)
		}
		if !bytes.Equal(got, roots[size]) {
			t.Errorf("RootAt(%d) = %x, appender had %x", size, got, roots[size])
		}
	}
	if _, err := tlog.RootAt(ms, max+1); !errors.Is(err, tlog.ErrNodeNotFound) {
		t.Errorf("RootAt beyond the tree = %v, want ErrNodeNotFound", err)
	}
}

func TestProofRequestsRefused(t *testing.T) {
	ms, _ := tree(t, leaves(10))
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{name: "inclusion index at size", call: func() error { _, err := tlog.InclusionProof(ms, 10, 10); return err }, want: tlog.ErrOutOfRange},
		{name: "inclusion in empty tree", call: func() error { _, err := tlog.InclusionProof(ms, 0, 0); return err }, want: tlog.ErrOutOfRange},
		{name: "inclusion beyond the store", call: func() error { _, err := tlog.InclusionProof(ms, 3, 11); return err }, want: tlog.ErrNodeNotFound},
		{name: "consistency old above new", call: func() error { _, err := tlog.ConsistencyProof(ms, 5, 4); return err }, want: tlog.ErrOutOfRange},
		{name: "consistency beyond the store", call: func() error { _, err := tlog.ConsistencyProof(ms, 3, 12); return err }, want: tlog.ErrNodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func flip(p [][]byte, i int) [][]byte {
	q := make([][]byte, len(p))
	for j := range p {
		q[j] = bytes.Clone(p[j])
	}
	q[i][0] ^= 0x01
	return q
}

func TestVerifyInclusionRefusesTampering(t *testing.T) {
	const size = 21
	ds := leaves(size)
	ms, roots := tree(t, ds)
	root := roots[size]
	p, err := tlog.InclusionProof(ms, 6, size)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) < 3 {
		t.Fatalf("proof of leaf 6 at size %d has only %d hashes", size, len(p))
	}
	tests := []struct {
		name  string
		leaf  []byte
		index uint64
		size  uint64
		proof [][]byte
		root  []byte
	}{
		{name: "first proof hash flipped", leaf: ds[6], index: 6, size: size, proof: flip(p, 0), root: root},
		{name: "last proof hash flipped", leaf: ds[6], index: 6, size: size, proof: flip(p, len(p)-1), root: root},
		{name: "wrong index", leaf: ds[6], index: 7, size: size, proof: p, root: root},
		{name: "index beyond size", leaf: ds[6], index: size, size: size, proof: p, root: root},
		{name: "wrong leaf", leaf: ds[5], index: 6, size: size, proof: p, root: root},
		{name: "leaf with one more byte", leaf: append(bytes.Clone(ds[6]), 0), index: 6, size: size, proof: p, root: root},
		// A size of the same proof shape (22 here) would verify: an audit
		// path does not authenticate the size, the signed checkpoint does.
		{name: "size of another shape", leaf: ds[6], index: 6, size: 2 * size, proof: p, root: roots[size]},
		{name: "root of another size", leaf: ds[6], index: 6, size: size, proof: p, root: roots[size-1]},
		{name: "proof missing a hash", leaf: ds[6], index: 6, size: size, proof: p[:len(p)-1], root: root},
		{name: "proof with an extra hash", leaf: ds[6], index: 6, size: size, proof: append(append([][]byte{}, p...), p[0]), root: root},
		{name: "short proof hash", leaf: ds[6], index: 6, size: size, proof: append([][]byte{p[0][:31]}, p[1:]...), root: root},
		{name: "short root", leaf: ds[6], index: 6, size: size, proof: p, root: root[:31]},
		{name: "no root", leaf: ds[6], index: 6, size: size, proof: p, root: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tlog.VerifyInclusion(tt.leaf, tt.index, tt.size, tt.proof, tt.root); !errors.Is(err, tlog.ErrInvalidProof) {
				t.Errorf("VerifyInclusion = %v, want ErrInvalidProof", err)
			}
		})
	}
	if err := tlog.VerifyInclusion(ds[6], 6, size, p, root); err != nil {
		t.Errorf("the untampered proof does not verify: %v", err)
	}
}

func TestVerifyConsistencyRefusesTampering(t *testing.T) {
	const m, n = 6, 27
	ms, roots := tree(t, leaves(n))
	p, err := tlog.ConsistencyProof(ms, m, n)
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{7}, tlog.HashSize)
	tests := []struct {
		name             string
		oldSize, newSize uint64
		oldRoot, newRoot []byte
		proof            [][]byte
	}{
		{name: "proof hash flipped", oldSize: m, newSize: n, oldRoot: roots[m], newRoot: roots[n], proof: flip(p, 1)},
		{name: "wrong old root", oldSize: m, newSize: n, oldRoot: roots[m+1], newRoot: roots[n], proof: p},
		{name: "wrong new root", oldSize: m, newSize: n, oldRoot: roots[m], newRoot: roots[n-1], proof: p},
		{name: "wrong old size", oldSize: m + 1, newSize: n, oldRoot: roots[m], newRoot: roots[n], proof: p},
		{name: "old above new", oldSize: n, newSize: m, oldRoot: roots[n], newRoot: roots[m], proof: p},
		{name: "truncated proof", oldSize: m, newSize: n, oldRoot: roots[m], newRoot: roots[n], proof: p[:len(p)-1]},
		{name: "same size, other root", oldSize: n, newSize: n, oldRoot: roots[n], newRoot: other, proof: nil},
		{name: "same size, non-empty proof", oldSize: n, newSize: n, oldRoot: roots[n], newRoot: roots[n], proof: p[:1]},
		{name: "empty old tree with a bogus root", oldSize: 0, newSize: n, oldRoot: other, newRoot: roots[n], proof: nil},
		{name: "empty old tree with a proof", oldSize: 0, newSize: n, oldRoot: roots[0], newRoot: roots[n], proof: p},
		{name: "short new root", oldSize: m, newSize: n, oldRoot: roots[m], newRoot: roots[n][:5], proof: p},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tlog.VerifyConsistency(tt.oldSize, tt.newSize, tt.oldRoot, tt.newRoot, tt.proof); !errors.Is(err, tlog.ErrInvalidProof) {
				t.Errorf("VerifyConsistency = %v, want ErrInvalidProof", err)
			}
		})
	}
}

// TestProofsDoNotAliasTheStore checks that a caller scribbling on a proof
// cannot corrupt the store that served it.
func TestProofsDoNotAliasTheStore(t *testing.T) {
	ms, roots := tree(t, leaves(9))
	p, err := tlog.InclusionProof(ms, 0, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range p {
		h[0] ^= 0xff
	}
	if got, _ := tlog.RootAt(ms, 8); !bytes.Equal(got, roots[8]) {
		t.Errorf("root changed after the proof was modified")
	}
}

func TestMemStorePanicsOnRewrite(t *testing.T) {
	ms := tlog.NewMemStore()
	id := compact.NewNodeID(0, 0)
	ms.PutNode(id, bytes.Repeat([]byte{1}, tlog.HashSize))
	ms.PutNode(id, bytes.Repeat([]byte{1}, tlog.HashSize)) // the same hash again is fine
	defer func() {
		if recover() == nil {
			t.Errorf("rewriting a node with another hash did not panic")
		}
	}()
	ms.PutNode(id, bytes.Repeat([]byte{2}, tlog.HashSize))
}
