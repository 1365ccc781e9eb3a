package node

// Witnessing: every node gossips the signed checkpoint of its replica's log
// on gossip.CheckpointsTopic and cosigns the checkpoints of others whose
// root it computed too. A checkpoint of the same size with a different root
// is a split view: it is kept as evidence, gossiped, shown in status and
// metrics, and the node refuses to export bundles until an operator looks.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/gossip"
	"github.com/fednode/fednode/tlog"
)

const (
	// witnessInterval is how often a node publishes its checkpoint when its
	// log grew, and rechecks checkpoints of sizes it had not reached.
	witnessInterval = 500 * time.Millisecond
	// maxCheckpointNote bounds a checkpoint message on the topic: room for
	// a dozen hybrid signatures (about 4.5 KiB each in base64).
	maxCheckpointNote = 64 << 10
	// keepCosigned is how many recent sizes keep their cosigned notes.
	keepCosigned = 64
	// maxFuture bounds checkpoints held for sizes this replica lacks.
	maxFuture = 256
)

// ErrSplitView: this node has seen two checkpoints of one size with
// different roots, signed by consortium authorities.
var ErrSplitView = errors.New("node: split view of the transparency log")

// witnessState is what witnessing keeps. The zero value is ready.
type witnessState struct {
	mu sync.Mutex
	// cosigned maps a size to the note of this replica's root at that size
	// with every valid signature collected so far.
	cosigned  map[uint64][]byte
	published uint64            // the last size this node published its own checkpoint for
	cosent    map[uint64]bool   // sizes whose cosignature this node has published
	future    map[uint64][]byte // notes of sizes this replica has not reached
	// split is the first split view seen; nil if none. Invariant: once set
	// it stays set until the operator restarts the node.
	split *tlog.SplitViewEvidence
}

// witnesses are the checkpoint signers this node knows: every authority in
// its graph, by its genesis name and its current root keys (any algorithm:
// tlog verifies ML-DSA-65 and hybrid notes too; retired keys sign nothing).
func (n *Node) witnesses() []tlog.Witness {
	var out []tlog.Witness
	n.store.View(func(v authority.View) {
		for _, a := range v.Authorities() {
			for _, k := range a.RootKeys {
				out = append(out, tlog.Witness{Name: a.Name, Key: k})
			}
		}
	})
	return out
}

// openPeerCheckpoint verifies a checkpoint note from the mesh: it must name
// this log and carry at least one valid signature of a known authority.
func (n *Node) openPeerCheckpoint(note []byte) (tlog.Checkpoint, []string, error) {
	origin, err := n.LogOrigin()
	if err != nil {
		return tlog.Checkpoint{}, nil, err
	}
	c, signers, err := tlog.OpenCheckpoint(note, n.witnesses())
	if err != nil {
		return c, nil, err
	}
	if c.Origin != origin {
		return c, nil, fmt.Errorf("node: checkpoint of log %q, this node keeps %q", c.Origin, origin)
	}
	return c, signers, nil
}

func (n *Node) validateCheckpoint(_ context.Context, from string, data []byte) gossip.Verdict {
	_, _, err := n.openPeerCheckpoint(data)
	switch {
	case err == nil:
		return gossip.Accept
	case errors.Is(err, tlog.ErrMalformed), errors.Is(err, tlog.ErrBadSignature):
		n.log.Debug("gossip: bad checkpoint", "from", from, "err", err)
		return gossip.Reject
	default:
		// Unknown signers or another log: nothing to hold against the peer.
		return gossip.Ignore
	}
}

func (n *Node) deliverCheckpoint(_ string, data []byte) { n.witness(data) }

// witness compares a peer's checkpoint with this replica's log: the same
// root is cosigned, a different root is a split view, a size not reached
// yet is kept for later.
func (n *Node) witness(note []byte) {
	c, _, err := n.openPeerCheckpoint(note)
	if err != nil {
		return
	}
	if c.Size > n.store.Version() {
		n.wit.mu.Lock()
		if n.wit.future == nil {
			n.wit.future = map[uint64][]byte{}
		}
		if len(n.wit.future) < maxFuture {
			n.wit.future[c.Size] = note
		}
		n.wit.mu.Unlock()
		return
	}
	root, err := n.store.LogRootAt(c.Size)
	if err != nil {
		return
	}
	if !bytes.Equal(root, c.Root) {
		n.recordSplit(c, note)
		return
	}
	mine, err := n.checkpointAt(c.Size)
	if err != nil {
		return
	}
	n.wit.mu.Lock()
	defer n.wit.mu.Unlock()
	if n.wit.cosigned == nil {
		n.wit.cosigned, n.wit.cosent = map[uint64][]byte{}, map[uint64]bool{}
	}
	best := n.wit.cosigned[c.Size]
	if best == nil {
		best = []byte(mine.Note)
	}
	merged, err := tlog.MergeSignatures(best, note)
	if err != nil {
		return
	}
	n.wit.cosigned[c.Size] = merged
	n.pruneCosignedLocked()
	if !n.wit.cosent[c.Size] {
		// Tell the mesh this node witnessed that root too.
		n.wit.cosent[c.Size] = true
		n.publishCheckpoint(merged)
	}
}

func (n *Node) pruneCosignedLocked() {
	if len(n.wit.cosigned) <= keepCosigned {
		return
	}
	sizes := make([]uint64, 0, len(n.wit.cosigned))
	for s := range n.wit.cosigned {
		sizes = append(sizes, s)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	for _, s := range sizes[:len(sizes)-keepCosigned] {
		delete(n.wit.cosigned, s)
		delete(n.wit.cosent, s)
	}
}

func (n *Node) recordSplit(c tlog.Checkpoint, theirs []byte) {
	mine, err := n.checkpointAt(c.Size)
	if err != nil {
		return
	}
	n.wit.mu.Lock()
	first := n.wit.split == nil
	if first {
		n.wit.split = &tlog.SplitViewEvidence{A: []byte(mine.Note), B: bytes.Clone(theirs)}
	}
	n.wit.mu.Unlock()
	if first {
		n.met.splitView.Set(1)
		n.log.Error("SPLIT VIEW: a checkpoint of this log signed by a consortium authority has a different root than this replica at the same size; bundle export is refused until an operator investigates",
			"size", c.Size, "their_root", fmt.Sprintf("%x", c.Root), "our_root", fmt.Sprintf("%x", mine.Root))
		// Gossip the evidence: both signed notes, so every node can see it.
		n.publishCheckpoint(theirs)
	}
}

// SplitView returns the split-view evidence this node holds, or nil.
func (n *Node) SplitView() *tlog.SplitViewEvidence {
	n.wit.mu.Lock()
	defer n.wit.mu.Unlock()
	return n.wit.split
}

// WitnessedCheckpoint returns the checkpoint at the current size with every
// cosignature collected for it (at least this node's own).
func (n *Node) WitnessedCheckpoint() (CheckpointJSON, []string, error) {
	c, err := n.Checkpoint()
	if err != nil {
		return c, nil, err
	}
	n.wit.mu.Lock()
	if best := n.wit.cosigned[c.Size]; best != nil {
		if merged, err := tlog.MergeSignatures([]byte(c.Note), best); err == nil {
			c.Note = string(merged)
		}
	}
	n.wit.mu.Unlock()
	_, signers, err := tlog.OpenCheckpoint([]byte(c.Note), n.witnesses())
	if err != nil {
		return c, nil, fmt.Errorf("node: witnessed checkpoint: %w", err)
	}
	return c, signers, nil
}

func (n *Node) publishCheckpoint(note []byte) {
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if err := n.host.PublishTo(ctx, gossip.CheckpointsTopic, note); err != nil && !errors.Is(err, gossip.ErrClosed) {
		n.log.Debug("publish checkpoint", "err", err)
	}
}

// witnessLoop publishes this node's checkpoint when its log has grown and
// rechecks held checkpoints once the replica reaches their size.
func (n *Node) witnessLoop() {
	t := time.NewTicker(witnessInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		size := n.store.Version()
		n.wit.mu.Lock()
		publish := size > n.wit.published
		var due [][]byte
		for s, note := range n.wit.future {
			if s <= size {
				due = append(due, note)
				delete(n.wit.future, s)
			}
		}
		n.wit.mu.Unlock()
		for _, note := range due {
			n.witness(note)
		}
		if !publish || size == 0 {
			continue
		}
		c, err := n.Checkpoint()
		if err != nil {
			continue
		}
		n.wit.mu.Lock()
		n.wit.published = c.Size
		n.wit.mu.Unlock()
		n.publishCheckpoint([]byte(c.Note))
	}
}
