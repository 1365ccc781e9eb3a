package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// Defaults of RaftOptions.
const (
	DefaultRaftVoters      = 3
	DefaultRaftCount       = 20_000
	DefaultRaftAuthorities = 64
	DefaultRaftSubmitters  = 8
	// raftTimeout bounds the whole run: a cluster that stops committing
	// must end the bench with an error, not hang it.
	raftTimeout = 10 * time.Minute
	// raftPoll is how often the leader's graph is checked for new
	// declarations; it bounds the resolution of the latency figures.
	raftPoll = time.Millisecond
)

// RaftOptions configures Raft.
type RaftOptions struct {
	// Voters is how many real nodes run (each a Raft voter); 0 means 3.
	Voters int
	// Count is how many signed declarations are committed; 0 means 20,000.
	Count int
	// Authorities is how many chains the declarations are spread over (a
	// chain's declarations are sequential); 0 means 64.
	Authorities int
	// Submitters is how many goroutines submit concurrently; 0 means 8.
	Submitters int
	// Dir holds the nodes' homes; "" means a temporary directory removed
	// afterwards.
	Dir string
	// Logger receives the nodes' logs; nil discards them.
	Logger *slog.Logger
}

// RaftResult is what `fednode bench raft --json` prints.
type RaftResult struct {
	Voters       int `json:"voters"`
	Declarations int `json:"declarations"`
	Authorities  int `json:"authorities"`
	// Seconds is from the first submit until the leader applied the last.
	Seconds float64 `json:"seconds"`
	// CommittedPerS is Declarations / Seconds: signed declarations
	// submitted through Submit (signature check, pending pool, gossip),
	// ordered by Raft over libp2p and applied (re-verified, written to
	// badger with fsync) at the leader.
	CommittedPerS float64 `json:"committed_per_s"`
	// P50MS, P99MS and MaxMS are commit latencies: from Submit at the
	// leader until the declaration is applied at the leader (LatencyAt).
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	LatencyAt string  `json:"latency_at"`
	// SubmitSeconds is from the first submit until the last Submit
	// returned (the rate the leader took declarations in at).
	SubmitSeconds float64 `json:"submit_seconds"`
	// AllVotersSeconds is from the first submit until every voter applied
	// the last declaration.
	AllVotersSeconds float64 `json:"all_voters_seconds"`
	// CPUVerifyLimitPerS is how many of the same declarations this machine
	// parses and signature-checks per second on all cores (measured in
	// this run, before the nodes are loaded): the ceiling of any path that
	// verifies each declaration once.
	CPUVerifyLimitPerS float64 `json:"cpu_verify_limit_per_s"`
	// Ratio is CommittedPerS / CPUVerifyLimitPerS.
	Ratio float64 `json:"ratio"`
	CPUs  int     `json:"cpus"`
	// Fsync says the nodes' badger stores sync every write (always true:
	// Raft needs it).
	Fsync bool `json:"fsync"`
}

func (o *RaftOptions) defaults() error {
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set(&o.Voters, DefaultRaftVoters)
	set(&o.Count, DefaultRaftCount)
	set(&o.Authorities, DefaultRaftAuthorities)
	set(&o.Submitters, DefaultRaftSubmitters)
	switch {
	case o.Voters < 1 || o.Voters > 9:
		return fmt.Errorf("%w: --voters %d: want 1 to 9", ErrBadOptions, o.Voters)
	case o.Count < 1:
		return fmt.Errorf("%w: --count %d: want at least 1", ErrBadOptions, o.Count)
	case o.Authorities < 1 || o.Authorities > o.Count:
		return fmt.Errorf("%w: --authorities %d: want 1 to the count (%d)", ErrBadOptions, o.Authorities, o.Count)
	case o.Submitters < 1:
		return fmt.Errorf("%w: --submitters %d: want at least 1", ErrBadOptions, o.Submitters)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Raft measures signed declarations committed per second through the real
// node path: Voters nodes on loopback (libp2p, Raft, badger with fsync),
// declarations of Authorities chains submitted at the leader by Submitters
// goroutines.
func Raft(ctx context.Context, o RaftOptions) (RaftResult, error) {
	if err := o.defaults(); err != nil {
		return RaftResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, raftTimeout)
	defer cancel()
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "fednode-bench-raft-")
		if err != nil {
			return RaftResult{}, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	nodes, err := startCluster(ctx, dir, o.Voters, o.Logger)
	defer func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	}()
	if err != nil {
		return RaftResult{}, err
	}

	decls, err := signWorkload(ctx, nodes, o)
	if err != nil {
		return RaftResult{}, err
	}
	res := RaftResult{Voters: o.Voters, Declarations: o.Count, Authorities: o.Authorities,
		LatencyAt: "leader", CPUs: runtime.GOMAXPROCS(0), Fsync: true}
	res.CPUVerifyLimitPerS = verifyLimit(decls)

	leader, err := waitLeader(ctx, nodes)
	if err != nil {
		return res, err
	}
	lat, elapsed, sub, all, err := commitAll(ctx, leader, nodes, decls, o.Submitters)
	if err != nil {
		return res, err
	}
	res.SubmitSeconds = sub.Seconds()
	res.Seconds = elapsed.Seconds()
	res.CommittedPerS = float64(o.Count) / elapsed.Seconds()
	res.AllVotersSeconds = all.Seconds()
	slices.Sort(lat)
	res.P50MS, res.P99MS, res.MaxMS = ms(quantile(lat, 0.50)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1])
	res.Ratio = res.CommittedPerS / res.CPUVerifyLimitPerS
	return res, nil
}

// startCluster starts n nodes: the first bootstraps, the others join it;
// it returns once all are voters and every genesis is agreed everywhere.
func startCluster(ctx context.Context, dir string, n int, log *slog.Logger) ([]*node.Node, error) {
	var nodes []*node.Node
	for i := range n {
		h, err := node.Init(filepath.Join(dir, fmt.Sprintf("voter-%d", i+1)), node.InitOptions{
			Name: fmt.Sprintf("bench-voter-%d", i+1), Kind: "sovereign", Now: time.Now(),
		})
		if err != nil {
			return nodes, err
		}
		cfg := node.Config{Home: h.Dir, API: "127.0.0.1:0", Logger: log.With("voter", i+1)}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = nodes[0].Addrs()
		}
		nd, err := node.New(ctx, cfg)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, nd)
		if i == 0 {
			if err := poll(ctx, "the first voter's genesis agreed", func() bool { return nd.Agreed(nd.Authority()) }); err != nil {
				return nodes, err
			}
		}
	}
	err := poll(ctx, fmt.Sprintf("%d voters with every genesis agreed", n), func() bool {
		if len(nodes[0].Status().Raft.Voters) != n {
			return false
		}
		for _, a := range nodes {
			for _, b := range nodes {
				if !b.Agreed(a.Authority()) {
					return false
				}
			}
		}
		return true
	})
	return nodes, err
}

// poll waits until cond holds or ctx ends.
func poll(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: waiting for %s: %w", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func waitLeader(ctx context.Context, nodes []*node.Node) (*node.Node, error) {
	var leader *node.Node
	err := poll(ctx, "a leader", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader, err
}

// benchDecl is one declaration of the workload.
type benchDecl struct {
	sd    *authority.Signed
	chain int
	keys  []authority.PublicKey
}

// signWorkload makes o.Authorities authorities (their geneses agreed
// everywhere before it returns) and signs o.Count rules spread over their
// chains, in chain order.
func signWorkload(ctx context.Context, nodes []*node.Node, o RaftOptions) ([]benchDecl, error) {
	now := time.Now()
	source := nodes[0].Authority()
	type chain struct {
		key  *authority.PrivateKey
		pub  []authority.PublicKey
		id   authority.ID
		prev authority.ID
		seq  uint64
	}
	chains := make([]*chain, o.Authorities)
	for i := range chains {
		k, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		gen, err := authority.Sign(authority.Declaration{
			Kind: authority.KindGenesis, IssuedAt: now.Unix(),
			Genesis: &authority.Genesis{Name: fmt.Sprintf("bench-authority-%d", i), Kind: "oidc", RootKeys: []authority.PublicKey{k.Public()}, Threshold: 1},
		}, k)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if _, err := nodes[0].Submit(ctx, gen.Raw); err != nil {
			return nil, fmt.Errorf("bench: submit genesis %d: %w", i, err)
		}
		chains[i] = &chain{key: k, pub: []authority.PublicKey{k.Public()}, id: gen.ID, prev: gen.ID}
	}
	err := poll(ctx, "the bench authorities' geneses agreed everywhere", func() bool {
		for _, n := range nodes {
			for _, c := range chains {
				if !n.Agreed(c.id) {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]benchDecl, o.Count)
	for i := range out {
		c := chains[i%len(chains)]
		c.seq++
		sd, err := authority.Sign(authority.Declaration{
			Kind: authority.KindRule, Authority: c.id, Seq: c.seq, Prev: c.prev, IssuedAt: now.Unix(),
			Rule: &authority.Rule{Source: source, Subjects: "bench-*", Resources: fmt.Sprintf("bench://%d/%d/*", i%len(chains), c.seq),
				Actions: []string{"read"}, NotBefore: now.Unix(), NotAfter: now.Add(24 * time.Hour).Unix()},
		}, c.key)
		if err != nil {
			return nil, fmt.Errorf("bench: sign declaration %d: %w", i, err)
		}
		c.prev = sd.ID
		out[i] = benchDecl{sd: sd, chain: i % len(chains), keys: c.pub}
	}
	return out, nil
}

// verifyMinDuration is how long verifyLimit runs at least, so the figure
// is not noise.
const verifyMinDuration = time.Second

// verifyLimit measures parses and signature checks per second of decls on
// every core: what a path that verifies each declaration once could reach.
func verifyLimit(decls []benchDecl) float64 {
	workers := runtime.GOMAXPROCS(0)
	var next, done atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				j := next.Add(1) - 1
				d := decls[j%int64(len(decls))]
				sd, err := authority.Parse(d.sd.Raw)
				if err != nil {
					panic(fmt.Sprintf("bench: a declaration signed here does not parse: %v", err))
				}
				if err := sd.VerifyThreshold(d.keys, 1); err != nil {
					panic(fmt.Sprintf("bench: a declaration signed here does not verify: %v", err))
				}
				if done.Add(1) >= int64(len(decls)) && time.Since(start) >= verifyMinDuration {
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// commitAll submits decls at the leader and waits until the leader applied
// all of them, then until every voter did. It returns each declaration's
// commit latency, the time until the leader held them all, and the time
// until every voter did.
func commitAll(ctx context.Context, leader *node.Node, nodes []*node.Node, decls []benchDecl, submitters int) (lat []time.Duration, elapsed, submit, all time.Duration, err error) {
	idx := make(map[authority.ID]int, len(decls))
	for i, d := range decls {
		idx[d.sd.ID] = i
	}
	submitted := make([]time.Time, len(decls))
	committed := make([]time.Time, len(decls))
	base := leader.GraphVersion()

	// Each chain goes to one submitter, in order, as its signer would.
	work := make([][]int, submitters)
	for i, d := range decls {
		s := d.chain % submitters
		work[s] = append(work[s], i)
	}
	start := time.Now()
	errc := make(chan error, submitters)
	var wg sync.WaitGroup
	var lastSubmit atomic.Int64
	for _, mine := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { lastSubmit.Store(max(lastSubmit.Load(), int64(time.Since(start)))) }()
			for _, i := range mine {
				submitted[i] = time.Now()
				if _, err := leader.Submit(ctx, decls[i].sd.Raw); err != nil {
					errc <- fmt.Errorf("bench: submit declaration %d: %w", i, err)
					return
				}
			}
		}()
	}

	// Follow the leader's graph as it grows: the commit time of each
	// declaration is when the leader is first seen holding it.
	seen, done := base, 0
	for done < len(decls) {
		select {
		case err := <-errc:
			return nil, 0, 0, 0, err
		case <-ctx.Done():
			return nil, 0, 0, 0, fmt.Errorf("bench: %d of %d declarations committed: %w", done, len(decls), ctx.Err())
		case <-time.After(raftPoll):
		}
		v := leader.GraphVersion()
		if v == seen {
			continue
		}
		now := time.Now()
		err := leader.AgreedSince(seen, func(version uint64, env []byte) error {
			if i, ok := idx[authority.IDOf(env)]; ok && committed[i].IsZero() {
				committed[i] = now
				done++
			}
			seen = version
			return nil
		})
		if err != nil {
			return nil, 0, 0, 0, err
		}
	}
	elapsed = time.Since(start)
	wg.Wait()
	submit = time.Duration(lastSubmit.Load())
	want := leader.GraphVersion()
	if err := poll(ctx, "every voter holding every declaration", func() bool {
		for _, n := range nodes {
			if n.GraphVersion() < want {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, 0, 0, 0, err
	}
	all = time.Since(start)
	lat = make([]time.Duration, len(decls))
	for i := range decls {
		lat[i] = committed[i].Sub(submitted[i])
	}
	return lat, elapsed, submit, all, nil
}
