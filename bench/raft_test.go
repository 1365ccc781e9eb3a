package bench

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestRaftOptions(t *testing.T) {
	tests := []struct {
		name string
		o    RaftOptions
		ok   bool
	}{
		{name: "defaults", o: RaftOptions{}, ok: true},
		{name: "too many voters", o: RaftOptions{Voters: 10}},
		{name: "negative count", o: RaftOptions{Count: -1}},
		{name: "more authorities than declarations", o: RaftOptions{Count: 10, Authorities: 11}},
		{name: "negative submitters", o: RaftOptions{Submitters: -2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.defaults()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadOptions)) {
				t.Fatalf("defaults() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// A small run on three real nodes: every declaration is committed at the
// leader and at every voter, and the figures hang together.
func TestRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("three real nodes: not in -short")
	}
	res, err := Raft(context.Background(), RaftOptions{Voters: 3, Count: 700, Authorities: 7, Submitters: 3, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Voters != 3 || res.Declarations != 700 || res.LatencyAt != "leader" || !res.Fsync {
		t.Fatalf("result %+v does not describe the run asked for", res)
	}
	if res.Seconds <= 0 || res.CommittedPerS <= 0 || res.CPUVerifyLimitPerS <= 0 || res.AllVotersSeconds < res.Seconds {
		t.Fatalf("result %+v: want positive rates and all voters no sooner than the leader", res)
	}
	if !(res.P50MS <= res.P99MS && res.P99MS <= res.MaxMS && res.P50MS >= 0) {
		t.Fatalf("latencies p50 %v, p99 %v, max %v are not ordered", res.P50MS, res.P99MS, res.MaxMS)
	}
	if math.Abs(res.Ratio-res.CommittedPerS/res.CPUVerifyLimitPerS) > 1e-9 {
		t.Fatalf("ratio %v, want committed_per_s / cpu_verify_limit_per_s", res.Ratio)
	}
}

func TestQuantileNearestRank(t *testing.T) {
	tests := []struct {
		name string
		n    int
		q    float64
		want int
	}{
		{name: "median of 100", n: 100, q: 0.5, want: 50},
		{name: "p99 of 100", n: 100, q: 0.99, want: 99},
		{name: "p99 of 1", n: 1, q: 0.99, want: 1},
		{name: "p50 of 3", n: 3, q: 0.5, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := make([]time.Duration, tt.n)
			for i := range s {
				s[i] = time.Duration(i + 1)
			}
			if got := quantile(s, tt.q); got != time.Duration(tt.want) {
				t.Fatalf("quantile(%d, %v) = %v, want %v", tt.n, tt.q, got, tt.want)
			}
		})
	}
}
