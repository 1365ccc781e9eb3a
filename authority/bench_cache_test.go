package authority_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// benchChains founds a home and a target authority of alg whose rule admits
// the home's principals, and signs n credential chains of depth links: a
// root credential by the home's root key, then delegated links each signed
// by its parent's holder key (every link but the last, a bearer, holds a
// fresh one). It returns the graph and one allowed request per chain.
func benchChains(b *testing.B, alg authority.Alg, depth, n int) (*authority.Graph, []authority.Request) {
	b.Helper()
	rng := rand.NewChaCha8([32]byte{byte(alg), byte(depth)})
	key := func() *authority.PrivateKey {
		k, err := authority.GenerateKey(alg, rng)
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	sign := func(d authority.Declaration, k *authority.PrivateKey) *authority.Signed {
		s, err := authority.Sign(d, k)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	g := authority.NewGraph()
	found := func(name string) (authority.ID, *authority.PrivateKey) {
		k := key()
		gen := sign(authority.Declaration{Kind: authority.KindGenesis, IssuedAt: unix(now.Add(-hour)),
			Genesis: &authority.Genesis{Name: name, RootKeys: []authority.PublicKey{k.Public()}, Threshold: 1}}, k)
		if err := g.Apply(gen); err != nil {
			b.Fatal(err)
		}
		return gen.ID, k
	}
	home, homeKey := found("home")
	target, targetKey := found("target")
	rule := sign(authority.Declaration{Kind: authority.KindRule, Authority: target, Seq: 1, Prev: target, IssuedAt: unix(now.Add(-hour)),
		Rule: &authority.Rule{Source: home, Subjects: etlPattern, Resources: dataPattern, Actions: []string{"read"}}}, targetKey)
	if err := g.Apply(rule); err != nil {
		b.Fatal(err)
	}
	var reqs []authority.Request
	for c := range n {
		signer, parent := homeKey, authority.ID{}
		var links [][]byte
		for i := range depth {
			cr := &authority.Credential{Subject: etlSubject, NotBefore: unix(now.Add(-time.Duration(60-i) * time.Minute)), NotAfter: unix(now.Add(time.Duration(60-i) * time.Minute)),
				Resources: dataPattern, Actions: []string{"read"}, Parent: parent, Serial: []byte{byte(c), byte(c >> 8)}}
			var holder *authority.PrivateKey
			if i < depth-1 {
				holder = key()
				hk := holder.Public()
				cr.HolderKey = &hk
			}
			s := sign(authority.Declaration{Kind: authority.KindCredential, Authority: home, IssuedAt: unix(now.Add(-hour)), Credential: cr}, signer)
			links = append([][]byte{s.Raw}, links...)
			parent, signer = s.ID, holder
		}
		req := authority.Request{Credential: links[0], Delegation: links[1:], Target: target, Resource: dataResource, Action: "read"}
		if d := authority.Verify(g, req, authority.WithTime(now)); !d.Allow {
			b.Fatalf("setup: %s: %s", d.Reason, d.Message)
		}
		reqs = append(reqs, req)
	}
	return g, reqs
}

// coldChains is how many distinct chains BenchmarkVerifyCold cycles
// through, so that no decision meets the chain the last one verified.
// (Holder keys of presented chains never enter the cache of unpacked
// ML-DSA keys.)
func coldChains(int) int { return 16 }

// BenchmarkVerifyCold is a decision about a chain of depth signatures seen
// for the first time: every envelope parsed, every signature checked,
// through a cache that misses and keeps the chain. ns/sig is ns/op divided
// by depth, to compare with BenchmarkSigVerify.
func BenchmarkVerifyCold(b *testing.B) {
	for _, alg := range authority.Algs {
		for depth := 1; depth <= authority.MaxDelegationDepth; depth++ {
			b.Run(fmt.Sprintf("%v/depth=%d", alg, depth), func(b *testing.B) {
				g, reqs := benchChains(b, alg, depth, coldChains(depth))
				opts := []authority.Option{authority.WithTime(now), nil}
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					opts[1] = authority.WithCache(authority.NewCache(1, 0))
					authority.Verify(g, reqs[i], opts...)
					i = (i + 1) % len(reqs)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(depth), "ns/sig")
			})
		}
	}
}

// BenchmarkVerifyWarm is the same request again: the chain's signatures
// come from the cache, everything else is judged afresh.
func BenchmarkVerifyWarm(b *testing.B) {
	for _, alg := range authority.Algs {
		for depth := 1; depth <= authority.MaxDelegationDepth; depth++ {
			b.Run(fmt.Sprintf("%v/depth=%d", alg, depth), func(b *testing.B) {
				g, reqs := benchChains(b, alg, depth, 1)
				c := authority.NewCache(0, 0)
				opts := []authority.Option{authority.WithTime(now), authority.WithCache(c)}
				authority.Verify(g, reqs[0], opts...)
				b.ReportAllocs()
				for b.Loop() {
					if d := authority.Verify(g, reqs[0], opts...); !d.Allow {
						b.Fatal(d.Message)
					}
				}
				if st := c.Stats(); st.Misses != 1 {
					b.Fatalf("%d misses: the chain was not answered from the cache", st.Misses)
				}
			})
		}
	}
}
