package consensus

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fednode/fednode/chainstore"
)

// cmdRecord is the command type the test nodes register.
const cmdRecord CommandType = 1

// waitTimeout is the deadline of every eventual condition: generous, since a
// loaded 2-core machine under -race can take seconds for an election.
const waitTimeout = 30 * time.Second

// testLogger sends slog output to t.Log until the test ends; raft's
// transport goroutines can log after that, when t.Log would panic.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs after every other cleanup
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// seenCounter counts handler calls per index, across restarts of a node.
type seenCounter struct {
	mu sync.Mutex
	n  map[uint64]int
}

func (s *seenCounter) add(i uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n[i]++
}

func (s *seenCounter) twice() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for i, n := range s.n {
		if n > 1 {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// testNode is one node's durable parts (store, state, snapshot dir) and,
// while running, its Raft.
type testNode struct {
	id     string
	dir    string
	member *LoopbackMember
	store  *chainstore.Store // nil while stopped
	state  *MemState
	seen   *seenCounter
	raft   *Raft // nil while stopped
}

type cluster struct {
	t     testing.TB
	base  string // holds every node's dir; removed after the nodes stop
	net   *LoopbackNetwork
	log   *slog.Logger
	tweak func(*Config)
	nodes []*testNode
}

func newCluster(t testing.TB, tweak func(*Config)) *cluster {
	c := &cluster{t: t, net: NewLoopbackNetwork(), log: testLogger(t), tweak: tweak}
	// TempDir before the cleanup below, so the nodes stop (and badger
	// flushes) before their directories are removed.
	c.base = t.TempDir()
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
	})
	return c
}

// add creates node id with fresh stores and starts it.
func (c *cluster) add(id string, bootstrap bool) *testNode {
	n := &testNode{
		id:     id,
		dir:    filepath.Join(c.base, id),
		member: c.net.Member(id),
		state:  NewMemState(),
		seen:   &seenCounter{n: make(map[uint64]int)},
	}
	c.nodes = append(c.nodes, n)
	c.start(n, bootstrap)
	return n
}

// start opens n's store (real badger, fsynced) and starts its Raft.
func (c *cluster) start(n *testNode, bootstrap bool) {
	c.t.Helper()
	// Badger is chatty at Debug; its warnings are enough here.
	storeLog := slog.New(minLevel{c.log.Handler(), slog.LevelWarn}).With("node", n.id)
	st, err := chainstore.Open(filepath.Join(n.dir, "db"), chainstore.Options{Logger: storeLog})
	if err != nil {
		c.t.Fatalf("open store of %s: %v", n.id, err)
	}
	n.store = st
	fsm := NewFSM(n.state)
	record := n.state.Handler(cmdRecord)
	fsm.Register(cmdRecord, "record", func(index uint64, body []byte) any {
		n.seen.add(index)
		return record(index, body)
	})
	cfg := Config{
		Network:     n.member,
		Log:         st,
		Stable:      st,
		FSM:         fsm,
		SnapshotDir: filepath.Join(n.dir, "snapshots"),
		Bootstrap:   bootstrap,
		Logger:      c.log.With("node", n.id),
		LogLevel:    slog.LevelInfo,
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", n.id, err)
	}
	n.raft = r
}

// stop shuts n's Raft down and closes its store; n keeps its state.
func (c *cluster) stop(n *testNode) {
	if n.raft != nil {
		if err := n.raft.Shutdown(); err != nil {
			c.t.Errorf("shutdown %s: %v", n.id, err)
		}
		n.raft = nil
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			c.t.Errorf("close store of %s: %v", n.id, err)
		}
		n.store = nil
	}
}

// leader waits until a running node is the leader and the others that run
// agree on it, and returns it.
func (c *cluster) leader() *testNode {
	c.t.Helper()
	var l *testNode
	waitFor(c.t, "a leader", func() bool {
		l = nil
		for _, n := range c.nodes {
			if n.raft != nil && n.raft.IsLeader() {
				l = n
			}
		}
		if l == nil {
			return false
		}
		for _, n := range c.nodes {
			if n.raft != nil && n.raft.Leader() != l.id {
				return false
			}
		}
		return true
	})
	return l
}

// followers returns the running nodes other than l.
func (c *cluster) followers(l *testNode) []*testNode {
	var out []*testNode
	for _, n := range c.nodes {
		if n != l && n.raft != nil {
			out = append(out, n)
		}
	}
	return out
}

// grow bootstraps n1 and adds voters up to size nodes.
func (c *cluster) grow(size int) *testNode {
	c.t.Helper()
	first := c.add("n1", true)
	c.leader()
	for i := 2; i <= size; i++ {
		n := c.add(fmt.Sprintf("n%d", i), false)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := first.raft.AddVoter(ctx, n.id)
		cancel()
		if err != nil {
			c.t.Fatalf("add voter %s: %v", n.id, err)
		}
	}
	return c.leader()
}

// apply proposes body at n and fails the test on error.
func apply(t testing.TB, n *testNode, body string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, idx, err := n.raft.Apply(ctx, Command{Type: cmdRecord, Body: []byte(body)})
	if err != nil {
		t.Fatalf("apply %q at %s: %v", body, n.id, err)
	}
	if res != idx {
		t.Fatalf("apply %q at %s: result %v, want the index %d", body, n.id, res, idx)
	}
	return idx
}

// waitEntries waits until n's state holds want entries.
func waitEntries(t testing.TB, n *testNode, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d entries at %s", want, n.id), func() bool {
		return len(n.state.Entries()) >= want
	})
}

// sameEntries fails unless every node's state holds exactly want's entries.
func sameEntries(t testing.TB, want []MemEntry, nodes ...*testNode) {
	t.Helper()
	for _, n := range nodes {
		got := n.state.Entries()
		if !slices.EqualFunc(got, want, func(a, b MemEntry) bool {
			return a.Index == b.Index && a.Type == b.Type && string(a.Body) == string(b.Body)
		}) {
			t.Fatalf("%s holds %d entries that differ from the %d expected", n.id, len(got), len(want))
		}
	}
}
