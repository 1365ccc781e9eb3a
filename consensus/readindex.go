package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Linearizable reads by read index (the Raft thesis, section 6.4): the
// leader notes its commit index, confirms with a quorum that it is still the
// leader, and the reader waits until its state has applied that index. No
// log entry is written per read, so reads cost a heartbeat round, not an
// fsync.

// ErrNoQuorum: the leader could not confirm its leadership with a quorum
// of voters (it may have stepped down meanwhile); the read is not safe.
var ErrNoQuorum = errors.New("consensus: leadership not confirmed by a quorum")

// appliedPoll is how often WaitApplied rechecks Raft's own applied index,
// which moves without the FSM seeing an entry (barriers, no-ops,
// configuration changes).
const appliedPoll = 2 * time.Millisecond

// ReadIndex returns an index such that every command committed before the
// call (and so every write acknowledged before it, anywhere) is at or below
// it. Leader only: on another node it returns a *NotLeaderError; when a
// quorum does not confirm the leadership it returns an error matching
// ErrNoQuorum or ErrNotLeader. A reader then calls WaitApplied with the
// index, on this node or any other, and reads its state.
//
// The first read of a leadership term writes one barrier entry: only once
// an entry of its own term is committed does a new leader's commit index
// cover everything its predecessors committed.
func (r *Raft) ReadIndex(ctx context.Context) (uint64, error) {
	if !r.IsLeader() {
		return 0, &NotLeaderError{Leader: r.Leader()}
	}
	term := r.raft.CurrentTerm()
	if r.readyTerm.Load() != term {
		if err := r.Barrier(ctx); err != nil {
			return 0, err
		}
		r.readyTerm.Store(term)
	}
	idx := r.raft.CommitIndex()
	err := r.await(ctx, "verify leader", func(time.Duration) error {
		return r.raft.VerifyLeader().Error()
	})
	if err != nil {
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrShutdown) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %w", ErrNoQuorum, err)
	}
	if r.raft.CurrentTerm() != term {
		// Leadership changed hands between the commit index and the
		// confirmation: the index may belong to an older view.
		return 0, fmt.Errorf("%w: the term changed during the read", ErrNoQuorum)
	}
	return idx, nil
}

// WaitApplied waits until this node's state reflects every command at or
// below index (a ReadIndex from the leader): Raft has handed every entry up
// to index to the FSM, and the state has applied the last command among
// them. It returns ctx's error if that does not happen before ctx ends, and
// ErrShutdown once Raft is shut down.
func (r *Raft) WaitApplied(ctx context.Context, index uint64) error {
	// First Raft's own applied index: it counts every entry, commands or
	// not, and a restored snapshot, so past it nothing at or below index is
	// still to come from the log.
	for r.raft.AppliedIndex() < index {
		if err := r.waitProgress(ctx, "wait for index"); err != nil {
			return err
		}
	}
	target := r.lastCommandAtOrBelow(index)
	for r.state.AppliedIndex() < target {
		if err := r.waitProgress(ctx, "wait for the state"); err != nil {
			return err
		}
	}
	return nil
}

// lastCommandAtOrBelow is the index of the last command entry at or below
// index that the state has not applied yet, or 0 when there is none. The
// entries above the state's applied index are all in the log: an entry is
// compacted away only once a snapshot of a state holding it exists.
func (r *Raft) lastCommandAtOrBelow(index uint64) uint64 {
	applied := r.state.AppliedIndex()
	var l raft.Log
	for i := index; i > applied; i-- {
		if err := r.logs.GetLog(i, &l); err != nil {
			// Not in the log: compacted, so covered by the snapshot the
			// state was built from. Nothing older can be missing either.
			return 0
		}
		if l.Type == raft.LogCommand {
			return i
		}
	}
	return 0
}

func (r *Raft) waitProgress(ctx context.Context, what string) error {
	if r.raft.State() == raft.Shutdown {
		return fmt.Errorf("%w: %s", ErrShutdown, what)
	}
	t := time.NewTimer(appliedPoll)
	defer t.Stop()
	select {
	case <-r.fsm.progressCh():
	case <-t.C:
	case <-ctx.Done():
		return fmt.Errorf("consensus: %s: %w", what, ctx.Err())
	}
	return nil
}

// progressCh is closed at the next entry or restore the FSM handles.
func (f *FSM) progressCh() <-chan struct{} {
	f.progressMu.Lock()
	defer f.progressMu.Unlock()
	if f.progress == nil {
		f.progress = make(chan struct{})
	}
	return f.progress
}

// advanced wakes every waiter of progressCh.
func (f *FSM) advanced() {
	f.progressMu.Lock()
	defer f.progressMu.Unlock()
	if f.progress != nil {
		close(f.progress)
		f.progress = nil
	}
}
