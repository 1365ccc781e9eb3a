package tlog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size of every hash in the tree (SHA-256).
const HashSize = sha256.Size

// Errors of the log. Each is returned wrapped with the detail; use errors.Is.
var (
	// ErrInvalidProof: an inclusion or consistency proof does not verify
	// against the given root(s), or is malformed.
	ErrInvalidProof = errors.New("invalid proof")
	// ErrOutOfRange: a leaf index at or beyond the tree size, or an old size
	// beyond the new one.
	ErrOutOfRange = errors.New("out of range")
	// ErrBadState: a stored frontier or node set that cannot be the tree it
	// claims to be (wrong count or hash size).
	ErrBadState = errors.New("bad stored tree state")
	// ErrNodeNotFound: a NodeStore lacks a node a proof needs (the tree is
	// smaller than asked, or the store lost nodes).
	ErrNodeNotFound = errors.New("node not found")
)

// rangeFactory is shared by every range of the package: compact ranges merge
// only with ranges of the same factory.
var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// LeafHash is the RFC 9162 leaf hash of leafData: SHA-256(0x00 || leafData).
// In fednode leafData is a declaration envelope.
func LeafHash(leafData []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(leafData) }

// EmptyRoot is the root of the empty tree: SHA-256 of nothing.
func EmptyRoot() []byte { return rfc6962.DefaultHasher.EmptyRoot() }

// NodeStore reads the hashes of perfect subtrees written through a
// NodeWriter (the visit function of Appender.Append).
//
// GetNodes returns the hash of each id, in the order of ids, or an error if
// any is missing (wrap ErrNodeNotFound so callers can tell). The returned
// outer slice and the hashes belong to the caller: tlog reorders the outer
// slice in place and returns hashes inside proofs. tlog calls GetNodes from
// the caller's goroutine only; an implementation shared between goroutines
// must be safe for concurrent use itself.
type NodeStore interface {
	GetNodes(ids []compact.NodeID) ([][]byte, error)
}

// NodeWriter persists a completed node. Its PutNode method has the shape of
// Append's visit function, so a store can be passed as store.PutNode. The
// hash is never modified after the call and may be retained. A node's hash
// never changes: writing an existing id with another hash means the log
// diverged.
type NodeWriter interface {
	PutNode(id compact.NodeID, hash []byte)
}

// Appender grows the tree one leaf at a time from its compact range (the
// frontier), without reading any stored node. Make one with NewAppender; the
// zero value is not usable. It is not safe for concurrent use: it follows the
// graph, which applies declarations one at a time.
type Appender struct {
	// Invariant: r.Begin() == 0, r.End() is the tree size, and r.Hashes()
	// are the roots of the perfect subtrees covering [0, size), left to
	// right, each HashSize bytes.
	r *compact.Range
}

// NewAppender resumes the tree of size leaves from the frontier that
// Frontier returned at that size. NewAppender(0, nil) starts an empty tree.
// It copies frontier.
func NewAppender(size uint64, frontier [][]byte) (*Appender, error) {
	if got, want := len(frontier), compact.RangeSize(0, size); got != want {
		return nil, fmt.Errorf("tlog: resume at size %d: %w: frontier has %d hashes, want %d", size, ErrBadState, got, want)
	}
	hashes := make([][]byte, len(frontier))
	for i, h := range frontier {
		if len(h) != HashSize {
			return nil, fmt.Errorf("tlog: resume at size %d: %w: frontier hash %d is %d bytes, want %d", size, ErrBadState, i, len(h), HashSize)
		}
		hashes[i] = bytes.Clone(h)
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("tlog: resume at size %d: %w: %w", size, ErrBadState, err)
	}
	return &Appender{r: r}, nil
}

// Size is the number of leaves: in fednode, the graph version.
func (a *Appender) Size() uint64 { return a.r.End() }

// Append adds leafData as the next leaf. visit, if not nil, is called with
// every node the leaf completes, the leaf itself first, then each perfect
// subtree it closes, bottom up; these are exactly the nodes a NodeStore must
// serve for proofs. The caller persists them together with the frontier
// (atomically with the declaration, so that a restart resumes a consistent
// tree). visit must not modify hash.
func (a *Appender) Append(leafData []byte, visit func(id compact.NodeID, hash []byte)) error {
	if err := a.r.Append(LeafHash(leafData), visit); err != nil {
		// Only a corrupted range can fail, and NewAppender refuses those.
		return fmt.Errorf("tlog: append leaf %d: %w: %w", a.r.End(), ErrBadState, err)
	}
	return nil
}

// Root is the root hash of the current tree (EmptyRoot at size 0).
func (a *Appender) Root() ([]byte, error) {
	if a.r.End() == 0 {
		return EmptyRoot(), nil
	}
	root, err := a.r.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("tlog: root at size %d: %w: %w", a.r.End(), ErrBadState, err)
	}
	return root, nil
}

// Frontier returns a copy of the compact range of the current tree: the
// roots of its perfect subtrees, left to right, at most 64 hashes (one per
// set bit of Size). Stored with Size, it is what NewAppender resumes from.
func (a *Appender) Frontier() [][]byte {
	h := a.r.Hashes()
	out := make([][]byte, len(h))
	for i := range h {
		out[i] = bytes.Clone(h[i])
	}
	return out
}

// InclusionProof returns the RFC 9162 inclusion proof (audit path) of leaf
// index in the tree of the given size, from the nodes in ns. The store may
// hold a larger tree: perfect subtrees do not change as the tree grows.
func InclusionProof(ns NodeStore, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("tlog: inclusion proof: %w: leaf %d in a tree of %d", ErrOutOfRange, index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("tlog: inclusion proof of leaf %d at size %d: %w: %w", index, size, ErrOutOfRange, err)
	}
	p, err := build(ns, nodes)
	if err != nil {
		return nil, fmt.Errorf("tlog: inclusion proof of leaf %d at size %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof returns the RFC 9162 consistency proof between the trees
// of oldSize and newSize leaves, from the nodes in ns. It is empty when
// oldSize is 0 or equals newSize.
func ConsistencyProof(ns NodeStore, oldSize, newSize uint64) ([][]byte, error) {
	if oldSize > newSize {
		return nil, fmt.Errorf("tlog: consistency proof: %w: old size %d > new size %d", ErrOutOfRange, oldSize, newSize)
	}
	nodes, err := proof.Consistency(oldSize, newSize)
	if err != nil {
		return nil, fmt.Errorf("tlog: consistency proof %d to %d: %w: %w", oldSize, newSize, ErrOutOfRange, err)
	}
	p, err := build(ns, nodes)
	if err != nil {
		return nil, fmt.Errorf("tlog: consistency proof %d to %d: %w", oldSize, newSize, err)
	}
	return p, nil
}

// RootAt returns the root of the tree at a past (or the current) size, from
// the nodes in ns: the perfect subtrees covering [0, size), folded right to
// left.
func RootAt(ns NodeStore, size uint64) ([]byte, error) {
	if size == 0 {
		return EmptyRoot(), nil
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := fetch(ns, ids)
	if err != nil {
		return nil, fmt.Errorf("tlog: root at size %d: %w", size, err)
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("tlog: root at size %d: %w: %w", size, ErrBadState, err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("tlog: root at size %d: %w: %w", size, ErrBadState, err)
	}
	return root, nil
}

// build fetches the nodes of a proof and hashes the ephemeral node, if any,
// from its children.
func build(ns NodeStore, nodes proof.Nodes) ([][]byte, error) {
	if len(nodes.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := fetch(ns, nodes.IDs)
	if err != nil {
		return nil, err
	}
	p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	return p, nil
}

// fetch reads ids from ns and checks that the store kept its contract.
func fetch(ns NodeStore, ids []compact.NodeID) ([][]byte, error) {
	hashes, err := ns.GetNodes(ids)
	if err != nil {
		return nil, fmt.Errorf("reading %d nodes: %w", len(ids), err)
	}
	if len(hashes) != len(ids) {
		return nil, fmt.Errorf("%w: store returned %d hashes for %d nodes", ErrBadState, len(hashes), len(ids))
	}
	for i, h := range hashes {
		if len(h) != HashSize {
			return nil, fmt.Errorf("%w: node (level %d, index %d) is %d bytes, want %d", ErrBadState, ids[i].Level, ids[i].Index, len(h), HashSize)
		}
	}
	return hashes, nil
}

// VerifyInclusion checks that leafData is leaf index of the tree of size
// leaves whose root is root, by the audit path proof. It needs nothing but
// its arguments, so auditors and edge sites run it offline.
func VerifyInclusion(leafData []byte, index, size uint64, proofHashes [][]byte, root []byte) error {
	if index >= size {
		return fmt.Errorf("tlog: verify inclusion: %w: %w: leaf %d in a tree of %d", ErrInvalidProof, ErrOutOfRange, index, size)
	}
	if err := checkHashes(root, proofHashes); err != nil {
		return fmt.Errorf("tlog: verify inclusion of leaf %d at size %d: %w", index, size, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, LeafHash(leafData), proofHashes, root); err != nil {
		return fmt.Errorf("tlog: verify inclusion of leaf %d at size %d: %w: %s", index, size, ErrInvalidProof, describe(err))
	}
	return nil
}

// VerifyConsistency checks that the tree of newSize leaves with root newRoot
// extends the tree of oldSize leaves with root oldRoot, by proof. Unlike
// merkle's verifier it also insists that the root of size 0 is EmptyRoot, so
// that no bogus empty checkpoint passes as consistent with everything.
func VerifyConsistency(oldSize, newSize uint64, oldRoot, newRoot []byte, proofHashes [][]byte) error {
	if oldSize > newSize {
		return fmt.Errorf("tlog: verify consistency: %w: %w: old size %d > new size %d", ErrInvalidProof, ErrOutOfRange, oldSize, newSize)
	}
	if err := checkHashes(oldRoot, proofHashes); err != nil {
		return fmt.Errorf("tlog: verify consistency %d to %d: old root: %w", oldSize, newSize, err)
	}
	if err := checkHashes(newRoot, nil); err != nil {
		return fmt.Errorf("tlog: verify consistency %d to %d: new root: %w", oldSize, newSize, err)
	}
	if oldSize == 0 && !bytes.Equal(oldRoot, EmptyRoot()) {
		return fmt.Errorf("tlog: verify consistency %d to %d: %w: the root of the empty tree is %x, not %x", oldSize, newSize, ErrInvalidProof, EmptyRoot(), oldRoot)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, oldSize, newSize, proofHashes, oldRoot, newRoot); err != nil {
		return fmt.Errorf("tlog: verify consistency %d to %d: %w: %s", oldSize, newSize, ErrInvalidProof, describe(err))
	}
	return nil
}

// describe words a merkle verification error for one log line: its root
// mismatch prints the hashes as decimal byte lists over several lines.
func describe(err error) string {
	var mismatch proof.RootMismatchError
	if errors.As(err, &mismatch) {
		return fmt.Sprintf("the proof leads to root %x, not %x", mismatch.CalculatedRoot, mismatch.ExpectedRoot)
	}
	return err.Error()
}

// checkHashes refuses a root or proof hash of the wrong size before any
// hashing, so that oversized input costs nothing.
func checkHashes(root []byte, proofHashes [][]byte) error {
	if len(root) != HashSize {
		return fmt.Errorf("%w: root is %d bytes, want %d", ErrInvalidProof, len(root), HashSize)
	}
	for i, h := range proofHashes {
		if len(h) != HashSize {
			return fmt.Errorf("%w: proof hash %d is %d bytes, want %d", ErrInvalidProof, i, len(h), HashSize)
		}
	}
	return nil
}
