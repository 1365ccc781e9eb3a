package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/chainstore"
	"github.com/fednode/fednode/node"
)

// SyncOptions configures Sync.
type SyncOptions struct {
	// Declarations is how many signed declarations the peer holds (its own
	// genesis and the other authorities' geneses included). At least 2.
	Declarations int
	// Authorities is how many authorities sign them (default 8).
	Authorities int
	// Dir holds the two nodes' homes; empty: a temporary directory,
	// removed afterwards.
	Dir string
	// Logger receives the nodes' logs; nil discards them.
	Logger *slog.Logger
	// Timeout bounds the catch-up (default 10 minutes).
	Timeout time.Duration
}

// SyncResult is what `fednode bench sync` prints.
type SyncResult struct {
	Declarations int     `json:"declarations"`
	Seconds      float64 `json:"seconds"`
	PerS         float64 `json:"per_s"`
	// Pages is how many sync pages the new node read.
	Pages int `json:"pages"`
	// FillSeconds is how long building the peer's graph took (not measured
	// as sync).
	FillSeconds float64 `json:"fill_seconds"`
	Cores       int     `json:"cores"`
}

// ErrSyncBench: the measurement could not be made.
var ErrSyncBench = errors.New("bench: sync")

// benchEpoch is the issued-at of every generated declaration: a fixed
// time, so the graph is the same in every run but for the keys.
var benchEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Sync measures catch-up: a peer node holds opts.Declarations signed
// declarations (several authorities' geneses, rules and revocations, signed
// for real and committed to its store through the same apply path Raft
// uses); a new node that has never seen the consortium connects to it and
// pulls everything by anti-entropy, each page checked against the peer's
// signed checkpoint, each declaration's signature verified and applied by
// chainstore. The clock runs from starting the new node until its graph
// holds every declaration.
func Sync(ctx context.Context, opts SyncOptions) (SyncResult, error) {
	if opts.Declarations < 2 {
		return SyncResult{}, fmt.Errorf("%w: --declarations %d: want at least 2", ErrSyncBench, opts.Declarations)
	}
	if opts.Authorities <= 0 {
		opts.Authorities = 8
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "fednode-bench-sync-")
		if err != nil {
			return SyncResult{}, fmt.Errorf("%w: %w", ErrSyncBench, err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	peerHome, err := node.Init(filepath.Join(dir, "peer"), node.InitOptions{Name: "peer", Kind: "sovereign", Now: benchEpoch})
	if err != nil {
		return SyncResult{}, fmt.Errorf("%w: %w", ErrSyncBench, err)
	}
	fillStart := time.Now()
	if err := fillStore(peerHome, opts.Declarations, opts.Authorities); err != nil {
		return SyncResult{}, err
	}
	res := SyncResult{Declarations: opts.Declarations, FillSeconds: time.Since(fillStart).Seconds(), Cores: runtime.NumCPU()}

	// The peer serves its store; it needs no Raft quorum to answer sync.
	peer, err := node.New(ctx, node.Config{Home: peerHome.Dir, Logger: logger.With("bench", "peer"), SyncInterval: time.Hour})
	if err != nil {
		return res, fmt.Errorf("%w: start the peer: %w", ErrSyncBench, err)
	}
	defer peer.Close()
	if v := peer.GraphVersion(); v != uint64(opts.Declarations) {
		return res, fmt.Errorf("%w: the peer holds %d declarations, want %d", ErrSyncBench, v, opts.Declarations)
	}
	newHome, err := node.Init(filepath.Join(dir, "new"), node.InitOptions{Name: "newcomer", Kind: "sovereign", Now: benchEpoch})
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrSyncBench, err)
	}

	start := time.Now()
	n, err := node.New(ctx, node.Config{Home: newHome.Dir, Peers: peer.Addrs(), Logger: logger.With("bench", "new"), SyncInterval: time.Hour})
	if err != nil {
		return res, fmt.Errorf("%w: start the new node: %w", ErrSyncBench, err)
	}
	defer n.Close()
	deadline := time.Now().Add(opts.Timeout)
	for n.GraphVersion() < uint64(opts.Declarations) {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%w: the new node holds %d of %d declarations after %v", ErrSyncBench, n.GraphVersion(), opts.Declarations, opts.Timeout)
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		time.Sleep(2 * time.Millisecond)
	}
	el := time.Since(start)
	res.Seconds = el.Seconds()
	res.PerS = float64(opts.Declarations) / el.Seconds()
	res.Pages = n.SyncPagesRead()
	return res, nil
}

// fillStore writes total declarations into the peer's store before it
// starts: the peer's genesis, the other authorities' geneses, then their
// chains interleaved (rules, and every tenth a revocation of an earlier
// rule), committed in batches through chainstore.ApplyDeclarations, which
// verifies each one as a Raft apply does.
func fillStore(h *node.Home, total, authorities int) error {
	gen, err := authority.Parse(h.Genesis)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSyncBench, err)
	}
	authorities = max(1, min(authorities, total-1))
	type chain struct {
		key  *authority.PrivateKey
		gen  *authority.Signed
		decl []*authority.Signed
	}
	chains := make([]*chain, authorities)
	for i := range chains {
		k, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSyncBench, err)
		}
		g, err := authority.Sign(authority.Declaration{
			Kind: authority.KindGenesis, IssuedAt: benchEpoch.Unix(),
			Genesis: &authority.Genesis{Name: fmt.Sprintf("org-%d", i), Kind: "oidc", RootKeys: []authority.PublicKey{k.Public()}, Threshold: 1},
		}, k)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSyncBench, err)
		}
		chains[i] = &chain{key: k, gen: g}
	}
	// Sign the chains in parallel: each chain is sequential (prev), the
	// chains are independent.
	rest := total - 1 - authorities
	var wg sync.WaitGroup
	errs := make([]error, authorities)
	for i, c := range chains {
		count := rest / authorities
		if i < rest%authorities {
			count++
		}
		wg.Go(func() {
			prev := c.gen.ID
			var rules []authority.ID
			for s := 1; s <= count; s++ {
				d := authority.Declaration{Authority: c.gen.ID, Seq: uint64(s), Prev: prev, IssuedAt: benchEpoch.Unix()}
				if s%10 == 0 && len(rules) > 0 {
					d.Kind = authority.KindRevocation
					d.Revocation = &authority.Revocation{Target: rules[len(rules)/2], Reason: "bench"}
				} else {
					d.Kind = authority.KindRule
					d.Rule = &authority.Rule{
						Source: gen.ID, Subjects: fmt.Sprintf("svc-%d-*", s), Resources: fmt.Sprintf("bucket/%d/*", s),
						Actions: []string{"read"}, NotBefore: benchEpoch.Unix(), NotAfter: benchEpoch.Add(365 * 24 * time.Hour).Unix(),
					}
				}
				sd, err := authority.Sign(d, c.key)
				if err != nil {
					errs[i] = err
					return
				}
				if d.Kind == authority.KindRule {
					rules = append(rules, sd.ID)
				}
				c.decl = append(c.decl, sd)
				prev = sd.ID
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: sign: %w", ErrSyncBench, err)
	}
	envs := [][]byte{gen.Raw}
	for _, c := range chains {
		envs = append(envs, c.gen.Raw)
	}
	for j := 0; ; j++ {
		added := false
		for _, c := range chains {
			if j < len(c.decl) {
				envs = append(envs, c.decl[j].Raw)
				added = true
			}
		}
		if !added {
			break
		}
	}

	st, err := chainstore.Open(filepath.Join(h.Dir, "data"), chainstore.Options{})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSyncBench, err)
	}
	defer st.Close()
	const batch = 512 // a Raft entry's worth (node's maxBatchCount)
	for i, index := 0, uint64(1); i < len(envs); i, index = i+batch, index+1 {
		part := envs[i:min(i+batch, len(envs))]
		for k, err := range st.ApplyDeclarations(index, part) {
			if err != nil {
				return fmt.Errorf("%w: fill: declaration %d refused: %w", ErrSyncBench, i+k, err)
			}
		}
	}
	return st.Close()
}
