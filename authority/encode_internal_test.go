package authority

import (
	"testing"
	"time"
)

// BenchmarkEncode measures the deterministic CBOR encoding of a declaration
// (the payload step of Sign, without the signature). It is an internal test
// because marshal is unexported.
func BenchmarkEncode(b *testing.B) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Unix()
	for _, bc := range []struct {
		name string
		d    Declaration
	}{
		{"credential", Declaration{Kind: KindCredential, Authority: ID{1}, IssuedAt: now,
			Credential: &Credential{Subject: "arn:aws:iam::111122223333:role/etl-loader", NotBefore: now - 3600, NotAfter: now + 3600}}},
		{"rule", Declaration{Kind: KindRule, Authority: ID{2}, Seq: 1, Prev: ID{2}, IssuedAt: now,
			Rule: &Rule{Source: ID{1}, Subjects: "arn:aws:iam::111122223333:role/etl-*", Resources: "blob://corp-data/*", Actions: []string{"read"}, NotBefore: now - 86400, NotAfter: now + 86400}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := marshal(&bc.d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
