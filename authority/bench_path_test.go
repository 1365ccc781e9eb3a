package authority_test

import (
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/fednode/fednode/authority"
)

// BenchmarkVerifyPath measures a cold decision (every envelope parsed and
// every signature checked, as each request is) over a credential chain of
// depth credentials (depth Ed25519 checks: the credential and depth-1
// delegation links, the leaf a bearer) and a path of two rules
// (aws-prod → gcp-data → azure-corp). ns/sig is ns/op divided by depth, to
// compare with BenchmarkEd25519Verify below.
func BenchmarkVerifyPath(b *testing.B) {
	for depth := 1; depth <= authority.MaxDelegationDepth; depth++ {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			s := newSB(b)
			twoHop(s, nil, nil)
			links := []*authority.Signed{issue(b, s.aws, holds(b, etlCred(), 70))}
			for i := 1; i < depth; i++ {
				cr := etlCred()
				if i < depth-1 {
					cr = holds(b, cr, byte(70+i))
				}
				links = append(links, delegate(b, links[i-1], byte(70+i-1), cr))
			}
			var parents []*authority.Signed
			for i := len(links) - 2; i >= 0; i-- {
				parents = append(parents, links[i])
			}
			leaf := links[len(links)-1]
			if depth == 1 {
				leaf = issue(b, s.aws, etlCred()) // a bearer root
			}
			req := s.request(leaf, parents...)
			opts := []authority.Option{authority.WithTime(now)}
			if d := authority.Verify(s.g, req, opts...); !d.Allow || len(d.Path) != 2 {
				b.Fatalf("setup: %s: %s", d.Reason, d.Message)
			}
			b.ReportAllocs()
			for b.Loop() {
				authority.Verify(s.g, req, opts...)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(depth), "ns/sig")
		})
	}
}

// BenchmarkEd25519Verify is one bare Ed25519 verification of a message the
// size of a credential's Sig_structure: the unit of BenchmarkVerifyPath.
func BenchmarkEd25519Verify(b *testing.B) {
	k := rawKey(seedAWS)
	pub := k.Public().(ed25519.PublicKey)
	msg := make([]byte, 300)
	sig := ed25519.Sign(k, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("does not verify")
		}
	}
}

// BenchmarkVerifyPathSearch measures decisions that are all path search and
// no extra signature: the longest allowed path (MaxPathLength rules), and a
// graph built to explode, denied once MaxRulesExamined rules are examined
// (the most a request can make the search do).
func BenchmarkVerifyPathSearch(b *testing.B) {
	b.Run(fmt.Sprintf("path=%d", authority.MaxPathLength), func(b *testing.B) {
		s := newSB(b)
		src := s.aws.id()
		for i := range authority.MaxPathLength - 1 {
			p := s.found(fmt.Sprintf("p%d", i), byte(60+i))
			s.rule(p, etlRule(src, uint8(i)))
			src = p.id()
		}
		s.rule(s.azure, etlRule(src, authority.MaxPathLength-1))
		benchDecision(b, s, true)
	})
	b.Run("exploding-graph", func(b *testing.B) {
		s := newSB(b)
		s.explode(8, 3)
		benchDecision(b, s, false)
	})
}

func benchDecision(b *testing.B, s *sb, allow bool) {
	req := s.request(issue(b, s.aws, etlCred()))
	opts := []authority.Option{authority.WithTime(now)}
	if d := authority.Verify(s.g, req, opts...); d.Allow != allow {
		b.Fatalf("setup: %s: %s", d.Reason, d.Message)
	}
	b.ReportAllocs()
	for b.Loop() {
		authority.Verify(s.g, req, opts...)
	}
}
