package main

import (
	"encoding/json"
	"testing"
)

// `fednode bench raft --json` prints one JSON object with the issue's
// fields; bad flags are usage errors.
func TestBenchRaftCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nodes: not in -short")
	}
	out, errText, code := runFednode(t, "bench", "raft", "--voters", "1", "--count", "60", "--authorities", "3", "--json")
	if code != 0 {
		t.Fatalf("bench raft: exit %d: %s", code, errText)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bench raft --json printed %q: %v", out, err)
	}
	for _, k := range []string{"committed_per_s", "p50_ms", "p99_ms", "cpu_verify_limit_per_s", "ratio", "latency_at", "voters"} {
		if _, ok := got[k]; !ok {
			t.Errorf("bench raft --json: no %q in %s", k, out)
		}
	}

	tests := []struct {
		name string
		args []string
	}{
		{name: "too many voters", args: []string{"bench", "raft", "--voters", "10"}},
		{name: "negative count", args: []string{"bench", "raft", "--count", "-5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, errText, code := runFednode(t, tt.args...); code == 0 {
				t.Fatalf("%v: exit 0, want an error (%s)", tt.args, errText)
			}
		})
	}
}
