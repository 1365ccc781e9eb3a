package authority_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// BenchmarkVerify measures one decision. A chain is issuer genesis ->
// credential -> target rule, so its cost grows with the rules of the target
// that must be scanned: rules=N has N rules for the issuer of which only the
// last matches.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			w := newWorld(b)
			for i := range n - 1 {
				w.apply(b, w.azure.rule(b, w.aws.id(), fmt.Sprintf("arn:aws:iam::111122223333:role/other-%d-*", i), dataPattern, []string{"read"}, now.Add(-24*time.Hour), now.Add(24*time.Hour)))
			}
			w.etlRule(b)
			req := w.request(w.etlCredential(b).Raw)
			opts := []authority.Option{authority.WithTime(now), authority.WithGraphAsOf(now)}
			if d := authority.Verify(w.g, req, opts...); !d.Allow {
				b.Fatalf("setup: %s: %s", d.Reason, d.Message)
			}
			b.ReportAllocs()
			for b.Loop() {
				authority.Verify(w.g, req, opts...)
			}
		})
	}
}

// BenchmarkSign is validate + encode + Ed25519 sign + Parse of the result.
func BenchmarkSign(b *testing.B) {
	w := newWorld(b)
	d := credentialDecl(w.aws.id(), etlSubject, now.Add(-time.Hour), now.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authority.Sign(d, w.aws.key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse decodes a credential envelope (no signature check).
func BenchmarkParse(b *testing.B) {
	for _, kind := range []string{"credential", "rule"} {
		b.Run(kind, func(b *testing.B) {
			w := newWorld(b)
			raw := w.etlCredential(b).Raw
			if kind == "rule" {
				raw = w.etlRule(b).Raw
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := authority.Parse(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseVerify is Parse plus the Ed25519 signature check.
func BenchmarkParseVerify(b *testing.B) {
	w := newWorld(b)
	raw := w.etlCredential(b).Raw
	keys := []authority.PublicKey{w.aws.key.Public()}
	b.ReportAllocs()
	for b.Loop() {
		s, err := authority.Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.VerifyWith(keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	long := strings.Repeat("a", 10000)
	for _, bc := range []struct{ name, pattern, s string }{
		{"literal", "read", "read"},
		{"arn", etlPattern, etlSubject},
		{"arn-miss", etlPattern, adminSubject},
		{"stars-10k", "*a*a*a*a*a*b", long},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				authority.Match(bc.pattern, bc.s)
			}
		})
	}
}
