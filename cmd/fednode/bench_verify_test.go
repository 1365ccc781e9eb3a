package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchVerifyCommand runs `fednode bench verify` briefly in process: one
// JSON object with the documented fields, a human summary without --json,
// and usage errors (exit 2) for bad flags. It asserts nothing about speed.
func TestBenchVerifyCommand(t *testing.T) {
	out, errText, code := runFednode(t, "bench", "verify", "--depth", "2", "--alg", "mldsa65", "--json", "--rounds", "1", "--batch", "1ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("want one line of JSON, got %q", out)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v: %q", err, out)
	}
	if r["alg"] != "mldsa65" || r["depth"] != float64(2) {
		t.Errorf("alg %v depth %v", r["alg"], r["depth"])
	}
	for _, f := range []string{"cold_ns_per_op", "warm_ns_per_op", "sig_verify_ns_per_op", "cold_ratio", "warm_allocs_per_op", "cold_allocs_per_op", "bytes_per_cached_chain"} {
		if v, ok := r[f].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", f, r[f])
		}
	}

	out, errText, code = runFednode(t, "bench", "verify", "--rounds", "1", "--batch", "1ms")
	if code != 0 || !strings.Contains(out, "ed25519, chain of 1 signature(s)") || !strings.Contains(out, "warm") {
		t.Fatalf("summary: exit %d (%s): %q", code, errText, out)
	}

	for _, tt := range []struct {
		name string
		args []string
	}{
		{name: "depth 0", args: []string{"--depth", "0"}},
		{name: "depth 9", args: []string{"--depth", "9"}},
		{name: "unknown algorithm", args: []string{"--alg", "rsa"}},
		{name: "no rounds", args: []string{"--rounds", "0"}},
		{name: "no batch", args: []string{"--batch", "0s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errText, code := runFednode(t, append([]string{"bench", "verify"}, tt.args...)...)
			if code != 2 || !strings.HasPrefix(errText, "bench verify: ") {
				t.Fatalf("exit %d, %q; want a usage error (2)", code, errText)
			}
		})
	}
}
