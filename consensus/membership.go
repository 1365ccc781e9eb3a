package consensus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// Membership: the cluster configuration follows a decision made elsewhere
// (the consortium in the agreed graph), applied by the leader through
// Reconcile, and the transport admits only the peers that decision names
// (Config.PeerAllowed).

// Errors of the membership operations.
var (
	// ErrPeerRefused: the transport refused a peer that Config.PeerAllowed
	// does not admit.
	ErrPeerRefused = errors.New("consensus: peer not admitted to the raft transport")
	// ErrNoVoters: Reconcile was asked for a configuration without voters,
	// which would leave the cluster unable to elect a leader; nothing is
	// changed.
	ErrNoVoters = errors.New("consensus: the wanted configuration has no voter")
)

// remotePeer is the peer ID at the other end of a conn a Network accepted:
// its RemoteAddr().String(), as Network promises.
func remotePeer(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// AddNonvoter adds peer id as a non-voter (it receives the log but does not
// vote) and waits until the change is committed. Leader only. A peer that
// is already in the configuration, voter or not, is left alone.
func (r *Raft) AddNonvoter(ctx context.Context, id string) error {
	return r.change(ctx, "add non-voter", id, func(_ Server, ok bool) bool { return ok },
		func(timeout time.Duration) raft.Future {
			return r.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(id), 0, timeout)
		})
}

// DemoteVoter turns voter id into a non-voter and waits until the change is
// committed. Leader only. A non-voter or unknown id is left alone. A leader
// that demotes itself steps down once the change is committed.
func (r *Raft) DemoteVoter(ctx context.Context, id string) error {
	return r.change(ctx, "demote voter", id, func(s Server, ok bool) bool { return !ok || !s.Voter },
		func(timeout time.Duration) raft.Future {
			return r.raft.DemoteVoter(raft.ServerID(id), 0, timeout)
		})
}

// Change is one configuration change made by Reconcile.
type Change struct {
	ID string
	// Op is "add-voter", "add-nonvoter", "promote", "demote" or "remove".
	Op string
}

// Reconcile moves the cluster configuration to want: every peer ID in want
// is a server (a voter when want[id] is true), every other server is
// removed. Leader only. A wanted voter that is not in the configuration yet
// joins as a non-voter first and is promoted only once ready(id) says so
// (the leader can reach it), so that a declared node that never came up
// does not count towards the quorum; ready nil means always ready. An
// existing voter is never demoted for being unreachable: that is what the
// quorum is for.
//
// The changes are made one at a time, each committed before the next;
// additions come first and a change of the leader itself comes last (it
// steps down when it removes or demotes itself). It returns the changes
// made before any error. want without a voter is ErrNoVoters, and nothing
// changes.
func (r *Raft) Reconcile(ctx context.Context, want map[string]bool, ready func(id string) bool) ([]Change, error) {
	if !r.IsLeader() {
		return nil, &NotLeaderError{Leader: r.Leader()}
	}
	voters := 0
	for _, v := range want {
		if v {
			voters++
		}
	}
	if voters == 0 {
		return nil, ErrNoVoters
	}
	if ready == nil {
		ready = func(string) bool { return true }
	}
	servers, err := r.Servers()
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(servers))
	for _, s := range servers {
		have[s.ID] = s.Voter
	}
	plan := planChanges(r.id, have, want, ready)
	var done []Change
	for _, c := range plan {
		var err error
		switch c.Op {
		case "add-voter", "promote":
			err = r.AddVoter(ctx, c.ID)
		case "add-nonvoter":
			err = r.AddNonvoter(ctx, c.ID)
		case "demote":
			err = r.DemoteVoter(ctx, c.ID)
		case "remove":
			err = r.RemoveServer(ctx, c.ID)
		}
		if err != nil {
			return done, fmt.Errorf("consensus: reconcile: %s %s: %w", c.Op, c.ID, err)
		}
		r.log.Info("consensus: configuration changed", "op", c.Op, "server", c.ID)
		done = append(done, c)
	}
	return done, nil
}

// planChanges lists the changes from have to want (server ID -> voter), in
// the order Reconcile makes them: additions and promotions, then demotions
// and removals of others, then a change of self. Deterministic: sorted by
// ID within each group.
func planChanges(self string, have, want map[string]bool, ready func(string) bool) []Change {
	var grow, shrink, mine []Change
	for id, voter := range want {
		cur, in := have[id]
		switch {
		case !in && voter && ready(id):
			grow = append(grow, Change{id, "add-voter"})
		case !in:
			grow = append(grow, Change{id, "add-nonvoter"})
		case !cur && voter && ready(id):
			grow = append(grow, Change{id, "promote"})
		case cur && !voter:
			c := Change{id, "demote"}
			if id == self {
				mine = append(mine, c)
			} else {
				shrink = append(shrink, c)
			}
		}
	}
	for id := range have {
		if _, ok := want[id]; ok {
			continue
		}
		c := Change{id, "remove"}
		if id == self {
			mine = append(mine, c)
		} else {
			shrink = append(shrink, c)
		}
	}
	byID := func(cs []Change) {
		sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	}
	byID(grow)
	byID(shrink)
	return append(append(grow, shrink...), mine...)
}

// DropRefused closes the transport's connections to peers that
// Config.PeerAllowed no longer admits (a member removed from the
// consortium), accepted or dialled. Call it after the decision changed; new
// connections are checked as they come.
func (r *Raft) DropRefused() int {
	return r.stream.dropRefused()
}
