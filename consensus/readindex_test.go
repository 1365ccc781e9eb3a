package consensus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// A read index covers every acknowledged write, and a follower that waits
// for it holds them all; a partitioned leader cannot hand one out.
func TestReadIndex(t *testing.T) {
	c := newCluster(t, nil)
	l := c.grow(3)
	fs := c.followers(l)
	ctx := context.Background()

	for i := range 5 {
		apply(t, l, fmt.Sprintf("w%d", i))
	}
	wctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	idx, err := l.raft.ReadIndex(wctx)
	if err != nil {
		t.Fatalf("read index at the leader: %v", err)
	}
	last := l.state.Entries()[len(l.state.Entries())-1].Index
	if idx < last {
		t.Fatalf("read index %d is below the last acknowledged write %d", idx, last)
	}
	for _, n := range append(fs, l) {
		if err := n.raft.WaitApplied(wctx, idx); err != nil {
			t.Fatalf("wait applied %d at %s: %v", idx, n.id, err)
		}
		if got := len(n.state.Entries()); got != 5 {
			t.Fatalf("%s holds %d entries after waiting for the read index, want 5", n.id, got)
		}
	}

	tests := []struct {
		name string
		node *testNode
		want error
	}{
		{name: "follower", node: fs[0], want: ErrNotLeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.node.raft.ReadIndex(wctx); !errors.Is(err, tt.want) {
				t.Fatalf("read index at %s: %v, want %v", tt.node.id, err, tt.want)
			}
		})
	}

	// A leader cut off from both followers must not confirm itself.
	c.net.Partition(l.id)
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if _, err := l.raft.ReadIndex(rctx); err == nil {
		t.Fatal("a partitioned leader handed out a read index")
	} else {
		t.Logf("partitioned leader: %v", err)
	}
	c.net.Heal()
}

// WaitApplied ends with ctx when the index never arrives.
func TestWaitAppliedHonoursContext(t *testing.T) {
	c := newCluster(t, nil)
	l := c.grow(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.raft.WaitApplied(ctx, 1<<40); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for an index far ahead: %v, want deadline exceeded", err)
	}
}
