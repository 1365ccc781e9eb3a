package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
	"github.com/fednode/fednode/testnet"
)

// Defaults and bounds of the gossip benchmark.
const (
	DefaultGossipNodes  = 20
	DefaultGossipTrials = 100
	// MaxGossipNodes bounds --nodes: every node is a full node in this
	// process (store, Raft voter, host), so more cannot fit a small machine.
	MaxGossipNodes = 64
	// MaxBurst bounds --burst.
	MaxBurst = 1_000_000

	// trialTimeout bounds one revocation trial: a node that has not denied
	// by then fails the benchmark rather than skew it.
	trialTimeout = 30 * time.Second
	// denyPoll is how often a node is verified again while no revocation
	// signal arrived: the fallback for a revocation that reaches a node by
	// Raft only (gossip lost it), which OnRevocation does not signal.
	denyPoll = 25 * time.Millisecond
	// setupTimeout bounds starting the mesh and agreeing its first rule.
	setupTimeout = 5 * time.Minute
	// burstTimeout bounds waiting for a burst to be agreed everywhere.
	burstTimeout = 10 * time.Minute
	// burstSubmitters submit a burst concurrently, as testnet's burst does.
	burstSubmitters = 8
	// Before each trial the mesh is let settle: each commit makes every
	// node publish and cosign checkpoints (node/witness.go), a burst of
	// gossip and signature checks that would otherwise still run when the
	// next revocation goes out, and time that storm rather than the
	// revocation. Settled means no node validated a gossip message for
	// settleQuiet, or settleMax passed.
	settlePoll  = 50 * time.Millisecond
	settleQuiet = 300 * time.Millisecond
	settleMax   = 5 * time.Second
	// pings is how many loopback round trips rtt_ms is the median of.
	pings = 50
	// Raft timeouts of the bench's nodes. The defaults (500 ms heartbeat and
	// election, 250 ms leader lease) suit a node per machine; 20 voters in
	// one process on a shared 2-core machine miss them under a burst's
	// load, and the cluster falls into elections it cannot finish (seen:
	// every node a candidate, the burst stuck). Revocation latency does not
	// depend on Raft (a revocation denies from gossip, before Raft orders
	// it); the burst does.
	benchHeartbeat   = 2 * time.Second
	benchElection    = 4 * time.Second
	benchLeaderLease = time.Second
	// gossipResource and benchAction are what the credentials are checked
	// for; the rule grants exactly this.
	gossipResource = "bench://gossip/object"
	benchAction    = "read"
)

// GossipOptions configure Gossip. Zero fields take the defaults.
type GossipOptions struct {
	Nodes  int // full nodes in the mesh; 0: DefaultGossipNodes
	Trials int // revocations measured; 0: DefaultGossipTrials
	// Burst, if positive, also publishes that many declarations as fast as
	// possible at one node and waits until every node holds all of them.
	Burst int
	// Dir holds the nodes' homes; empty: a temporary directory, removed.
	Dir    string
	Logger *slog.Logger
}

// GossipResult is what `fednode bench gossip --json` prints.
type GossipResult struct {
	Nodes  int `json:"nodes"`
	Trials int `json:"trials"`
	// Revocation latency: from submitting a revocation at one node to the
	// moment the last node's Verify denies the revoked credential.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
	// RTTMS is the median libp2p ping round trip between two of the
	// mesh's hosts, measured in the same run: the physical floor.
	RTTMS float64 `json:"rtt_ms"`
	// ByRaft counts node-trials where the deny came without a gossip
	// signal (the revocation arrived by Raft only): gossip lost it there.
	ByRaft int `json:"by_raft"`
	// SetupS is how long the mesh took to start and agree its first rule.
	SetupS float64 `json:"setup_s"`
	// Load1M is the machine's one-minute load average at the end of the
	// trials (Linux; 0 elsewhere): on a shared machine, other processes'
	// load shows in every latency above.
	Load1M float64 `json:"load_1m"`
	// Gossip sums the mesh's gossip counters over all nodes and topics at
	// the end of the run: what gossip lost (for the pull sync to repair)
	// and what the per-peer limits charged. Honest runs charge nothing.
	Gossip GossipCounters `json:"gossip"`
	// Burst is the burst measurement, when asked for.
	Burst *BurstResult `json:"burst,omitempty"`
}

// GossipCounters are gossip.Stats summed over the nodes.
type GossipCounters struct {
	Throttled     uint64 `json:"throttled"`
	DroppedRPCs   uint64 `json:"dropped_rpcs"`
	Undeliverable uint64 `json:"undeliverable"`
	RateLimited   uint64 `json:"rate_limited"`
	Replays       uint64 `json:"replays"`
	Rejected      uint64 `json:"rejected"`
}

func sumCounters(nodes []*node.Node) GossipCounters {
	var c GossipCounters
	for _, n := range nodes {
		st := n.GossipStats()
		c.Throttled += st.Throttled
		c.DroppedRPCs += st.DroppedRPCs
		c.Undeliverable += st.Undeliverable
		c.RateLimited += st.RateLimited
		c.Replays += st.Replays
		c.Rejected += st.Rejected
	}
	return c
}

// load1 reads the one-minute load average, 0 if it cannot.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		return 0
	}
	return l
}

// BurstResult is the burst measurement.
type BurstResult struct {
	Declarations int `json:"declarations"`
	// SubmitS is how long submitting them all at one node took; Seconds
	// from the first submission until every node held every one of them.
	SubmitS float64 `json:"submit_s"`
	Seconds float64 `json:"seconds"`
	PerS    float64 `json:"per_s"`
	// Complete: every node's agreed graph holds all Declarations (checked
	// one by one at the end); Missing counts node-declaration pairs that
	// are not, when it is false.
	Complete bool `json:"complete"`
	Missing  int  `json:"missing"`
	// Error says why waiting stopped early (the burst timeout), if it did.
	Error string `json:"error,omitempty"`
}

// Gossip measures revocation latency across a mesh of full nodes on
// loopback: for each trial a fresh credential that every node allows, then
// a revocation of it submitted at the issuer's node, timed until every node
// denies it (reason revoked). A node's OnRevocation hook wakes its checker,
// which then verifies for real; a checker without a signal verifies every
// denyPoll (a revocation carried by Raft alone).
func Gossip(ctx context.Context, o GossipOptions) (GossipResult, error) {
	if o.Nodes == 0 {
		o.Nodes = DefaultGossipNodes
	}
	if o.Trials == 0 {
		o.Trials = DefaultGossipTrials
	}
	switch {
	case o.Nodes < 2 || o.Nodes > MaxGossipNodes:
		return GossipResult{}, fmt.Errorf("%w: nodes %d: want 2 to %d", ErrBadOptions, o.Nodes, MaxGossipNodes)
	case o.Trials < 1:
		return GossipResult{}, fmt.Errorf("%w: trials %d: want at least 1", ErrBadOptions, o.Trials)
	case o.Burst < 0 || o.Burst > MaxBurst:
		return GossipResult{}, fmt.Errorf("%w: burst %d: want 0 to %d", ErrBadOptions, o.Burst, MaxBurst)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}

	names := make([]string, o.Nodes)
	specs := make([]testnet.AuthorityCmd, o.Nodes)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%02d", i)
		specs[i] = testnet.AuthorityCmd{Name: names[i], Kind: "sovereign"}
	}
	sig := newSignals(names)
	mesh, err := testnet.NewMesh(testnet.MeshOptions{Dir: o.Dir, Logger: o.Logger,
		Configure: func(name string, c *node.Config) {
			c.OnRevocation = sig.hook(name)
			c.Raft.HeartbeatTimeout, c.Raft.ElectionTimeout, c.Raft.LeaderLeaseTimeout = benchHeartbeat, benchElection, benchLeaderLease
		}})
	if err != nil {
		return GossipResult{}, err
	}
	defer mesh.Close()

	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if err := mesh.Add(sctx, specs); err != nil {
		return GossipResult{}, err
	}
	_, nodes := mesh.Live()
	if len(nodes) != o.Nodes {
		return GossipResult{}, fmt.Errorf("bench: %d of %d nodes running", len(nodes), o.Nodes)
	}
	for _, n := range nodes {
		if err := waitAll(sctx, nodes, n.Authority()); err != nil {
			return GossipResult{}, fmt.Errorf("bench: genesis of %s: %w", n.Home().Config.Name, err)
		}
	}
	issuer, target := nodes[0], nodes[1]
	rule, err := node.SignNext(sctx, target.Home(), target, time.Now(), func(d *authority.Declaration) {
		d.Kind = authority.KindRule
		d.Rule = &authority.Rule{Source: issuer.Authority(), Subjects: "bench-*", Resources: "bench://gossip/*", Actions: []string{benchAction}}
	})
	if err != nil {
		return GossipResult{}, fmt.Errorf("bench: the target's rule: %w", err)
	}
	if err := waitAll(sctx, nodes, rule.ID); err != nil {
		return GossipResult{}, fmt.Errorf("bench: the target's rule: %w", err)
	}
	res := GossipResult{Nodes: o.Nodes, Trials: o.Trials, SetupS: time.Since(start).Seconds()}

	if res.RTTMS, err = medianPing(ctx, issuer, target); err != nil {
		return res, err
	}

	lat := make([]time.Duration, 0, o.Trials)
	for i := range o.Trials {
		settle(ctx, nodes)
		d, byRaft, err := trial(ctx, nodes, names, sig, issuer, target, i)
		if err != nil {
			return res, fmt.Errorf("bench: trial %d: %w", i, err)
		}
		lat = append(lat, d)
		res.ByRaft += byRaft
	}
	slices.Sort(lat)
	res.P50MS = ms(quantile(lat, 0.50))
	res.P99MS = ms(quantile(lat, 0.99))
	res.MaxMS = ms(lat[len(lat)-1])
	res.Load1M = load1()

	if o.Burst > 0 {
		b, err := burst(ctx, nodes, issuer, o.Burst)
		if err != nil {
			return res, err
		}
		res.Burst = &b
	}
	res.Gossip = sumCounters(nodes)
	return res, nil
}

// signals routes each node's OnRevocation to the trial waiting for that
// target, without blocking the node.
type signals struct {
	mu     sync.Mutex
	target authority.ID
	ch     map[string]chan struct{} // by node name; buffered 1
}

func newSignals(names []string) *signals {
	s := &signals{ch: make(map[string]chan struct{}, len(names))}
	for _, n := range names {
		s.ch[n] = make(chan struct{}, 1)
	}
	return s
}

func (s *signals) hook(name string) func(authority.ID) {
	ch := s.ch[name]
	return func(target authority.ID) {
		s.mu.Lock()
		want := s.target
		s.mu.Unlock()
		if target != want {
			return
		}
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// arm sets the target the next signals are for and drains stale ones.
func (s *signals) arm(target authority.ID) {
	s.mu.Lock()
	s.target = target
	s.mu.Unlock()
	for _, ch := range s.ch {
		select {
		case <-ch:
		default:
		}
	}
}

// trial revokes one fresh credential and returns how long until every node
// denied it, and at how many nodes the deny came without a gossip signal.
func trial(ctx context.Context, nodes []*node.Node, names []string, sig *signals, issuer, target *node.Node, i int) (time.Duration, int, error) {
	h := issuer.Home()
	now := time.Now()
	serial, err := authority.NewSerial(rand.Reader)
	if err != nil {
		return 0, 0, err
	}
	cred, err := h.Sign(authority.Declaration{Kind: authority.KindCredential, Authority: h.Authority, IssuedAt: now.Unix(),
		Credential: &authority.Credential{Subject: fmt.Sprintf("bench-%d", i), Serial: serial,
			NotBefore: now.Add(-time.Minute).Unix(), NotAfter: now.Add(time.Hour).Unix()}})
	if err != nil {
		return 0, 0, err
	}
	tgt := target.Authority().String()
	for k, n := range nodes {
		if d := n.Verify(cred.Raw, tgt, gossipResource, benchAction, time.Now()); d.Outcome != "allow" {
			return 0, 0, fmt.Errorf("%s does not allow the fresh credential: %s %s: %s", names[k], d.Outcome, d.Reason, d.Message)
		}
	}
	sig.arm(cred.ID)
	tctx, cancel := context.WithTimeout(ctx, trialTimeout)
	defer cancel()

	type outcome struct {
		at     time.Duration
		byRaft bool
		err    error
	}
	outs := make([]outcome, len(nodes))
	var wg sync.WaitGroup
	var t0 time.Time
	ready := make(chan struct{})
	for k, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			poll := time.NewTicker(denyPoll)
			defer poll.Stop()
			signalled := false
			for {
				d := n.Verify(cred.Raw, tgt, gossipResource, benchAction, time.Now())
				if d.Outcome == "deny" && d.Reason == authority.ReasonRevoked {
					at := time.Since(t0)
					select { // a signal may have come before this check
					case <-sig.ch[names[k]]:
						signalled = true
					default:
					}
					outs[k] = outcome{at: at, byRaft: !signalled}
					return
				}
				select {
				case <-sig.ch[names[k]]:
					signalled = true
				case <-poll.C:
				case <-tctx.Done():
					outs[k].err = fmt.Errorf("%s still says %s %s after %s", names[k], d.Outcome, d.Reason, trialTimeout)
					return
				}
			}
		}()
	}
	_, err = node.SignNext(tctx, h, issuer, time.Now(), func(d *authority.Declaration) {
		d.Kind = authority.KindRevocation
		d.Revocation = &authority.Revocation{Target: cred.ID}
		// The clock starts once the revocation is signed, just before it is
		// submitted; SignNext submits right after signing.
		t0 = time.Now()
	})
	close(ready)
	if err != nil {
		cancel()
		wg.Wait()
		return 0, 0, fmt.Errorf("revoke: %w", err)
	}
	wg.Wait()
	var worst time.Duration
	byRaft := 0
	for _, o := range outs {
		if o.err != nil {
			return 0, 0, o.err
		}
		worst = max(worst, o.at)
		if o.byRaft {
			byRaft++
		}
	}
	return worst, byRaft, nil
}

// burst signs n rules of the issuer, submits them at its node as fast as
// possible, and waits until every node has agreed every one.
func burst(ctx context.Context, nodes []*node.Node, issuer *node.Node, n int) (BurstResult, error) {
	h := issuer.Home()
	unlock, err := h.LockSigning()
	if err != nil {
		return BurstResult{}, err
	}
	defer unlock()
	head, err := issuer.Head(ctx, h.Authority.String())
	if err != nil {
		return BurstResult{}, err
	}
	now := time.Now().Unix()
	sds := make([]*authority.Signed, n)
	prev := head.HeadID
	for i := range sds {
		sd, err := h.Sign(authority.Declaration{
			Kind: authority.KindRule, Authority: h.Authority, Seq: head.Head + 1 + uint64(i), Prev: prev, IssuedAt: now,
			Rule: &authority.Rule{Source: h.Authority, Subjects: "*", Resources: fmt.Sprintf("bench://burst/%d", i), Actions: []string{"read"}},
		})
		if err != nil {
			return BurstResult{}, fmt.Errorf("bench: sign burst declaration %d: %w", i, err)
		}
		sds[i], prev = sd, sd.ID
	}

	start := time.Now()
	next := make(chan *authority.Signed)
	errs := make(chan error, burstSubmitters)
	var wg sync.WaitGroup
	for range min(burstSubmitters, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sd := range next {
				if _, err := issuer.Submit(ctx, sd.Raw); err != nil {
					select {
					case errs <- fmt.Errorf("bench: submit burst seq %d: %w", sd.Decl.Seq, err):
					default:
					}
				}
			}
		}()
	}
	for _, sd := range sds {
		next <- sd
	}
	close(next)
	wg.Wait()
	submitted := time.Since(start)
	select {
	case err := <-errs:
		return BurstResult{}, err
	default:
	}
	bctx, cancel := context.WithTimeout(ctx, burstTimeout)
	defer cancel()
	// A chain is agreed in order, so its last declaration agreed means the
	// rest are; the count below checks that rather than assume it. A
	// timeout is a result (incomplete), not an error: the figures so far
	// still say something.
	waitErr := waitAll(bctx, nodes, sds[n-1].ID)
	took := time.Since(start)
	missing := 0
	for _, nd := range nodes {
		for _, sd := range sds {
			if !nd.Agreed(sd.ID) {
				missing++
			}
		}
	}
	res := BurstResult{Declarations: n, SubmitS: submitted.Seconds(), Seconds: took.Seconds(),
		PerS: float64(n) / took.Seconds(), Complete: missing == 0, Missing: missing}
	if waitErr != nil {
		res.Error = waitErr.Error()
	}
	return res, nil
}

// settle waits until no node has validated a gossip message for
// settleQuiet, at most settleMax.
func settle(ctx context.Context, nodes []*node.Node) {
	seen := func() uint64 {
		var n uint64
		for _, nd := range nodes {
			st := nd.GossipStats()
			n += st.Accepted + st.Rejected + st.Ignored
		}
		return n
	}
	end := time.Now().Add(settleMax)
	last, quietSince := seen(), time.Now()
	for time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(settlePoll)
		if cur := seen(); cur != last {
			last, quietSince = cur, time.Now()
		} else if time.Since(quietSince) >= settleQuiet {
			return
		}
	}
}

// waitAll waits until every node has agreed id.
func waitAll(ctx context.Context, nodes []*node.Node, id authority.ID) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for _, n := range nodes {
		for !n.Agreed(id) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s has not agreed %s (graph version %d): %w", n.Home().Config.Name, id.Short(), n.GraphVersion(), ctx.Err())
			case <-t.C:
			}
		}
	}
	return nil
}

// medianPing is the median of pings libp2p round trips from a to b, in ms.
func medianPing(ctx context.Context, a, b *node.Node) (float64, error) {
	rtts := make([]time.Duration, 0, pings)
	for range pings {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := a.Ping(pctx, b.PeerID())
		cancel()
		if err != nil {
			return 0, fmt.Errorf("bench: ping: %w", err)
		}
		rtts = append(rtts, d)
	}
	slices.Sort(rtts)
	return ms(quantile(rtts, 0.5)), nil
}
