package chainstore

import "testing"

// reservedForGraph lists the prefixes keys.go reserves for graph.go.
var reservedForGraph = []byte("daikromg")

func TestKeyPrefixesDisjoint(t *testing.T) {
	mine := []byte{prefixLog, prefixStable, prefixPeer}
	seen := map[byte]bool{}
	for _, p := range mine {
		if seen[p] {
			t.Fatalf("prefix %q used twice", p)
		}
		seen[p] = true
	}
	for _, p := range reservedForGraph {
		if seen[p] {
			t.Fatalf("prefix %q is reserved for the graph state", p)
		}
	}
}

func TestLogKeyOrder(t *testing.T) {
	tests := []struct {
		name string
		a, b uint64
	}{
		{name: "small", a: 1, b: 2},
		{name: "byte boundary", a: 255, b: 256},
		{name: "high", a: 1 << 40, b: 1<<40 + 1},
		{name: "max", a: ^uint64(0) - 1, b: ^uint64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(logKey(tt.a)) >= string(logKey(tt.b)) {
				t.Fatalf("logKey(%d) does not sort before logKey(%d)", tt.a, tt.b)
			}
			if i, ok := logIndexOf(logKey(tt.b)); !ok || i != tt.b {
				t.Fatalf("logIndexOf(logKey(%d)) = (%d, %v)", tt.b, i, ok)
			}
		})
	}
	if _, ok := logIndexOf([]byte{prefixStable, 0, 0, 0, 0, 0, 0, 0, 1}); ok {
		t.Fatal("logIndexOf accepted a stable key")
	}
}
