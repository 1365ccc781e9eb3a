package consensus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestSingleNodeBootstrapApply(t *testing.T) {
	c := newCluster(t, nil)
	n := c.add("n1", true)
	if l := c.leader(); l != n {
		t.Fatalf("leader is %s, want n1", l.id)
	}

	var last uint64
	for i := range 5 {
		idx := apply(t, n, fmt.Sprintf("cmd-%d", i))
		if idx <= last {
			t.Fatalf("index %d after %d: not increasing", idx, last)
		}
		last = idx
	}
	if got := len(n.state.Entries()); got != 5 {
		t.Fatalf("state holds %d entries, want 5", got)
	}
	if got := n.state.AppliedIndex(); got != last {
		t.Fatalf("applied index %d, want %d", got, last)
	}

	st := n.raft.Stats()
	if st.State != StateLeader || st.Leader != "n1" || !slices.Equal(st.Voters, []string{"n1"}) || len(st.NonVoters) != 0 {
		t.Fatalf("stats = %+v, want leader n1, sole voter", st)
	}
	if st.LastIndex < last || st.CommitIndex < last || st.Term == 0 {
		t.Fatalf("stats = %+v, want last and commit index >= %d and a term", st, last)
	}
	servers, err := n.raft.Servers()
	if err != nil || !slices.Equal(servers, []Server{{ID: "n1", Voter: true}}) {
		t.Fatalf("servers = %v, %v; want [n1 voter]", servers, err)
	}
	if err := n.raft.Barrier(context.Background()); err != nil {
		t.Fatalf("barrier: %v", err)
	}

	// A command the FSM rejects is committed, reported with its index, and
	// marked applied; the node carries on.
	_, idx, err := n.raft.Apply(context.Background(), Command{Type: 99, Body: []byte("x")})
	if !errors.Is(err, ErrUnknownCommand) || idx <= last {
		t.Fatalf("apply unknown type: index %d, err %v; want ErrUnknownCommand after %d", idx, err, last)
	}
	if got := n.state.AppliedIndex(); got < idx {
		t.Fatalf("applied index %d after the unknown command at %d", got, idx)
	}
	apply(t, n, "after-unknown")

	if _, _, err := n.raft.Apply(context.Background(), Command{Type: cmdRecord, Body: make([]byte, MaxCommandSize)}); !errors.Is(err, ErrCommandTooLarge) {
		t.Fatalf("apply oversized command: %v, want ErrCommandTooLarge", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := n.raft.Apply(ctx, Command{Type: cmdRecord}); !errors.Is(err, context.Canceled) {
		t.Fatalf("apply with a cancelled context: %v, want context.Canceled", err)
	}

	if err := n.raft.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := n.raft.Shutdown(); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if got := n.raft.State(); got != StateShutdown {
		t.Fatalf("state after shutdown = %s", got)
	}
	if _, _, err := n.raft.Apply(context.Background(), Command{Type: cmdRecord}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("apply after shutdown: %v, want ErrShutdown", err)
	}
}

func TestClusterReplicatesInOrder(t *testing.T) {
	c := newCluster(t, nil)
	l := c.grow(3)

	// Adding a voter twice is a no-op.
	if err := l.raft.AddVoter(context.Background(), "n2"); err != nil {
		t.Fatalf("add n2 again: %v", err)
	}
	servers, err := l.raft.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("servers = %v, %v; want 3", servers, err)
	}

	// Concurrent proposers, so the order is decided by Raft, not by us.
	const workers, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf("w%d-%d", w, i)
				if _, _, err := l.raft.Apply(context.Background(), Command{Type: cmdRecord, Body: []byte(body)}); err != nil {
					errs <- fmt.Errorf("apply %s: %w", body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// One unknown command in the stream: marked applied everywhere.
	_, bad, err := l.raft.Apply(context.Background(), Command{Type: 200})
	if !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("apply unknown: %v", err)
	}
	apply(t, l, "last")

	for _, n := range c.nodes {
		waitEntries(t, n, workers*each+1)
		waitFor(t, "the unknown command marked applied at "+n.id, func() bool { return n.state.AppliedIndex() > bad })
	}
	want := l.state.Entries()
	if len(want) != workers*each+1 {
		t.Fatalf("leader holds %d entries, want %d", len(want), workers*each+1)
	}
	sameEntries(t, want, c.nodes...)
}

func TestFollowerApplyReturnsNotLeader(t *testing.T) {
	c := newCluster(t, nil)
	l := c.grow(3)
	for _, f := range c.followers(l) {
		_, _, err := f.raft.Apply(context.Background(), Command{Type: cmdRecord, Body: []byte("x")})
		var nle *NotLeaderError
		if !errors.As(err, &nle) || !errors.Is(err, ErrNotLeader) {
			t.Fatalf("apply at follower %s: %v, want a *NotLeaderError", f.id, err)
		}
		if nle.Leader != l.id {
			t.Fatalf("apply at follower %s names leader %q, want %q", f.id, nle.Leader, l.id)
		}
		if err := f.raft.AddVoter(context.Background(), "n9"); !errors.As(err, &nle) {
			t.Fatalf("add voter at follower %s: %v, want a *NotLeaderError", f.id, err)
		}
		if err := f.raft.Barrier(context.Background()); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("barrier at follower %s: %v, want ErrNotLeader", f.id, err)
		}
	}
}

func TestLeaderShutdownElectsNewLeader(t *testing.T) {
	c := newCluster(t, nil)
	old := c.grow(3)
	apply(t, old, "before")
	c.stop(old)

	l := c.leader()
	if l == old {
		t.Fatal("the stopped node is still the leader")
	}
	apply(t, l, "after")
	for _, n := range c.followers(l) {
		waitEntries(t, n, 2)
	}
	sameEntries(t, l.state.Entries(), c.followers(l)...)
}

func TestRestartCatchesUpWithoutReapplying(t *testing.T) {
	c := newCluster(t, nil)
	l := c.grow(3)
	f := c.followers(l)[0]
	for i := range 30 {
		apply(t, l, fmt.Sprintf("a%d", i))
	}
	waitEntries(t, f, 30)
	// A snapshot on the follower: on restart it must not be restored (the
	// state is persistent) and the entries after it are replayed, skipped.
	if err := f.raft.Snapshot(); err != nil {
		t.Fatalf("snapshot at %s: %v", f.id, err)
	}
	for i := range 10 {
		apply(t, l, fmt.Sprintf("b%d", i))
	}
	waitEntries(t, f, 40)

	c.stop(f)
	for i := range 20 {
		apply(t, l, fmt.Sprintf("c%d", i))
	}
	c.start(f, false)

	waitEntries(t, f, 60)
	apply(t, l, "d")
	waitEntries(t, f, 61)
	sameEntries(t, l.state.Entries(), f)
	if twice := f.seen.twice(); len(twice) > 0 {
		t.Fatalf("the restarted node's handler saw indexes %v more than once", twice)
	}
	if got := f.state.Restores(); got != 0 {
		t.Fatalf("the restarted node restored %d snapshots, want 0", got)
	}
}

func TestPartitionedFollowerCatchesUpBySnapshot(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.TrailingLogs = 10
		cfg.SnapshotThreshold = 20
	})
	l := c.grow(3)
	fs := c.followers(l)
	lag, other := fs[0], fs[1]
	apply(t, l, "shared")
	waitEntries(t, lag, 1)

	c.net.Partition(lag.id)
	for i := range 100 {
		apply(t, l, fmt.Sprintf("p%d", i))
	}
	if err := l.raft.Snapshot(); err != nil {
		t.Fatalf("snapshot at the leader: %v", err)
	}
	// The leader's log no longer holds what the lagging node needs next.
	first, err := l.store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if lagLast := lag.raft.Stats().LastIndex; first <= lagLast+1 {
		t.Fatalf("leader's log starts at %d, lagging node has up to %d: no InstallSnapshot needed", first, lagLast)
	}
	if got := len(lag.state.Entries()); got != 1 {
		t.Fatalf("partitioned node holds %d entries, want 1", got)
	}

	c.net.Heal()
	waitEntries(t, lag, 101)
	apply(t, l, "after-heal")
	waitEntries(t, lag, 102)
	waitEntries(t, other, 102)
	sameEntries(t, l.state.Entries(), lag, other)
	if lag.state.Restores() == 0 {
		t.Fatal("the lagging node caught up without restoring a snapshot")
	}
}

// A state that needs a restore, or is older than the latest snapshot, is
// rebuilt from the snapshot on start.
func TestRestoreOnStart(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(n *testNode)
	}{
		{name: "interrupted restore", spoil: func(n *testNode) { n.state.Wipe() }},
		{name: "state older than snapshot", spoil: func(n *testNode) { n.state = NewMemState() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, nil)
			n := c.add("n1", true)
			c.leader()
			for i := range 10 {
				apply(t, n, fmt.Sprintf("s%d", i))
			}
			want := n.state.Entries()
			if err := n.raft.Snapshot(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			c.stop(n)
			tt.spoil(n)
			c.start(n, true)
			if got := n.state.Restores(); got != 1 {
				t.Fatalf("restores = %d, want 1", got)
			}
			sameEntries(t, want, n)
			c.leader()
			apply(t, n, "after")
			waitEntries(t, n, 11)
		})
	}
}
