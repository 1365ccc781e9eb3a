package gossip

import (
	"errors"
	"math"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Per-peer limits. GossipSub penalises only Verdict Reject; these cover the
// floods it does not see: messages that are each harmless (Ignore) but cost
// a decode and a lookup, and replays of declarations agreed long ago.
//
// Both are charged to the peer that relayed the message to us (GossipSub's
// ReceivedFrom), counted in a per-peer ledger that decays with
// misbehaviourHalfLife, and fed to peer scoring as the app-specific score
// (P5), so a peer that keeps misbehaving sinks below GraylistThreshold and
// out of the mesh like one that sends invalid messages, while one that
// stops recovers. Our own publishes are never charged.
const (
	// PeerRate is the sustained number of messages per second (all topics
	// together) we validate from one peer; PeerBurst is the token bucket's
	// depth, what a peer may send at once. They are sized above the honest
	// worst case: an authority publishing a burst of 10,000 declarations,
	// which its node floods to every topic peer at once. An RPC whose
	// messages exceed the bucket is dropped whole before GossipSub reads
	// it (so its messages are not marked seen, and the same messages
	// relayed by honest peers still arrive), and each of its messages is
	// charged to the peer as one rate-limit drop.
	PeerRate  = 2000
	PeerBurst = 20000

	// ReplayAllowance is how many replays (Verdict Replay) a peer may relay
	// within about misbehaviourHalfLife for free: a peer that reconnects
	// or lagged behind Raft relays a few declarations we already agreed.
	// Beyond it, each replay costs more (see replayWeight).
	ReplayAllowance = 50

	// replayWeight and dropWeight make the app-specific score
	// replayWeight·max(0, replays−ReplayAllowance)² + dropWeight·drops²,
	// as GossipSub's P4 is quadratic: 20 replays past the allowance, or 20
	// rate-limit drops, reach GraylistThreshold (−400) on their own.
	replayWeight = -1.0
	dropWeight   = -1.0
	// misbehaviourHalfLife: a peer's replay and drop counts halve every two
	// minutes, so an honest peer's occasional replays never add up.
	misbehaviourHalfLife = 2 * time.Minute
	// ledgerForget is how small decayed counts must be, with a full bucket,
	// before a peer's entry is dropped; it bounds the ledger to peers that
	// misbehaved lately or are sending now.
	ledgerForget = 0.5
)

// limits are the ledger's parameters; New uses the constants above, tests
// may set smaller ones through Config.limits.
type limits struct {
	rate, burst     float64
	replayAllowance float64
}

var defaultLimits = limits{rate: PeerRate, burst: PeerBurst, replayAllowance: ReplayAllowance}

// ledger is the per-peer account of rate and misbehaviour. Validators (many
// goroutines) charge it; pubsub's score function reads it. Methods are safe
// for concurrent use.
type ledger struct {
	lim limits
	now func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]*account
}

// account is one peer's entry.
type account struct {
	// tokens left in the bucket at refilled. Invariant: 0 <= tokens <= burst.
	tokens   float64
	refilled time.Time
	// replays and drops are decayed counts as of decayed. Invariant: >= 0.
	replays, drops float64
	decayed        time.Time
}

func newLedger(lim limits, now func() time.Time) *ledger {
	return &ledger{lim: lim, now: now, peers: make(map[peer.ID]*account)}
}

func (l *ledger) get(p peer.ID, now time.Time) *account {
	a := l.peers[p]
	if a == nil {
		a = &account{tokens: l.lim.burst, refilled: now, decayed: now}
		l.peers[p] = a
	}
	return a
}

func (a *account) decay(now time.Time) {
	dt := now.Sub(a.decayed)
	if dt <= 0 {
		return
	}
	f := math.Exp2(-dt.Seconds() / misbehaviourHalfLife.Seconds())
	a.replays *= f
	a.drops *= f
	a.decayed = now
}

// take spends one token of p's bucket; see takeN.
func (l *ledger) take(p peer.ID) bool { return l.takeN(p, 1) }

// takeN spends n tokens of p's bucket. False means p is over its rate: the
// n messages are to be dropped, and each drop is charged to p.
func (l *ledger) takeN(p peer.ID, n int) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.get(p, now)
	if dt := now.Sub(a.refilled); dt > 0 {
		a.tokens = min(l.lim.burst, a.tokens+dt.Seconds()*l.lim.rate)
		a.refilled = now
	}
	if a.tokens >= float64(n) {
		a.tokens -= float64(n)
		return true
	}
	a.decay(now)
	a.drops += float64(n)
	return false
}

// errRateLimited drops an RPC; pubsub only logs it.
var errRateLimited = errors.New("gossip: peer over its rate limit")

// inspectRPC is GossipSub's app-specific RPC inspector: it runs in the
// event loop on every incoming RPC, before any of its messages is marked
// seen or validated, and drops the whole RPC when its messages exceed the
// sender's bucket.
func (g *Host) inspectRPC(from peer.ID, rpc *pubsub.RPC) error {
	msgs := rpc.GetPublish()
	if len(msgs) == 0 {
		return nil
	}
	if g.ledger.takeN(from, len(msgs)) {
		return nil
	}
	for _, m := range msgs {
		if ts := g.topics[m.GetTopic()]; ts != nil {
			ts.n.rateLimited.Add(1)
		}
	}
	return errRateLimited
}

// replay charges p with one replay.
func (l *ledger) replay(p peer.ID) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.get(p, now)
	a.decay(now)
	a.replays++
}

// score is p's app-specific score: 0 for a peer within its allowances,
// negative and quadratic beyond.
func (l *ledger) score(p peer.ID) float64 {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.peers[p]
	if a == nil {
		return 0
	}
	a.decay(now)
	excess := max(0, a.replays-l.lim.replayAllowance)
	return replayWeight*excess*excess + dropWeight*a.drops*a.drops
}

// counts returns p's decayed replay and drop counts (for tests and logs).
func (l *ledger) counts(p peer.ID) (replays, drops float64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.peers[p]
	if a == nil {
		return 0, 0
	}
	a.decay(now)
	return a.replays, a.drops
}

// sweep forgets peers whose bucket has refilled and whose counts have
// decayed to almost nothing, so the ledger does not grow with every peer
// ever seen.
func (l *ledger) sweep() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, a := range l.peers {
		a.decay(now)
		full := a.tokens+now.Sub(a.refilled).Seconds()*l.lim.rate >= l.lim.burst
		if full && a.replays < ledgerForget && a.drops < ledgerForget {
			delete(l.peers, p)
		}
	}
}
