package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/fednode/fednode/authority"
)

// Bounds and defaults of VerifyOptions.
const (
	// DefaultVerifyRounds is how many interleaved rounds Verify measures.
	DefaultVerifyRounds = 15
	// DefaultVerifyBatch is about how long one round runs.
	DefaultVerifyBatch = 100 * time.Millisecond
	// MaxVerifyRounds bounds VerifyOptions.Rounds.
	MaxVerifyRounds = 1000
	// coldChains is how many distinct chains the cold measurement cycles
	// through, so that it never meets the chain it just verified. (Holder
	// keys of a presented chain never enter the cache of unpacked ML-DSA
	// keys, so nothing about a chain is cached between its turns; only
	// the issuer's root key, a key of the graph, is.)
	coldChains = 64
)

// ErrVerifyOptions: a VerifyOptions field is out of range.
var ErrVerifyOptions = errors.New("bench: bad verify options")

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Depth is the presented credential chain's length: a root credential
	// signed by the issuer and Depth-1 delegated links, each signed by its
	// parent's holder key, so a cold decision checks Depth signatures.
	// 1..authority.MaxDelegationDepth.
	Depth int
	Alg   authority.Alg
	// Rounds of interleaved measurement (0: DefaultVerifyRounds); each
	// figure is the median of the individual timings of all rounds.
	Rounds int
	// Batch is about how long one round runs (0: DefaultVerifyBatch).
	// Iterations is a fixed count of iterations per round instead (for
	// tests); it wins when set.
	Batch      time.Duration
	Iterations int
}

// VerifyResult is what `fednode bench verify --json` prints. JSON field names
// are a public interface: add, never rename.
type VerifyResult struct {
	Alg string `json:"alg"`
	// Depth is the signature checks a cold decision needs.
	Depth int `json:"depth"`
	// ColdNsPerOp is one decision with nothing about the presented chain
	// cached: every envelope parsed, every signature checked (the holder
	// keys of the chain unpacked afresh), through a cache that misses and
	// then keeps the chain, as a node's first sight of a chain.
	ColdNsPerOp int64 `json:"cold_ns_per_op"`
	// WarmNsPerOp is the same request again, answered from the cache.
	WarmNsPerOp int64 `json:"warm_ns_per_op"`
	// SigVerifyNsPerOp is one bare signature verification of Alg, the
	// public key decoded from its bytes each time, measured in the same
	// rounds as the decisions.
	SigVerifyNsPerOp int64 `json:"sig_verify_ns_per_op"`
	// SigVerifyCachedKeyNsPerOp is the same with the key's unpacked form
	// cached, as the issuer's root key (a key of the graph) is in a cold
	// decision: for ML-DSA-65 and the hybrid it is well below
	// SigVerifyNsPerOp, which is why their cold_ratio is below 1 at small
	// depths; for Ed25519 about a tenth below (the point's decompression
	// and table, kept for a key of the graph).
	SigVerifyCachedKeyNsPerOp int64 `json:"sig_verify_cached_key_ns_per_op"`
	// ColdRatio is ColdNsPerOp / (Depth * SigVerifyNsPerOp).
	ColdRatio       float64 `json:"cold_ratio"`
	ColdAllocsPerOp float64 `json:"cold_allocs_per_op"`
	WarmAllocsPerOp float64 `json:"warm_allocs_per_op"`
	ColdBytesPerOp  float64 `json:"cold_bytes_per_op"`
	WarmBytesPerOp  float64 `json:"warm_bytes_per_op"`
	ChainBytes      int     `json:"chain_bytes"` // the presented chain's envelopes, in bytes
	ColdChains      int     `json:"cold_chains"` // distinct chains the cold measurement cycles through
	Rounds          int     `json:"rounds"`
	GoMaxProcs      int     `json:"gomaxprocs"`
	CachedChains    int     `json:"cached_chains"` // entries bytes_per_cached_chain was measured over
	// BytesPerCachedChain is the heap a cached chain holds, measured over
	// CachedChains entries; CacheEstimatePerChain is what the cache counts
	// against its byte bound for one.
	BytesPerCachedChain   float64 `json:"bytes_per_cached_chain"`
	CacheEstimatePerChain float64 `json:"cache_estimate_bytes_per_chain"`
}

// verifyWorld is a graph where a request of each chain is allowed.
type verifyWorld struct {
	g    *authority.Graph
	at   time.Time
	reqs []authority.Request
	// sigKey, sigMsg and sigBytes are one signature of the chains' kind:
	// the first root credential's, under the issuer's root key.
	sigKey   authority.PublicKey
	sigMsg   []byte
	sigBytes []byte
}

// Verify measures decisions about a credential chain of o.Depth signatures
// of o.Alg, allowed at a target through a rule in the graph: cold, warm,
// and one bare signature check, interleaved round by round so that noise
// from other work on the machine hits all three alike.
func Verify(o VerifyOptions) (VerifyResult, error) {
	if o.Depth < 1 || o.Depth > authority.MaxDelegationDepth {
		return VerifyResult{}, fmt.Errorf("%w: depth %d: want 1 to %d (authority.MaxDelegationDepth)", ErrVerifyOptions, o.Depth, authority.MaxDelegationDepth)
	}
	if o.Alg == 0 {
		o.Alg = authority.AlgEd25519
	}
	if o.Rounds == 0 {
		o.Rounds = DefaultVerifyRounds
	}
	if o.Rounds < 1 || o.Rounds > MaxVerifyRounds {
		return VerifyResult{}, fmt.Errorf("%w: rounds %d: want 1 to %d", ErrVerifyOptions, o.Rounds, MaxVerifyRounds)
	}
	if o.Batch <= 0 {
		o.Batch = DefaultVerifyBatch
	}
	if o.Iterations < 0 {
		return VerifyResult{}, fmt.Errorf("%w: iterations %d is negative", ErrVerifyOptions, o.Iterations)
	}
	w, err := buildVerifyWorld(o.Alg, o.Depth, coldChains)
	if err != nil {
		return VerifyResult{}, err
	}
	opts := []authority.Option{authority.WithTime(w.at)}
	for i, r := range w.reqs {
		if d := authority.Verify(w.g, r, opts...); !d.Allow {
			return VerifyResult{}, fmt.Errorf("bench: setup: chain %d is denied: %s: %s", i, d.Reason, d.Message)
		}
	}

	// A cold decision goes through a cache, as a node's does, that holds
	// one chain: the chains cycle, so each misses, is verified in full and
	// then kept in place of the previous one.
	next := 0
	coldOpts := []authority.Option{authority.WithTime(w.at), authority.WithCache(authority.NewCache(1, 0))}
	cold := func() {
		r := w.reqs[next]
		next = (next + 1) % len(w.reqs)
		if d := authority.Verify(w.g, r, coldOpts...); !d.Allow {
			panic("bench: cold decision denied: " + d.Message)
		}
	}
	warmCache := authority.NewCache(0, 0)
	warmReq := w.reqs[0]
	warmOpts := []authority.Option{authority.WithTime(w.at), authority.WithCache(warmCache)}
	authority.Verify(w.g, warmReq, warmOpts...)
	warm := func() {
		if d := authority.Verify(w.g, warmReq, warmOpts...); !d.Allow {
			panic("bench: warm decision denied: " + d.Message)
		}
	}
	sig := func() {
		if !w.sigKey.VerifyUncached(w.sigMsg, w.sigBytes) {
			panic("bench: signature does not verify")
		}
	}
	sigCached := func() {
		if !w.sigKey.Verify(w.sigMsg, w.sigBytes) {
			panic("bench: signature does not verify")
		}
	}
	if st := warmCache.Stats(); st.Entries != 1 {
		return VerifyResult{}, fmt.Errorf("bench: setup: the warm request was not cached (%+v)", st)
	}

	// Each iteration runs one bare signature check, one cold decision,
	// warmPer warm decisions and one check with the key unpacked, each
	// timed on its own: the finest interleaving, so that other work on
	// the machine lands on all of them alike (a clock reading costs well
	// under 0.1% of a signature check, and about 1% of warmPer warm
	// decisions). Each figure is the median of its individual timings: on
	// a shared machine the scheduler takes the CPU away for whole
	// milliseconds now and then, which a mean would charge to whichever
	// operation it happened to interrupt (most often the longest).
	const warmPer = 16
	iters := o.Iterations
	if iters == 0 {
		iter := func() {
			sig()
			cold()
			for range warmPer {
				warm()
			}
			sigCached()
		}
		iters = calibrate(iter, o.Batch)
	}
	var ns [4][]float64
	for range o.Rounds {
		for range iters {
			t0 := time.Now()
			sig()
			t1 := time.Now()
			cold()
			t2 := time.Now()
			for range warmPer {
				warm()
			}
			t3 := time.Now()
			sigCached()
			t4 := time.Now()
			ns[0] = append(ns[0], float64(t1.Sub(t0).Nanoseconds()))
			ns[1] = append(ns[1], float64(t2.Sub(t1).Nanoseconds()))
			ns[2] = append(ns[2], float64(t3.Sub(t2).Nanoseconds())/warmPer)
			ns[3] = append(ns[3], float64(t4.Sub(t3).Nanoseconds()))
		}
	}
	// Allocations apart from the timing: they do not depend on the load.
	allocIters := max(iters, 8)
	_, coldAllocs, coldBytes := measure(cold, allocIters)
	_, warmAllocs, warmBytes := measure(warm, allocIters*warmPer)
	res := VerifyResult{
		Alg:                       o.Alg.String(),
		Depth:                     o.Depth,
		SigVerifyNsPerOp:          int64(median(ns[0])),
		ColdNsPerOp:               int64(median(ns[1])),
		WarmNsPerOp:               int64(median(ns[2])),
		SigVerifyCachedKeyNsPerOp: int64(median(ns[3])),
		ColdAllocsPerOp:           round3(coldAllocs),
		WarmAllocsPerOp:           round3(warmAllocs),
		ColdBytesPerOp:            round3(coldBytes),
		WarmBytesPerOp:            round3(warmBytes),
		ColdChains:                len(w.reqs),
		Rounds:                    o.Rounds,
		GoMaxProcs:                runtime.GOMAXPROCS(0),
	}
	res.ColdRatio = round3(median(ns[1]) / (float64(o.Depth) * median(ns[0])))
	for _, b := range chainOf(warmReq) {
		res.ChainBytes += len(b)
	}
	res.BytesPerCachedChain, res.CacheEstimatePerChain, res.CachedChains = cachedChainBytes(w, opts)
	return res, nil
}

// calibrate returns how many runs of op take about d.
func calibrate(op func(), d time.Duration) int {
	op() // warm up caches and lazily built state
	n := 1
	for {
		start := time.Now()
		for range n {
			op()
		}
		el := time.Since(start)
		if el >= d/4 || n >= 1<<24 {
			per := float64(el) / float64(n)
			return max(1, int(float64(d)/per))
		}
		n *= 4
	}
}

// measure runs op n times and returns ns, allocations and bytes per run.
func measure(op func(), n int) (ns, allocs, bytes float64) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	for range n {
		op()
	}
	el := time.Since(start)
	runtime.ReadMemStats(&m1)
	f := float64(n)
	return float64(el.Nanoseconds()) / f, float64(m1.Mallocs-m0.Mallocs) / f, float64(m1.TotalAlloc-m0.TotalAlloc) / f
}

// cachedChainBytes fills a fresh cache with every chain of w and returns the
// heap its entries hold per chain (the live heap after a GC with the cache
// full, less that after emptying it: exactly what the entries kept), the
// cache's own estimate per chain, and the number of chains.
func cachedChainBytes(w *verifyWorld, opts []authority.Option) (measured, estimate float64, n int) {
	c := authority.NewCache(len(w.reqs), 1<<40)
	all := append(slices.Clone(opts), authority.WithCache(c))
	for _, r := range w.reqs {
		authority.Verify(w.g, r, all...)
	}
	st := c.Stats()
	n = st.Entries
	if n == 0 {
		return 0, 0, 0
	}
	var full, empty runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&full)
	c.Purge()
	runtime.GC()
	runtime.ReadMemStats(&empty)
	runtime.KeepAlive(c)
	return float64(int64(full.HeapAlloc)-int64(empty.HeapAlloc)) / float64(n), float64(st.Bytes) / float64(n), n
}

// chainOf returns the presented envelopes of r.
func chainOf(r authority.Request) [][]byte { return append([][]byte{r.Credential}, r.Delegation...) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// The world's names and scope.
const (
	benchSubject  = "spiffe://home.example/workload/etl"
	benchResource = "blob://corp-data/q3.parquet"
)

// buildVerifyWorld founds a home authority and a target whose rule accepts
// the home's principals, and signs chains credential chains of depth links:
// a root credential by the home's root key (bound to a holder key when
// depth > 1), then delegated links, each bound to a fresh holder key but the
// last (a bearer) and signed by its parent's. Keys come from a fixed seed,
// so runs are comparable.
func buildVerifyWorld(alg authority.Alg, depth, chains int) (*verifyWorld, error) {
	rng := rand.NewChaCha8([32]byte{'f', 'e', 'd', 'n', 'o', 'd', 'e'})
	key := func() (*authority.PrivateKey, error) { return authority.GenerateKey(alg, rng) }
	at := time.Unix(1_800_000_000, 0).UTC()
	issued := at.Add(-time.Hour).Unix()
	w := &verifyWorld{g: authority.NewGraph(), at: at}

	found := func(name string) (authority.ID, *authority.PrivateKey, error) {
		k, err := key()
		if err != nil {
			return authority.ID{}, nil, err
		}
		g, err := authority.Sign(authority.Declaration{Kind: authority.KindGenesis, IssuedAt: issued,
			Genesis: &authority.Genesis{Name: name, Kind: "bench", RootKeys: []authority.PublicKey{k.Public()}, Threshold: 1}}, k)
		if err != nil {
			return authority.ID{}, nil, err
		}
		if err := w.g.Apply(g); err != nil {
			return authority.ID{}, nil, err
		}
		return g.ID, k, nil
	}
	home, homeKey, err := found("bench-home")
	if err != nil {
		return nil, fmt.Errorf("bench: setup: %w", err)
	}
	target, targetKey, err := found("bench-target")
	if err != nil {
		return nil, fmt.Errorf("bench: setup: %w", err)
	}
	rule, err := authority.Sign(authority.Declaration{Kind: authority.KindRule, Authority: target, Seq: 1, Prev: target, IssuedAt: issued,
		Rule: &authority.Rule{Source: home, Subjects: "spiffe://home.example/workload/*", Resources: "blob://corp-data/*", Actions: []string{"read"}}}, targetKey)
	if err != nil {
		return nil, fmt.Errorf("bench: setup: %w", err)
	}
	if err := w.g.Apply(rule); err != nil {
		return nil, fmt.Errorf("bench: setup: %w", err)
	}
	for n := range chains {
		req, root, err := benchChain(rng, key, home, homeKey, target, depth, at)
		if err != nil {
			return nil, fmt.Errorf("bench: setup: chain %d: %w", n, err)
		}
		if n == 0 {
			w.sigKey, w.sigMsg, w.sigBytes = homeKey.Public(), root.ToBeSigned(0), root.SignatureBytes(0)
		}
		w.reqs = append(w.reqs, req)
	}
	return w, nil
}

// benchChain signs a chain and returns the request presenting it and its
// root credential.
func benchChain(rng io.Reader, key func() (*authority.PrivateKey, error), home authority.ID, homeKey *authority.PrivateKey, target authority.ID, depth int, at time.Time) (authority.Request, *authority.Signed, error) {
	serial := make([]byte, 16)
	if _, err := io.ReadFull(rng, serial); err != nil {
		return authority.Request{}, nil, err
	}
	signer := homeKey
	var parent authority.ID
	var links []*authority.Signed
	for i := range depth {
		c := &authority.Credential{
			Subject:   benchSubject,
			NotBefore: at.Add(-time.Duration(60-i) * time.Minute).Unix(),
			NotAfter:  at.Add(time.Duration(60-i) * time.Minute).Unix(),
			Resources: "blob://corp-data/*",
			Actions:   []string{"read"},
			Parent:    parent,
		}
		if i == 0 {
			c.Serial = serial
		}
		var holder *authority.PrivateKey
		if i < depth-1 {
			var err error
			if holder, err = key(); err != nil {
				return authority.Request{}, nil, err
			}
			hk := holder.Public()
			c.HolderKey = &hk
		}
		s, err := authority.Sign(authority.Declaration{Kind: authority.KindCredential, Authority: home, IssuedAt: at.Add(-time.Hour).Unix(), Credential: c}, signer)
		if err != nil {
			return authority.Request{}, nil, err
		}
		links = append(links, s)
		parent, signer = s.ID, holder
	}
	req := authority.Request{Credential: links[len(links)-1].Raw, Target: target, Resource: benchResource, Action: "read"}
	for i := len(links) - 2; i >= 0; i-- {
		req.Delegation = append(req.Delegation, links[i].Raw)
	}
	return req, links[0], nil
}
