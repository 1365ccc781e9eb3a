package bench

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestGossipSmall runs the whole benchmark on a small mesh: every trial
// ends with every node denying, and a small burst ends complete at every
// node. The figures are logged, never asserted.
func TestGossipSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh of full nodes")
	}
	res, err := Gossip(context.Background(), GossipOptions{Nodes: 3, Trials: 5, Burst: 200, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v burst %+v", res, *res.Burst)
	if res.Nodes != 3 || res.Trials != 5 {
		t.Fatalf("nodes %d trials %d, want 3 and 5", res.Nodes, res.Trials)
	}
	if !(0 < res.P50MS && res.P50MS <= res.P99MS && res.P99MS <= res.MaxMS) {
		t.Fatalf("quantiles out of order: p50 %v p99 %v max %v", res.P50MS, res.P99MS, res.MaxMS)
	}
	if res.RTTMS <= 0 {
		t.Fatalf("rtt_ms %v", res.RTTMS)
	}
	if b := res.Burst; b == nil || !b.Complete || b.Missing != 0 || b.Declarations != 200 {
		t.Fatalf("burst %+v, want 200 complete at every node", b)
	}
}

func TestGossipBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    GossipOptions
	}{
		{name: "one node", o: GossipOptions{Nodes: 1}},
		{name: "too many nodes", o: GossipOptions{Nodes: MaxGossipNodes + 1}},
		{name: "negative trials", o: GossipOptions{Trials: -1}},
		{name: "negative burst", o: GossipOptions{Burst: -1}},
		{name: "huge burst", o: GossipOptions{Burst: MaxBurst + 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Gossip(context.Background(), tc.o); !errors.Is(err, ErrBadOptions) {
				t.Fatalf("err %v, want ErrBadOptions", err)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name string
		n    int
		q    float64
		want int // the index of the result in 0..n-1
	}{
		{name: "p50 of 100", n: 100, q: 0.5, want: 49},
		{name: "p99 of 100", n: 100, q: 0.99, want: 98},
		{name: "p99 of 10", n: 10, q: 0.99, want: 9},
		{name: "p50 of 1", n: 1, q: 0.5, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := make([]time.Duration, tc.n)
			for i := range s {
				s[i] = time.Duration(i)
			}
			if got := quantile(s, tc.q); got != time.Duration(tc.want) {
				t.Fatalf("got index %d, want %d", got, tc.want)
			}
		})
	}
}
