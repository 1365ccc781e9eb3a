package bench

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/fednode/fednode/authority"
)

// TestVerifyReportsEveryField runs the measurement briefly for each
// algorithm (a few iterations, two rounds) and checks that the JSON object
// has every field the CLI documents, positive. It asserts nothing about
// speed.
func TestVerifyReportsEveryField(t *testing.T) {
	tests := []struct {
		name  string
		alg   authority.Alg
		depth int
	}{
		{name: "ed25519 depth 1", alg: authority.AlgEd25519, depth: 1},
		{name: "ed25519 depth 3", alg: authority.AlgEd25519, depth: 3},
		{name: "mldsa65 depth 2", alg: authority.AlgMLDSA65, depth: 2},
		{name: "hybrid depth 8", alg: authority.AlgHybrid, depth: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Verify(VerifyOptions{Depth: tt.depth, Alg: tt.alg, Rounds: 2, Iterations: 3})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", b)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m["alg"] != tt.alg.String() {
				t.Errorf("alg = %v, want %v", m["alg"], tt.alg)
			}
			if m["depth"] != float64(tt.depth) {
				t.Errorf("depth = %v, want %d", m["depth"], tt.depth)
			}
			for _, f := range []string{"cold_ns_per_op", "warm_ns_per_op", "sig_verify_ns_per_op", "sig_verify_cached_key_ns_per_op", "cold_ratio",
				"cold_allocs_per_op", "warm_allocs_per_op", "bytes_per_cached_chain", "cache_estimate_bytes_per_chain", "chain_bytes", "cold_chains", "cached_chains"} {
				v, ok := m[f].(float64)
				if !ok || v <= 0 {
					t.Errorf("field %s = %v, want a positive number", f, m[f])
				}
			}
		})
	}
}

func TestVerifyRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    VerifyOptions
	}{
		{name: "depth 0", o: VerifyOptions{Depth: 0}},
		{name: "depth over MaxDelegationDepth", o: VerifyOptions{Depth: authority.MaxDelegationDepth + 1}},
		{name: "negative rounds", o: VerifyOptions{Depth: 1, Rounds: -1}},
		{name: "too many rounds", o: VerifyOptions{Depth: 1, Rounds: MaxVerifyRounds + 1}},
		{name: "negative iterations", o: VerifyOptions{Depth: 1, Iterations: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Verify(tt.o); !errors.Is(err, ErrVerifyOptions) {
				t.Fatalf("Verify = %v, want ErrVerifyOptions", err)
			}
		})
	}
}
