package authority_test

import (
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// BenchmarkParseVerifyThreshold is Parse plus Graph.VerifySignature of a rule
// signed 3 of 5 in a COSE_Sign: three signature checks and the threshold
// count, against the graph's root set (the cost of Check for a root
// declaration, minus the position lookups). op-key is the same rule signed by
// one operational key (a COSE_Sign1), for comparison.
func BenchmarkParseVerifyThreshold(b *testing.B) {
	for _, alg := range []authority.Alg{authority.AlgEd25519, authority.AlgMLDSA65} {
		keys := make([]*authority.PrivateKey, 5)
		pubs := make([]authority.PublicKey, 5)
		for i := range keys {
			keys[i] = algKey(b, alg, byte(80+i))
			pubs[i] = keys[i].Public()
		}
		gen, err := authority.SignMulti(authority.Declaration{
			Kind: authority.KindGenesis, IssuedAt: unix(now.Add(-time.Hour)),
			Genesis: &authority.Genesis{Name: "bench", RootKeys: pubs, Threshold: 3},
		}, keys[:3]...)
		if err != nil {
			b.Fatal(err)
		}
		g := authority.NewGraph()
		if err := g.Apply(gen); err != nil {
			b.Fatal(err)
		}
		op := algKey(b, alg, 90)
		deleg, err := authority.SignMulti(authority.Declaration{
			Kind: authority.KindDelegation, Authority: gen.ID, Seq: 1, Prev: gen.ID, IssuedAt: unix(now.Add(-time.Hour)),
			Delegation: &authority.KeyDelegation{Key: op.Public(), Kinds: ruleKinds, NotBefore: unix(dayAgo), NotAfter: unix(weekAhead)},
		}, keys[1:4]...)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Apply(deleg); err != nil {
			b.Fatal(err)
		}
		d := ruleDecl(gen.ID, "*")
		d.Authority, d.Seq, d.Prev, d.IssuedAt = gen.ID, 2, deleg.ID, unix(now)
		for _, bc := range []struct {
			name    string
			signers []*authority.PrivateKey
		}{
			{alg.String() + "/3-of-5", keys[:3]},
			{alg.String() + "/op-key", []*authority.PrivateKey{op}},
		} {
			s, err := authority.SignMulti(d, bc.signers...)
			if err != nil {
				b.Fatal(err)
			}
			if err := g.Check(s); err != nil {
				b.Fatalf("setup: %v", err)
			}
			raw := s.Raw
			b.Run(bc.name, func(b *testing.B) {
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				for b.Loop() {
					p, err := authority.Parse(raw)
					if err != nil {
						b.Fatal(err)
					}
					if err := g.VerifySignature(p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
