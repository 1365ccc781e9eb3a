package node

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// TestVerifyExternalJWT: an authority that declares an OIDC issuer and its
// JWKS; the target federates it with a requirement on a claim; JWTs from
// authority's fixtures are decided through the API like native credentials.
func TestVerifyExternalJWT(t *testing.T) {
	n, home := startSingle(t, "azure-corp")
	ctx := context.Background()
	c, err := ClientForHome(home)
	if err != nil {
		t.Fatal(err)
	}
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "authority", "testdata", "external", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	key, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	okta, err := authority.Sign(authority.Declaration{Kind: authority.KindGenesis, IssuedAt: t0.Unix(),
		Genesis: &authority.Genesis{Name: "okta-corp", Kind: "oidc", RootKeys: []authority.PublicKey{key.Public()}, Threshold: 1,
			OIDC: &authority.OIDCAnchor{Issuer: "https://login.corp.example", JWKS: fixture("jwks.json")}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, okta.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the OIDC authority agreed", func() bool { return n.Agreed(okta.ID) })
	rule, err := SignNext(ctx, home, n, t0, func(d *authority.Declaration) {
		d.Kind = authority.KindRule
		d.Rule = &authority.Rule{Source: okta.ID, Subjects: "*@corp.example", Resources: "blob://corp-data/*", Actions: []string{"read"},
			Require: []authority.Attr{{Key: "group", Value: "data-readers"}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the rule agreed", func() bool { return n.Agreed(rule.ID) })
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, file string
		want       authority.Reason
	}{
		{"valid EdDSA token", "jwt-valid-eddsa.jwt", authority.ReasonOK},
		{"valid ES256 token", "jwt-valid-es256.jwt", authority.ReasonOK},
		{"wrong audience", "jwt-wrong-audience.jwt", authority.ReasonAudienceMismatch},
		{"expired", "jwt-expired.jwt", authority.ReasonExpired},
		{"unknown kid", "jwt-unknown-kid.jwt", authority.ReasonUntrustedExternal},
		{"alg none", "jwt-alg-none.jwt", authority.ReasonMalformed},
		{"required claim missing", "jwt-no-group.jwt", authority.ReasonConditionFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := c.VerifyExternal(ctx, strings.TrimSpace(string(fixture(tc.file))), nil, "azure-corp", "blob://corp-data/q3", "read", at)
			if err != nil {
				t.Fatal(err)
			}
			if d.Reason != tc.want {
				t.Fatalf("reason %s (%s), want %s", d.Reason, d.Message, tc.want)
			}
			if tc.want == authority.ReasonOK && (len(d.Chain) == 0 || d.Chain[0] != okta.ID) {
				t.Fatalf("chain %v does not start at the OIDC authority", d.Chain)
			}
		})
	}
}
