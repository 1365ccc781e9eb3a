package node

import (
	"context"
	"errors"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/consensus"
)

const (
	// maxInFlight bounds the batches handed to Raft and not yet applied.
	// More than one lets Raft replicate and fsync the next batch while the
	// FSM applies (and re-verifies) the current one; a few are enough to
	// keep both busy, and each holds at most maxBatchCount declarations.
	maxInFlight = 4
	// proposeTimeout bounds the wait for one batch's outcome; on timeout
	// its declarations are proposed again (a duplicate is refused
	// harmlessly by the graph).
	proposeTimeout = 10 * time.Second
	// proposeGap is the least time between two proposer rounds.
	proposeGap = 2 * time.Millisecond
	// maxForwardCount and maxForwardBytes bound one forward to the leader:
	// its frame decoder refuses arrays of more than 4096 elements and
	// frames over maxFrame, and a follower that gossip filled with a burst
	// must not send a forward that is refused every time.
	maxForwardCount = 1024
	maxForwardBytes = maxFrame / 2
)

// proposeBatches cuts todo (in proposal order) into batches and hands them
// to Raft, keeping up to maxInFlight in flight. It does not wait for them:
// each batch's outcome is settled in its own goroutine, which frees the
// slot and pokes the proposer, so that whatever arrived meanwhile goes out
// in the next, fuller batch. Batches are proposed from this goroutine only,
// so Raft commits them in proposal order and a chain segment split across
// two batches arrives in order.
func (n *Node) proposeBatches(todo []*pendingDecl) {
	for len(todo) > 0 {
		if n.proposals.Add(1) > maxInFlight {
			n.proposals.Add(-1)
			return // every slot is busy; a settled batch pokes us
		}
		size, k := 0, 0
		for k < len(todo) && k < maxBatchCount && size+len(todo[k].sd.Raw) < maxBatchBytes {
			size += len(todo[k].sd.Raw) + 8
			k++
		}
		batch := todo[:k]
		todo = todo[k:]
		envs := make([][]byte, len(batch))
		for i, p := range batch {
			envs[i] = p.sd.Raw
			p.inflight.Store(true)
		}
		ctx, cancel := context.WithTimeout(n.ctx, proposeTimeout)
		prop, err := n.raft.Propose(ctx, consensus.Command{Type: cmdDeclarations, Body: encodeBatch(envs)})
		if err != nil {
			cancel()
			n.log.Debug("propose", "n", len(envs), "err", err)
			n.unflight(batch)
			return
		}
		n.wg.Go(func() {
			defer cancel()
			res, _, err := prop.Wait(ctx)
			if err != nil {
				n.log.Debug("propose", "n", len(envs), "err", err)
			} else {
				n.settle(batch, res)
			}
			n.unflight(batch)
		})
	}
}

// unflight ends a batch's proposal: its declarations may be proposed again
// (those still pending), and the proposer is poked to use the free slot.
func (n *Node) unflight(batch []*pendingDecl) {
	for _, p := range batch {
		p.inflight.Store(false)
	}
	n.proposals.Add(-1)
	n.poke()
}

// settle removes from the pool what the agreed graph took or refused for
// good, given the FSM's per-declaration results.
func (n *Node) settle(batch []*pendingDecl, res any) {
	errs, _ := res.([]error)
	for i, p := range batch {
		var e error
		if i < len(errs) {
			e = errs[i]
		}
		switch {
		case e == nil, errors.Is(e, authority.ErrDuplicate):
			n.pool.remove(p.sd.ID)
		case errors.Is(e, authority.ErrGap), errors.Is(e, authority.ErrUnknownAuthority):
			// An earlier declaration is missing: keep it and retry.
		case errors.Is(e, authority.ErrNotMember) && n.keepNotMember(p.sd):
			// Its authority is not admitted (yet): an admission request.
		default:
			n.log.Warn("the agreed graph refused a declaration", "id", p.sd.ID.Short(), "kind", p.sd.Decl.Kind.String(), "err", e)
			n.pool.remove(p.sd.ID)
		}
	}
}
