package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// Fixed times of the tests: homes are initialised at t0 and credentials and
// rules are judged at tJudge, inside every window the tests sign.
var (
	t0     = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tJudge = t0.Add(time.Hour)
)

// Deadlines of eventual conditions: generous, for a loaded 2-core machine
// under -race. Polls return as soon as the condition holds.
const (
	waitAgreed = 20 * time.Second
	waitLeader = 30 * time.Second
	pollEvery  = 20 * time.Millisecond
)

// testLogger sends a node's logs to t.Log until the test ends; lines logged
// by goroutines that outlive the test are dropped rather than panic.
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// initHome makes a home for authority name under a fresh temp dir.
func initHome(t testing.TB, name string) *Home {
	t.Helper()
	h, err := Init(filepath.Join(t.TempDir(), name), InitOptions{Name: name, Kind: "sovereign", Now: t0})
	if err != nil {
		t.Fatalf("Init %s: %v", name, err)
	}
	return h
}

// startNode starts a node from home with cfg (Home and Logger filled in) and
// closes it when the test ends.
func startNode(t testing.TB, home *Home, cfg Config) *Node {
	t.Helper()
	cfg.Home = home.Dir
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t).With("home", home.Config.Name)
	}
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New %s: %v", home.Config.Name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// startSingle starts a bootstrapped single-node consortium and waits for its
// genesis to be agreed.
func startSingle(t testing.TB, name string) (*Node, *Home) {
	t.Helper()
	h := initHome(t, name)
	n := startNode(t, h, Config{Bootstrap: true, API: "127.0.0.1:0"})
	waitFor(t, waitAgreed, "own genesis agreed at "+name, func() bool { return n.Agreed(n.Authority()) })
	return n, h
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", d, what)
		}
		time.Sleep(pollEvery)
	}
}

// outsider is an authority that runs no node: a root key and a genesis
// that tests submit (or do not) to a node.
type outsider struct {
	name string
	root *authority.PrivateKey
	gen  *authority.Signed
}

func newOutsider(t testing.TB, name string) *outsider {
	t.Helper()
	k, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	gen := mustSign(t, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: t0.Unix(),
		Genesis:  &authority.Genesis{Name: name, Kind: "oidc", RootKeys: []authority.PublicKey{k.Public()}, Threshold: 1},
	}, k)
	return &outsider{name: name, root: k, gen: gen}
}

func (o *outsider) id() authority.ID { return o.gen.ID }

func mustSign(t testing.TB, d authority.Declaration, k *authority.PrivateKey) *authority.Signed {
	t.Helper()
	sd, err := authority.Sign(d, k)
	if err != nil {
		t.Fatalf("sign %v: %v", d.Kind, err)
	}
	return sd
}

// rule signs a rule of issuer at (seq, prev) accepting principals of source.
func rule(t testing.TB, issuer authority.ID, seq uint64, prev authority.ID, source authority.ID, resources string, k *authority.PrivateKey) *authority.Signed {
	t.Helper()
	return mustSign(t, authority.Declaration{
		Kind: authority.KindRule, Authority: issuer, Seq: seq, Prev: prev, IssuedAt: t0.Unix(),
		Rule: &authority.Rule{
			Source: source, Subjects: "alice*", Resources: resources, Actions: []string{"read"},
			NotBefore: t0.Unix(), NotAfter: t0.Add(24 * time.Hour).Unix(),
		},
	}, k)
}

// credential signs a credential of issuer for subject, valid around tJudge.
func credential(t testing.TB, issuer authority.ID, subject string, k *authority.PrivateKey) *authority.Signed {
	t.Helper()
	return mustSign(t, authority.Declaration{
		Kind: authority.KindCredential, Authority: issuer, IssuedAt: t0.Unix(),
		Credential: &authority.Credential{Subject: subject, NotBefore: t0.Unix(), NotAfter: t0.Add(24 * time.Hour).Unix()},
	}, k)
}

// nextRule signs and submits, through n, a rule of h's authority at its next
// chain position.
func nextRule(t testing.TB, h *Home, n *Node, source authority.ID, resources string) *authority.Signed {
	t.Helper()
	sd, err := SignNext(context.Background(), h, n, t0, func(d *authority.Declaration) {
		d.Kind = authority.KindRule
		d.Rule = &authority.Rule{Source: source, Subjects: "alice*", Resources: resources, Actions: []string{"read"}}
	})
	if err != nil {
		t.Fatalf("sign and submit a rule of %s: %v", h.Config.Name, err)
	}
	return sd
}

func agreedAt(id authority.ID, nodes ...*Node) func() bool {
	return func() bool {
		for _, n := range nodes {
			if !n.Agreed(id) {
				return false
			}
		}
		return true
	}
}

func describe(n *Node) string {
	st := n.Status()
	return fmt.Sprintf("%s: raft %s term %d leader %.12s, graph v%d, pending %d", n.home.Config.Name, st.Raft.State, st.Raft.Term, st.Raft.Leader, st.Graph.Version, st.Pending)
}
