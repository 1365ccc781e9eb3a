package authority

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// TestCacheComparesFullBytes: the chain hash only picks a candidate; an
// entry answers only for exactly the bytes it was parsed from, so neither a
// collision of the sampled hash nor a chain that shares a prefix or the
// leaf with a cached one is answered from it.
func TestCacheComparesFullBytes(t *testing.T) {
	k := testKey(t, AlgEd25519, 7)
	issuer := IDOf([]byte("issuer"))
	cred := func(subject string, parent ID) *Signed {
		s, err := Sign(Declaration{Kind: KindCredential, Authority: issuer, IssuedAt: 1, Credential: &Credential{Subject: subject, Parent: parent}}, k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := cred("subject-a", ID{}), cred("subject-b", ID{})
	child := cred("subject-a", a.ID)
	reqA := Request{Credential: a.Raw}
	reqB := Request{Credential: b.Raw}
	full := func(links ...*Signed) *chainMemo {
		m := newChainMemo(links)
		for i, l := range links {
			for j := range l.Signatures {
				m.keys[i][j] = k.Public()
			}
		}
		m.record = false
		return m
	}
	c := NewCache(0, 0)
	// a's chain filed under b's hash, as a collision would.
	c.put(c.hashChain(&reqB), []*Signed{a}, full(a))
	if e, _ := c.get(&reqB); e != nil {
		t.Fatal("a colliding entry answered for other bytes")
	}
	if e, _ := c.get(&reqA); e != nil {
		t.Fatal("an entry answered under a hash its bytes do not have")
	}
	c.put(c.hashChain(&reqA), []*Signed{a}, full(a))
	if e, _ := c.get(&reqA); e == nil || e.links[0] != a {
		t.Fatal("the entry does not answer for its own bytes")
	}
	for _, tt := range []struct {
		name string
		req  Request
	}{
		{name: "the cached leaf with a delegation link more", req: Request{Credential: a.Raw, Delegation: [][]byte{a.Raw}}},
		{name: "a child of the cached credential", req: Request{Credential: child.Raw, Delegation: [][]byte{a.Raw}}},
		{name: "the cached bytes with one byte changed", req: Request{Credential: flip(a.Raw, len(a.Raw)/2)}},
		{name: "the cached bytes truncated", req: Request{Credential: a.Raw[:len(a.Raw)-1]}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if e, _ := c.get(&tt.req); e != nil {
				t.Fatal("answered from the cache")
			}
		})
	}
	// The same chain filed twice under one hash: one entry.
	c.put(c.hashChain(&reqA), []*Signed{a}, full(a))
	if st := c.Stats(); st.Entries != 2 {
		t.Fatalf("%d entries, want 2 (a, and a under b's hash)", st.Entries)
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 1
	return out
}

// TestAllowMessageMatchesFormat: allowPath builds its one-rule message by
// hand; it must read exactly as the format it replaced.
func TestAllowMessageMatchesFormat(t *testing.T) {
	g := NewGraph()
	for _, tt := range []struct{ name, subject, action, res string }{
		{name: "plain", subject: "arn:aws:iam::1:role/etl", action: "read", res: "blob://x/y"},
		{name: "quotes and unicode", subject: "a \"quoted\" ünï\tcode\x00", action: "wr\"ite", res: "r/ü"},
		{name: "empty", subject: "", action: "", res: ""},
		{name: "backslash and a long subject", subject: "a\\b" + strings.Repeat("x", 300), action: "read", res: "r"},
		{name: "printable ASCII only", subject: "spiffe://x/y z~!", action: "read", res: "r"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := &request{v: g, home: IDOf([]byte("home")), target: IDOf([]byte("target")), subject: tt.subject, action: tt.action, res: tt.res}
			ri := &RuleInfo{ID: IDOf([]byte("rule")), Target: q.target}
			var d Decision
			allowPath(q, &d, []*RuleInfo{ri})
			want := fmt.Sprintf("%s accepts %q of %s for %s on %s (rule %s)", q.target.Short(), q.subject, q.home.Short(), q.action, q.res, ri.ID.Short())
			if d.Message != want {
				t.Fatalf("message\n%q, want\n%q", d.Message, want)
			}
		})
	}
}

// TestHolderKeysNotKept: verifying a delegated chain keeps the issuer's
// root key (a key of the graph) decoded (unpacked for ML-DSA-65, the point
// and its table for Ed25519, both halves of a hybrid), never the holder
// keys of the presented chain.
func TestHolderKeysNotKept(t *testing.T) {
	tests := []struct {
		name         string
		alg          Alg
		root, holder byte // key seeds no other test uses
	}{
		{"ed25519", AlgEd25519, 231, 232},
		{"mldsa65", AlgMLDSA65, 31, 32},
		{"hybrid", AlgHybrid, 233, 234},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, holder := testKey(t, tc.alg, tc.root), testKey(t, tc.alg, tc.holder)
			gen, err := Sign(Declaration{Kind: KindGenesis, IssuedAt: 1, Genesis: &Genesis{Name: "h", RootKeys: []PublicKey{root.Public()}, Threshold: 1}}, root)
			if err != nil {
				t.Fatal(err)
			}
			g := NewGraph()
			if err := g.Apply(gen); err != nil {
				t.Fatal(err)
			}
			hk := holder.Public()
			parent, err := Sign(Declaration{Kind: KindCredential, Authority: gen.ID, IssuedAt: 1, Credential: &Credential{Subject: "s", HolderKey: &hk}}, root)
			if err != nil {
				t.Fatal(err)
			}
			child, err := Sign(Declaration{Kind: KindCredential, Authority: gen.ID, IssuedAt: 1, Credential: &Credential{Subject: "s", Parent: parent.ID}}, holder)
			if err != nil {
				t.Fatal(err)
			}
			d := Verify(g, Request{Credential: child.Raw, Delegation: [][]byte{parent.Raw}, Target: IDOf([]byte("nowhere"))}, WithTime(time.Unix(100, 0)))
			if d.Reason != ReasonUnknownAuthority || len(d.Chain) != 3 {
				t.Fatalf("the chain did not verify up to the target: %s: %s", d.Reason, d.Message)
			}
			// kept reports whether every decoded part of k is in the
			// process-wide cache, and whether any is.
			kept := func(k PublicKey) (all, any bool) {
				parts := [][]byte{k.Key}
				if k.Alg == AlgHybrid {
					parts = [][]byte{k.Key[:mldsa65.PublicKeySize], k.Key[mldsa65.PublicKeySize:]}
				}
				mldsaKeys.mu.Lock()
				defer mldsaKeys.mu.Unlock()
				all = true
				for _, p := range parts {
					_, ok := mldsaKeys.byKey[string(p)]
					all, any = all && ok, any || ok
				}
				return all, any
			}
			rootKept, _ := kept(root.Public())
			_, holderKept := kept(hk)
			if !rootKept || holderKept {
				t.Fatalf("root key kept %v (want true), holder key kept %v (want false)", rootKept, holderKept)
			}
		})
	}
}
