package authority

import (
	"fmt"
	"testing"
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
