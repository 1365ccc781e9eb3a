package consensus

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestPlanChanges(t *testing.T) {
	always := func(string) bool { return true }
	never := func(string) bool { return false }
	tests := []struct {
		name  string
		self  string
		have  map[string]bool
		want  map[string]bool
		ready func(string) bool
		plan  []Change
	}{
		{name: "nothing to do", self: "a", have: map[string]bool{"a": true, "b": false}, want: map[string]bool{"a": true, "b": false}, ready: always},
		{name: "new voters ready", self: "a", have: map[string]bool{"a": true}, want: map[string]bool{"a": true, "c": true, "b": true}, ready: always,
			plan: []Change{{"b", "add-voter"}, {"c", "add-voter"}}},
		{name: "new voter not ready joins as non-voter", self: "a", have: map[string]bool{"a": true}, want: map[string]bool{"a": true, "b": true}, ready: never,
			plan: []Change{{"b", "add-nonvoter"}}},
		{name: "non-voter promoted once ready", self: "a", have: map[string]bool{"a": true, "b": false}, want: map[string]bool{"a": true, "b": true}, ready: always,
			plan: []Change{{"b", "promote"}}},
		{name: "unreachable voter stays a voter", self: "a", have: map[string]bool{"a": true, "b": true}, want: map[string]bool{"a": true, "b": true}, ready: never},
		{name: "others removed before self, additions first", self: "a", have: map[string]bool{"a": true, "b": true, "z": true}, want: map[string]bool{"b": true, "c": false}, ready: always,
			plan: []Change{{"c", "add-nonvoter"}, {"z", "remove"}, {"a", "remove"}}},
		{name: "demotions", self: "a", have: map[string]bool{"a": true, "b": true, "c": true}, want: map[string]bool{"a": false, "b": false, "c": true}, ready: always,
			plan: []Change{{"b", "demote"}, {"a", "demote"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planChanges(tt.self, tt.have, tt.want, tt.ready)
			if !slices.Equal(got, tt.plan) {
				t.Fatalf("plan %v, want %v", got, tt.plan)
			}
		})
	}
}

// allowSet is a PeerAllowed that tests change while Raft runs.
type allowSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (a *allowSet) allowed(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[id]
}

func (a *allowSet) set(id string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[id] = ok
}

func serverMap(t *testing.T, n *testNode) map[string]bool {
	t.Helper()
	servers, err := n.raft.Servers()
	if err != nil {
		t.Fatalf("servers at %s: %v", n.id, err)
	}
	m := map[string]bool{}
	for _, s := range servers {
		m[s.ID] = s.Voter
	}
	return m
}

// TestReconcileAndRefusal runs real Raft nodes over the loopback network:
// the leader reconciles the configuration to a wanted one (voters,
// non-voters, removals), and a peer PeerAllowed refuses can neither open a
// raft stream to a member nor be dialled by one.
func TestReconcileAndRefusal(t *testing.T) {
	allow := &allowSet{m: map[string]bool{"n1": true, "n2": true, "n3": true, "n4": true}}
	c := newCluster(t, func(cfg *Config) { cfg.PeerAllowed = allow.allowed })
	n1 := c.add("n1", true)
	c.leader()
	c.add("n2", false)
	c.add("n3", false)
	c.add("n4", false)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	if _, err := n1.raft.Reconcile(ctx, map[string]bool{"n1": false}, nil); err == nil || !errors.Is(err, ErrNoVoters) {
		t.Fatalf("reconcile to no voter: %v, want ErrNoVoters", err)
	}
	want := map[string]bool{"n1": true, "n2": true, "n3": true, "n4": false}
	if _, err := n1.raft.Reconcile(ctx, want, nil); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if got := serverMap(t, n1); !mapsEqual(got, want) {
		t.Fatalf("configuration %v, want %v", got, want)
	}
	idx := apply(t, n1, "after-growth")
	for _, n := range c.nodes {
		waitFor(t, "entry at "+n.id, func() bool {
			for _, e := range n.state.Entries() {
				if e.Index == idx {
					return true
				}
			}
			return false
		})
	}

	// n3 is no longer admitted: the leader removes it, and its streams are
	// refused both ways.
	allow.set("n3", false)
	n1.raft.DropRefused()
	want = map[string]bool{"n1": true, "n2": true, "n4": false}
	if _, err := n1.raft.Reconcile(ctx, want, nil); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if got := serverMap(t, n1); !mapsEqual(got, want) {
		t.Fatalf("configuration %v, want %v", got, want)
	}
	n3 := c.nodes[2]
	conn, err := n3.member.Dial(ctx, "n1", RaftProtocol)
	if err != nil {
		t.Fatalf("dial the raft protocol: %v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	_, _ = conn.Write([]byte{0, 1, 2, 3})
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("a refused peer's raft stream was not closed: read %v", err)
	}
	t.Logf("refused stream: %v", err)
	conn.Close()
	if _, err := n1.raft.stream.Dial("n3", time.Second); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("dial a refused peer: %v, want ErrPeerRefused", err)
	}
	// The cluster goes on without it.
	apply(t, n1, "after-removal")
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
