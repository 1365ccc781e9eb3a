package authority_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/fednode/fednode/authority"
)

// Anchors fixtures live in testdata/anchors/, one envelope per file, named
// after what it holds; regenerate with
//
//	go test ./authority -run TestAnchorsFixtures -update
const anchorsDir = "testdata/anchors"

// otherJWKS is a JWKS of one EdDSA key whose kid the fixture JWTs do not name.
func otherJWKS(t *testing.T) []byte {
	t.Helper()
	k := ed25519.NewKeyFromSeed(seedBytes(seedExtJWTForeign))
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: "other", Algorithm: string(jose.EdDSA), Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func anchorsDecl(a authority.Anchors) authority.Declaration {
	return authority.Declaration{Kind: authority.KindAnchors, Anchors: &a}
}

// TestAnchorsReplace: an Anchors declaration replaces the anchors in
// effect as a whole, in the graph's indexes and so in what Verify trusts.
func TestAnchorsReplace(t *testing.T) {
	rootSubject := func(t *testing.T) string {
		c, err := x509.ParseCertificate(readChain(t, "x509-root-ca.pem")[0])
		if err != nil {
			t.Fatal(err)
		}
		return string(c.RawSubject)
	}
	tests := []struct {
		name    string
		anchors func(t *testing.T) authority.Anchors
		// jwt is the reason of the valid EdDSA JWT afterwards; x509Homes
		// the authorities indexed under the PKI root's subject.
		jwt       authority.Reason
		issuers   int
		x509Homes func(w *extWorld) []authority.ID
	}{
		{"re-declaring the same OIDC anchor keeps it, indexed once", func(t *testing.T) authority.Anchors {
			return authority.Anchors{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: readFixture(t, "jwks.json")}}
		}, authority.ReasonOK, 1, func(w *extWorld) []authority.ID { return []authority.ID{w.pki.id()} }},
		{"X.509 roots replace the OIDC anchor", func(t *testing.T) authority.Anchors {
			return authority.Anchors{X509Roots: readChain(t, "x509-root-ca.pem")}
		}, authority.ReasonUnknownAuthority, 0, func(w *extWorld) []authority.ID { return []authority.ID{w.pki.id(), w.okta.id()} }},
		{"a JWKS without the token's kid", func(t *testing.T) authority.Anchors {
			return authority.Anchors{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: otherJWKS(t)}}
		}, authority.ReasonUntrustedExternal, 1, func(w *extWorld) []authority.ID { return []authority.ID{w.pki.id()} }},
		{"an empty declaration withdraws every anchor", func(t *testing.T) authority.Anchors {
			return authority.Anchors{}
		}, authority.ReasonUnknownAuthority, 0, func(w *extWorld) []authority.ID { return []authority.ID{w.pki.id()} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newExtWorld(t)
			tok := readJWT(t, "jwt-valid-eddsa.jwt")
			if d := authority.Verify(w.g, w.jwtRequest(tok), authority.WithTime(now)); d.Reason != authority.ReasonOK {
				t.Fatalf("before: %s: %s", d.Reason, d.Message)
			}
			w.apply(t, w.okta.next(t, anchorsDecl(tt.anchors(t))))
			d := authority.Verify(w.g, w.jwtRequest(tok), authority.WithTime(now))
			if d.Reason != tt.jwt {
				t.Errorf("JWT after: %s (%s), want %s", d.Reason, d.Message, tt.jwt)
			}
			if got := w.g.AuthoritiesWithIssuer(oidcIssuer); len(got) != tt.issuers {
				t.Errorf("AuthoritiesWithIssuer = %v, want %d", got, tt.issuers)
			}
			if got, want := w.g.AuthoritiesWithRoot([]byte(rootSubject(t))), tt.x509Homes(w); !slices.Equal(got, want) {
				t.Errorf("AuthoritiesWithRoot = %v, want %v", got, want)
			}
			a, _ := w.g.Authority(w.okta.id())
			if (a.OIDC != nil) != (tt.issuers == 1) {
				t.Errorf("AuthorityInfo.OIDC = %+v", a.OIDC)
			}
			// The PKI chain still verifies under pki-corp, first indexed.
			if d := authority.Verify(w.g, w.x509Request(readChain(t, "x509-chain-valid-spiffe.pem")), authority.WithTime(now)); d.Reason != authority.ReasonOK {
				t.Errorf("X.509 after: %s: %s", d.Reason, d.Message)
			}
		})
	}
}

// anchorsFixtures builds the anchors fixtures and the graph they are judged
// against: gov-anchors, 2 of R1 R2 R3, founded with the OIDC anchor, which
// delegates op1 for credentials and op2 for anchors.
func anchorsFixtures(t *testing.T) (*authority.Graph, map[string]*authority.Signed) {
	t.Helper()
	jwks := readFixture(t, "jwks.json")
	gen := mustSignMulti(t, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: unix(now.Add(-30 * 24 * time.Hour)),
		Genesis: &authority.Genesis{Name: "gov-anchors", Kind: "oidc", RootKeys: pubsOf(t, seedR1, seedR2, seedR3), Threshold: 2,
			OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: jwks}},
	}, seedR1, seedR2)
	c := &gov{name: "gov-anchors", genesis: gen, headID: gen.ID, ids: []authority.ID{gen.ID}}
	g := authority.NewGraph()
	apply := func(s *authority.Signed) *authority.Signed {
		if err := g.Apply(s); err != nil {
			t.Fatalf("apply %v: %v", s.Decl.Kind, err)
		}
		return s
	}
	apply(gen)
	apply(c.delegate(t, seedOp1, credKinds, dayAgo, weekAhead, seedR1, seedR2))
	apply(c.delegate(t, seedOp2, []authority.Kind{authority.KindAnchors}, dayAgo, weekAhead, seedR1, seedR3))
	applied := apply(c.next(t, anchorsDecl(authority.Anchors{X509Roots: readChain(t, "x509-root-ca.pem")}), seedR2, seedR3))

	head := c.snapshot()
	try := func(f func() *authority.Signed) *authority.Signed {
		defer c.restore(head)
		return f()
	}
	other := authority.Anchors{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: otherJWKS(t)}}
	return g, map[string]*authority.Signed{
		"anchors-threshold.cbor":                      try(func() *authority.Signed { return c.next(t, anchorsDecl(other), seedR1, seedR3) }),
		"anchors-k-minus-one-signatures.cbor":         try(func() *authority.Signed { return c.next(t, anchorsDecl(other), seedR1) }),
		"anchors-op-key-in-scope.cbor":                try(func() *authority.Signed { return c.next(t, anchorsDecl(other), seedOp2) }),
		"anchors-op-key-out-of-scope.cbor":            try(func() *authority.Signed { return c.next(t, anchorsDecl(other), seedOp1) }),
		"anchors-revocation-of-anchors.cbor":          try(func() *authority.Signed { return c.revoke(t, applied.ID, seedR1, seedR2) }),
		"anchors-withdrawing-every-anchor.cbor":       try(func() *authority.Signed { return c.next(t, anchorsDecl(authority.Anchors{}), seedR1, seedR2) }),
		"anchors-applied-replacing-oidc-by-x509.cbor": applied,
	}
}

// TestAnchorsFixtures: who may sign an Anchors declaration, and that one
// cannot be revoked.
func TestAnchorsFixtures(t *testing.T) {
	g, fx := anchorsFixtures(t)
	if *update {
		if err := os.MkdirAll(anchorsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, s := range fx {
			if err := os.WriteFile(filepath.Join(anchorsDir, name), s.Raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name string
		file string
		want error // nil: accepted
	}{
		{"a threshold of root keys", "anchors-threshold.cbor", nil},
		{"an operational key whose scope names anchors", "anchors-op-key-in-scope.cbor", nil},
		{"an empty declaration withdraws every anchor", "anchors-withdrawing-every-anchor.cbor", nil},
		{"k-1 of k root signatures", "anchors-k-minus-one-signatures.cbor", authority.ErrThresholdNotMet},
		{"an operational key for credentials only", "anchors-op-key-out-of-scope.cbor", authority.ErrKeyNotAuthorised},
		{"revoking an anchors declaration", "anchors-revocation-of-anchors.cbor", authority.ErrNotRevocable},
		{"the applied declaration again", "anchors-applied-replacing-oidc-by-x509.cbor", authority.ErrDuplicate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := readFile(t, filepath.Join(anchorsDir, tt.file))
			if !bytes.Equal(raw, fx[tt.file].Raw) {
				t.Fatalf("%s is stale (regenerate with -update)", tt.file)
			}
			s, err := authority.Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = g.Check(s)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			t.Logf("%v", err)
		})
	}
	names := make([]string, 0, len(fx))
	for n := range fx {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !slices.ContainsFunc(tests, func(c struct {
			name string
			file string
			want error
		}) bool {
			return c.file == n
		}) {
			t.Errorf("fixture %s is not judged by any case", n)
		}
	}
}

// TestAnchorsRefused: an Anchors body breaking a bound or not parsing is
// refused at signing and at parsing, as a genesis's anchors are.
func TestAnchorsRefused(t *testing.T) {
	c := newGov(t, "gov-anchors", 1, []byte{seedR1}, seedR1)
	tests := []struct {
		name    string
		anchors authority.Anchors
	}{
		{"JWKS not JSON", authority.Anchors{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: []byte("{")}}},
		{"empty issuer", authority.Anchors{OIDC: &authority.OIDCAnchor{JWKS: readFixture(t, "jwks.json")}}},
		{"X.509 root that is not a certificate", authority.Anchors{X509Roots: [][]byte{{1, 2, 3}}}},
		{"SPIFFE trust domain not canonical", authority.Anchors{SPIFFE: &authority.SPIFFEAnchor{TrustDomain: "Corp.Example", Roots: readChain(t, "spiffe-root-ca.pem")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := anchorsDecl(tt.anchors)
			d.Authority, d.Seq, d.Prev, d.IssuedAt = c.id(), 1, c.id(), unix(now)
			_, err := authority.Sign(d, fixedKey(t, seedR1))
			if !errors.Is(err, authority.ErrBadAnchor) {
				t.Fatalf("Sign = %v, want ErrBadAnchor", err)
			}
			t.Log(err)
		})
	}
}

// FuzzParseAnchors is FuzzParse seeded with Anchors envelopes: whatever
// parses, Check judges without panicking, deterministically.
func FuzzParseAnchors(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(anchorsDir, "*.cbor"))
	if len(paths) == 0 {
		f.Fatal("no anchors fixtures to seed with")
	}
	for _, p := range paths {
		f.Add(readFile(f, p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := authority.Parse(b)
		if err != nil {
			if s != nil || !errors.Is(err, authority.ErrMalformed) {
				t.Fatalf("Parse = %v, %v; want nil and a wrapped ErrMalformed", s, err)
			}
			return
		}
		g := authority.NewGraph()
		e1, e2 := g.Check(s), g.Check(s)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("Check is not deterministic: %v, %v", e1, e2)
		}
	})
}
