package consensus

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// proposeEnqueueTimeout bounds how long Propose waits for Raft to take a
// command when the caller's context has no deadline.
const proposeEnqueueTimeout = 10 * time.Second

// Proposal is a command handed to Raft whose outcome is not known yet.
// Wait for it with Wait; it is safe to Wait from another goroutine than
// the one that proposed.
type Proposal struct {
	r *Raft
	f raft.ApplyFuture
}

// Propose hands cmd to Raft and returns as soon as Raft has taken it,
// without waiting for it to commit, so that a proposer can keep several
// commands in flight and Raft can replicate and fsync them together.
// Commands proposed one after another by one goroutine are committed, if
// at all, in that order. On another node than the leader the Proposal's
// Wait returns a *NotLeaderError.
func (r *Raft) Propose(ctx context.Context, cmd Command) (*Proposal, error) {
	data := cmd.Encode()
	if len(data) > MaxCommandSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrCommandTooLarge, len(data), MaxCommandSize)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("consensus: propose: %w", err)
	}
	timeout := proposeEnqueueTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(max(time.Until(d), time.Millisecond), timeout)
	}
	return &Proposal{r: r, f: r.raft.Apply(data, timeout)}, nil
}

// Wait waits until the proposal is applied on this node (the leader) and
// returns as Apply does: the handler's result and the entry's index, or
// the handler's error with the index set, or why it was not committed
// (ErrNotLeader, ErrLeadershipLost, ErrShutdown, ctx's error; after
// ErrLeadershipLost or ctx's end it may still be committed).
func (p *Proposal) Wait(ctx context.Context) (result any, index uint64, err error) {
	err = p.r.await(ctx, "apply", func(time.Duration) error { return p.f.Error() })
	if err != nil {
		return nil, 0, err
	}
	result, index = p.f.Response(), p.f.Index()
	if e, ok := result.(error); ok {
		return nil, index, e
	}
	return result, index, nil
}
