package node

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/gossip"
)

// replayGrace is how long after this replica agreed a declaration gossip
// copies of it still count as late (Ignore) rather than as replays
// (gossip.Replay, charged to the relaying peer). GossipSub forgets message
// IDs after two minutes, and until then no honest peer relays a message
// twice, so a copy that arrives later was sent again on purpose, or by a
// peer that lagged that far behind. Raft often commits a declaration at a
// follower before gossip brings it, above all in bursts: those copies are
// not replays.
const replayGrace = 2 * time.Minute

// maxRecentPerGen bounds one generation of recentlyAgreed: a generation is
// cut short when it fills, which only shortens the grace under a flood of
// commits (more copies count as replays, within the peers' allowance).
const maxRecentPerGen = 1 << 18

// recentlyAgreed remembers the IDs this replica agreed within the last
// replayGrace to 2·replayGrace, in two generations that rotate, so memory
// stays bounded without a timestamp per ID. Safe for concurrent use.
type recentlyAgreed struct {
	now       func() time.Time // the real clock; a fixed one in tests
	mu        sync.Mutex
	cur, prev map[authority.ID]struct{}
	rotated   time.Time
}

func newRecentlyAgreed(now func() time.Time) *recentlyAgreed {
	return &recentlyAgreed{now: now, cur: map[authority.ID]struct{}{}, prev: map[authority.ID]struct{}{}, rotated: now()}
}

func (r *recentlyAgreed) rotateLocked(now time.Time) {
	age := now.Sub(r.rotated)
	switch {
	case age >= 2*replayGrace:
		// Quiet for two generations: both are past the grace.
		clear(r.prev)
		clear(r.cur)
	case age >= replayGrace || len(r.cur) >= maxRecentPerGen:
		r.prev, r.cur = r.cur, make(map[authority.ID]struct{}, len(r.cur))
	default:
		return
	}
	r.rotated = now
}

// add records the declarations of ids as agreed now.
func (r *recentlyAgreed) add(ids []authority.ID) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.rotateLocked(now)
		r.cur[id] = struct{}{}
	}
}

// has reports whether id was agreed within the grace.
func (r *recentlyAgreed) has(id authority.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rotateLocked(r.now())
	_, inCur := r.cur[id]
	_, inPrev := r.prev[id]
	return inCur || inPrev
}

// agreedVerdict is the gossip verdict on a declaration this replica has
// agreed already: Ignore while it may still be in flight, Replay after.
func (n *Node) agreedVerdict(id authority.ID) gossip.Verdict {
	if n.recent.has(id) {
		n.met.gossip.WithLabelValues("ignore").Inc()
		return gossip.Ignore
	}
	n.met.gossip.WithLabelValues("replay").Inc()
	return gossip.Replay
}

// Ping measures one libp2p round trip to a connected peer (a peer ID): the
// transport's floor under gossip latency, for benchmarks.
func (n *Node) Ping(ctx context.Context, peer string) (time.Duration, error) {
	return n.host.Ping(ctx, peer)
}

// watchGossip exports the gossip layer's per-peer charges: messages dropped
// for their peer's rate, and replays of declarations agreed long ago.
func (m *metrics) watchGossip(h *gossip.Host) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fednode_gossip_rate_limited_total", Help: "Gossip messages dropped because their peer exceeded its rate (gossip.PeerRate, gossip.PeerBurst).",
		}, func() float64 { return float64(h.Stats().RateLimited) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fednode_gossip_replays_total", Help: "Gossip copies of declarations agreed long ago, charged to the relaying peer.",
		}, func() float64 { return float64(h.Stats().Replays) }),
	)
}

// GossipStats returns the gossip layer's counters (see gossip.Stats), for
// benchmarks and diagnostics.
func (n *Node) GossipStats() gossip.Stats { return n.host.Stats() }

// addRelayed adds a declaration that arrived by gossip as if it had just
// been forwarded to leader: its origin (the node it was submitted to)
// forwards it to the leader itself, so the others forward it only if it is
// still pending after forwardRetry (or at once to a new leader). Without
// this, every node of the mesh forwarded every gossiped declaration to the
// leader, which verified each one N−1 times: in a burst of 10,000 on 20
// nodes, 190,000 needless checks on the leader.
func (p *pool) addRelayed(sd *authority.Signed, now time.Time, leader string) {
	p.add(sd, now)
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.m[sd.ID]; d != nil && d.forwarded.IsZero() {
		d.forwarded, d.forwardedTo, d.relayed = now, leader, true
	}
}

// relayedForwardRetry is how often a node forwards again, to the same
// leader, a declaration it only relayed: a repair for a lost gossip
// message, not the main path, so rarer than forwardRetry (a burst that
// takes longer than forwardRetry to commit would otherwise have every
// node resend all of it every forwardRetry).
const relayedForwardRetry = 10 * time.Second

func (d *pendingDecl) retry() time.Duration {
	if d.relayed {
		return relayedForwardRetry
	}
	return forwardRetry
}
