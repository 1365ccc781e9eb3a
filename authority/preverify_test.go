package authority_test

import (
	"errors"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// TestPreVerifyDecidesNothing: PreVerify only saves repeated cryptography;
// Graph.Apply still refuses whatever it refused without it.
func TestPreVerifyDecidesNothing(t *testing.T) {
	a := newChain(t, "aws-prod", 1)
	other := fixedKey(t, 9)
	good := a.rule(t, a.id(), "*", "s3://x/*", []string{"read"}, time.Time{}, time.Time{})

	flipped := append([]byte(nil), good.Raw...)
	flipped[len(flipped)-1] ^= 0x01
	badSig, err := authority.Parse(flipped)
	if err != nil {
		t.Fatal(err)
	}
	// A rule of a's chain signed by a key a never declared.
	stranger := mustSign(t, authority.Declaration{
		Kind: authority.KindRule, Authority: a.id(), Seq: 1, Prev: a.id(), IssuedAt: good.Decl.IssuedAt,
		Rule: &authority.Rule{Source: a.id(), Subjects: "*", Resources: "s3://y/*", Actions: []string{"read"}},
	}, other)

	tests := []struct {
		name    string
		decl    *authority.Signed
		keys    []authority.PublicKey // PreVerify's candidates
		wantErr error
	}{
		{"valid and pre-verified", good, []authority.PublicKey{a.key.Public()}, nil},
		{"valid, no candidate", good, nil, nil},
		{"bad signature stays bad", badSig, []authority.PublicKey{a.key.Public()}, authority.ErrBadSignature},
		{"pre-verified under a key the issuer never declared", stranger, []authority.PublicKey{other.Public()}, authority.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Fresh parses: PreVerify writes to what it is given.
			gen, err := authority.Parse(a.genesis.Raw)
			if err != nil {
				t.Fatal(err)
			}
			sd, err := authority.Parse(tc.decl.Raw)
			if err != nil {
				t.Fatal(err)
			}
			authority.PreVerify([]*authority.Signed{gen, sd}, func(*authority.Signed, []byte) []authority.PublicKey { return tc.keys })
			g := authority.NewGraph()
			if err := g.Apply(gen); err != nil {
				t.Fatal(err)
			}
			if err := g.Apply(sd); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Apply after PreVerify: %v, want %v", err, tc.wantErr)
			}
		})
	}
}
