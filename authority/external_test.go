package authority_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/fednode/fednode/authority"
)

// External-credential fixtures live in testdata/external/, one file per
// artefact, named after the defect it holds: the declared JWKS, JWTs
// (*.jwt, compact JWS) and PEM certificates. They are the test's inputs:
// the geneses and rules of the graph are signed in-test from the fixed
// Ed25519 seeds (deterministic), the external artefacts are read from the
// files. Regenerate them with
//
//	go test ./authority -run TestExternalFixtures -update
//
// which derives every key from a fixed seed and draws all other randomness
// (RSA key generation, ES256 signatures) from testing/cryptotest's seeded
// global random. Certificates are Ed25519-signed with fixed serials and
// times, so they too come out the same; only the Go version's use of the
// random stream could change the RSA and ES256 bytes, which is why the
// files, not a regeneration, are what the tests judge.
const externalDir = "testdata/external"

// The external identities of the fixtures.
const (
	oidcIssuer   = "https://login.corp.example"
	oidcSubject  = "alice@corp.example"
	trustDomain  = "corp.example"
	loaderSPIFFE = "spiffe://corp.example/ns/etl/sa/loader"
)

// Seeds of the external fixtures' Ed25519 keys, apart from the authorities'.
const (
	seedExtOkta       byte = 70 // okta-corp's root key
	seedExtPKI        byte = 71 // pki-corp's root key
	seedExtSpire      byte = 72 // spire-corp's root key
	seedExtJWTEd      byte = 80 // the JWKS's EdDSA key
	seedExtJWTForeign byte = 81 // a JWT key no JWKS declares
	seedExtRootCA     byte = 90
	seedExtInterCA    byte = 91
	seedExtLeaf       byte = 92
	seedExtSpiffeCA   byte = 93
	seedExtStrangerCA byte = 94
)

// externalFixtures builds every external artefact, keyed by file name.
// Only -update calls it (see the const comment above).
func externalFixtures(t *testing.T) map[string][]byte {
	t.Helper()
	cryptotest.SetGlobalRandom(t, 1)
	target := newWorld(t).azure // for the ID audience

	edKey := ed25519.NewKeyFromSeed(seedBytes(seedExtJWTEd))
	ecKey, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seedBytes(0x51))
	if err != nil {
		t.Fatalf("ecdsa key: %v", err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("rsa key: %v", err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: edKey.Public(), KeyID: "ed", Algorithm: string(jose.EdDSA), Use: "sig"},
		{Key: ecKey.Public(), KeyID: "ec", Algorithm: string(jose.ES256), Use: "sig"},
		{Key: rsaKey.Public(), KeyID: "rsa", Algorithm: string(jose.RS256), Use: "sig"},
	}}
	jwks, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	out := map[string][]byte{"jwks.json": append(jwks, '\n')}

	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": oidcIssuer, "sub": oidcSubject, "aud": []string{"azure-corp"},
			"iat": now.Add(-10 * time.Minute).Unix(), "nbf": now.Add(-10 * time.Minute).Unix(), "exp": now.Add(50 * time.Minute).Unix(),
			"group": "data-readers", "email": oidcSubject,
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(alg jose.SignatureAlgorithm, kid string, key crypto.Signer, c map[string]any) []byte {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatalf("signer: %v", err)
		}
		tok, err := jwt.Signed(s).Claims(c).Serialize()
		if err != nil {
			t.Fatalf("jwt: %v", err)
		}
		return []byte(tok + "\n")
	}
	foreign := ed25519.NewKeyFromSeed(seedBytes(seedExtJWTForeign))
	out["jwt-valid-eddsa.jwt"] = sign(jose.EdDSA, "ed", edKey, claims(nil))
	out["jwt-valid-es256.jwt"] = sign(jose.ES256, "ec", ecKey, claims(nil))
	out["jwt-valid-rs256-audience-id.jwt"] = sign(jose.RS256, "rsa", rsaKey, claims(func(c map[string]any) { c["aud"] = []string{"someone-else", target.id().String()} }))
	out["jwt-wrong-audience.jwt"] = sign(jose.EdDSA, "ed", edKey, claims(func(c map[string]any) { c["aud"] = []string{"gcp-data"} }))
	out["jwt-expired.jwt"] = sign(jose.EdDSA, "ed", edKey, claims(func(c map[string]any) { c["exp"] = now.Unix() }))
	out["jwt-not-yet-valid.jwt"] = sign(jose.EdDSA, "ed", edKey, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Second).Unix() }))
	out["jwt-unknown-kid.jwt"] = sign(jose.EdDSA, "retired", foreign, claims(nil))
	out["jwt-key-not-in-jwks.jwt"] = sign(jose.EdDSA, "ed", foreign, claims(nil))
	out["jwt-alg-mismatch-kid.jwt"] = sign(jose.ES256, "ed", ecKey, claims(nil))
	out["jwt-undeclared-issuer.jwt"] = sign(jose.EdDSA, "ed", edKey, claims(func(c map[string]any) { c["iss"] = "https://login.stranger.example" }))
	out["jwt-no-group.jwt"] = sign(jose.EdDSA, "ed", edKey, claims(func(c map[string]any) { delete(c, "group") }))
	out["jwt-no-exp.jwt"] = sign(jose.EdDSA, "ed", edKey, claims(func(c map[string]any) { delete(c, "exp") }))
	// alg none: built by hand, as no library will sign one.
	b64 := base64.RawURLEncoding.EncodeToString
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "kid": "ed", "typ": "JWT"})
	body, _ := json.Marshal(claims(nil))
	out["jwt-alg-none.jwt"] = []byte(b64(hdr) + "." + b64(body) + ".\n")
	// HS256 keyed with the EdDSA key's public bytes: the alg-confusion attack.
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(edKey.Public().(ed25519.PublicKey))}, (&jose.SignerOptions{}).WithHeader("kid", "ed"))
	if err != nil {
		t.Fatalf("hs256 signer: %v", err)
	}
	tok, err := jwt.Signed(hs).Claims(claims(nil)).Serialize()
	if err != nil {
		t.Fatalf("hs256: %v", err)
	}
	out["jwt-alg-hs256-confusion.jwt"] = []byte(tok + "\n")

	// X.509: root → intermediate → leaves under pki-corp; a SPIFFE root
	// with SVIDs directly beneath it under spire-corp; a stranger root.
	edk := func(seed byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(seedBytes(seed)) }
	type certSpec struct {
		serial   int64
		cn       string
		ca       bool
		nbf, naf time.Time
		uri      string
		dns      string
	}
	mk := func(spec certSpec, key ed25519.PrivateKey, parent *x509.Certificate, parentKey ed25519.PrivateKey) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(spec.serial),
			Subject:               pkix.Name{CommonName: spec.cn, Organization: []string{"Corp Example"}},
			NotBefore:             spec.nbf,
			NotAfter:              spec.naf,
			BasicConstraintsValid: true,
			IsCA:                  spec.ca,
		}
		if spec.ca {
			tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		} else {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		if spec.uri != "" {
			u, err := url.Parse(spec.uri)
			if err != nil {
				t.Fatalf("uri: %v", err)
			}
			tmpl.URIs = []*url.URL{u}
		}
		if spec.dns != "" {
			tmpl.DNSNames = []string{spec.dns}
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatalf("certificate %s: %v", spec.cn, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("parse %s: %v", spec.cn, err)
		}
		return c
	}
	year := func(n int) time.Time { return now.AddDate(n, 0, 0).Truncate(24 * time.Hour) }
	root := mk(certSpec{serial: 1, cn: "Corp Root CA", ca: true, nbf: year(-2), naf: year(8)}, edk(seedExtRootCA), nil, nil)
	inter := mk(certSpec{serial: 2, cn: "Corp Issuing CA", ca: true, nbf: year(-1), naf: year(4)}, edk(seedExtInterCA), root, edk(seedExtRootCA))
	leaf := func(serial int64, cn string, ca bool, nbf, naf time.Time, uri, dns string) *x509.Certificate {
		return mk(certSpec{serial: serial, cn: cn, ca: ca, nbf: nbf, naf: naf, uri: uri, dns: dns}, edk(seedExtLeaf), inter, edk(seedExtInterCA))
	}
	pemOf := func(cs ...*x509.Certificate) []byte {
		var b []byte
		for _, c := range cs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return b
	}
	out["x509-root-ca.pem"] = pemOf(root)
	out["x509-chain-valid-spiffe.pem"] = pemOf(leaf(10, "etl-loader", false, now.Add(-time.Hour), now.Add(time.Hour), loaderSPIFFE, ""), inter)
	out["x509-chain-valid-dns.pem"] = pemOf(leaf(11, "etl-batch", false, now.Add(-time.Hour), now.Add(time.Hour), "", "batch.corp.example"), inter)
	out["x509-chain-missing-intermediate.pem"] = pemOf(leaf(12, "etl-loader", false, now.Add(-time.Hour), now.Add(time.Hour), loaderSPIFFE, ""))
	out["x509-chain-expired-leaf.pem"] = pemOf(leaf(13, "etl-loader", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour), loaderSPIFFE, ""), inter)
	out["x509-chain-not-yet-valid-leaf.pem"] = pemOf(leaf(14, "etl-loader", false, now.Add(time.Hour), now.Add(48*time.Hour), loaderSPIFFE, ""), inter)
	out["x509-chain-ca-as-leaf.pem"] = pemOf(leaf(15, "etl-loader", true, now.Add(-time.Hour), now.Add(time.Hour), loaderSPIFFE, ""), inter)

	stranger := mk(certSpec{serial: 1, cn: "Stranger Root CA", ca: true, nbf: year(-2), naf: year(8)}, edk(seedExtStrangerCA), nil, nil)
	out["x509-chain-undeclared-root.pem"] = pemOf(mk(certSpec{serial: 20, cn: "etl-loader", nbf: now.Add(-time.Hour), naf: now.Add(time.Hour), uri: loaderSPIFFE}, edk(seedExtLeaf), stranger, edk(seedExtStrangerCA)))

	spiffeRoot := mk(certSpec{serial: 1, cn: "SPIRE Root", ca: true, nbf: year(-2), naf: year(8)}, edk(seedExtSpiffeCA), nil, nil)
	svid := func(serial int64, uri string) *x509.Certificate {
		return mk(certSpec{serial: serial, cn: "svid", nbf: now.Add(-time.Hour), naf: now.Add(time.Hour), uri: uri}, edk(seedExtLeaf), spiffeRoot, edk(seedExtSpiffeCA))
	}
	out["spiffe-root-ca.pem"] = pemOf(spiffeRoot)
	out["spiffe-svid-valid.pem"] = pemOf(svid(30, loaderSPIFFE))
	out["spiffe-svid-other-trust-domain.pem"] = pemOf(svid(31, "spiffe://other.example/ns/etl/sa/loader"))
	out["spiffe-svid-no-spiffe-id.pem"] = pemOf(svid(32, ""))
	return out
}

// TestExternalFixtures rewrites testdata/external under -update, and
// otherwise checks that every artefact the tests read is there.
func TestExternalFixtures(t *testing.T) {
	if *update {
		fx := externalFixtures(t)
		if err := os.MkdirAll(externalDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range fx {
			if err := os.WriteFile(filepath.Join(externalDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for _, name := range []string{"jwks.json", "jwt-valid-eddsa.jwt", "x509-root-ca.pem", "spiffe-root-ca.pem"} {
		if _, err := os.Stat(filepath.Join(externalDir, name)); err != nil {
			t.Errorf("fixture %s: %v (regenerate with -update)", name, err)
		}
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(externalDir, name))
	if err != nil {
		t.Fatalf("fixture %s: %v (regenerate: go test ./authority -run TestExternalFixtures -update)", name, err)
	}
	return b
}

func readJWT(t *testing.T, name string) string {
	return strings.TrimSpace(string(readFixture(t, name)))
}

// readChain returns the DER certificates of a PEM fixture, in file order.
func readChain(t *testing.T, name string) [][]byte {
	t.Helper()
	rest := readFixture(t, name)
	var out [][]byte
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		out = append(out, b.Bytes)
	}
}

// extWorld is the standard world plus three authorities with external
// anchors, and azure-corp rules accepting each.
type extWorld struct {
	*world
	okta, pki, spire *chain
	rules            map[string]authority.ID
}

func anchoredChain(t *testing.T, name string, seed byte, g authority.Genesis) *chain {
	t.Helper()
	k := fixedKey(t, seed)
	g.Name, g.Kind, g.RootKeys, g.Threshold = name, "external", []authority.PublicKey{k.Public()}, 1
	s := mustSign(t, authority.Declaration{Kind: authority.KindGenesis, IssuedAt: unix(now.Add(-30 * 24 * time.Hour)), Genesis: &g}, k)
	return &chain{name: name, key: k, seed: seed, genesis: s, headID: s.ID}
}

func newExtWorld(t *testing.T) *extWorld {
	t.Helper()
	w := &extWorld{world: newWorld(t), rules: map[string]authority.ID{}}
	w.okta = anchoredChain(t, "okta-corp", seedExtOkta, authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: readFixture(t, "jwks.json")}})
	w.pki = anchoredChain(t, "pki-corp", seedExtPKI, authority.Genesis{X509Roots: readChain(t, "x509-root-ca.pem")})
	w.spire = anchoredChain(t, "spire-corp", seedExtSpire, authority.Genesis{SPIFFE: &authority.SPIFFEAnchor{TrustDomain: trustDomain, Roots: readChain(t, "spiffe-root-ca.pem")}})
	for _, c := range []*chain{w.okta, w.pki, w.spire} {
		w.apply(t, c.genesis)
	}
	day := 24 * time.Hour
	r := w.azure.next(t, authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{
		Source: w.okta.id(), Subjects: "*@corp.example", Resources: dataPattern, Actions: []string{"read"},
		NotBefore: unix(now.Add(-day)), NotAfter: unix(now.Add(day)),
		Require: []authority.Attr{{Key: "group", Value: "data-readers"}},
	}})
	w.rules["okta"] = w.apply(t, r).ID
	w.rules["pki"] = w.apply(t, w.azure.rule(t, w.pki.id(), "*", dataPattern, []string{"read"}, now.Add(-day), now.Add(day))).ID
	w.rules["spire"] = w.apply(t, w.azure.rule(t, w.spire.id(), "spiffe://corp.example/*", dataPattern, []string{"read"}, now.Add(-day), now.Add(day))).ID
	return w
}

func (w *extWorld) jwtRequest(tok string) authority.Request {
	return authority.Request{JWT: tok, Target: w.azure.id(), Resource: dataResource, Action: "read"}
}

func (w *extWorld) x509Request(chain [][]byte) authority.Request {
	return authority.Request{X509: chain, Target: w.azure.id(), Resource: dataResource, Action: "read"}
}

// checkDecision compares the parts of a decision every external test cares
// about.
func checkDecision(t *testing.T, d authority.Decision, reason authority.Reason, subject string, chain []authority.ID) {
	t.Helper()
	if d.Reason != reason || d.Allow != (reason == authority.ReasonOK) {
		t.Fatalf("decision %s/%s (%s), want %s", d.Outcome, d.Reason, d.Message, reason)
	}
	if d.Message == "" {
		t.Errorf("empty message")
	}
	if subject != "" && d.Subject != subject {
		t.Errorf("subject %q, want %q", d.Subject, subject)
	}
	if chain != nil && !slices.Equal(d.Chain, chain) {
		t.Errorf("chain %v, want %v", d.Chain, chain)
	}
	t.Logf("%s: %s", d.Reason, d.Message)
}

func TestVerifyJWT(t *testing.T) {
	w := newExtWorld(t)
	okta := []authority.ID{w.okta.id()}
	allowed := []authority.ID{w.okta.id(), w.azure.id(), w.rules["okta"]}
	tests := []struct {
		name    string
		fixture string
		at      time.Time
		reason  authority.Reason
		subject string
		chain   []authority.ID
	}{
		{"valid EdDSA, allowed by a rule requiring group", "jwt-valid-eddsa.jwt", now, authority.ReasonOK, oidcSubject, allowed},
		{"valid ES256", "jwt-valid-es256.jwt", now, authority.ReasonOK, oidcSubject, allowed},
		{"valid RS256, audience names the target's ID", "jwt-valid-rs256-audience-id.jwt", now, authority.ReasonOK, oidcSubject, allowed},
		{"wrong audience", "jwt-wrong-audience.jwt", now, authority.ReasonAudienceMismatch, oidcSubject, okta},
		{"expired: exp is the judgement time", "jwt-expired.jwt", now, authority.ReasonExpired, oidcSubject, okta},
		{"valid token judged after its exp", "jwt-valid-eddsa.jwt", now.Add(time.Hour), authority.ReasonExpired, oidcSubject, okta},
		{"not yet valid: nbf a second ahead", "jwt-not-yet-valid.jwt", now, authority.ReasonNotYetValid, oidcSubject, okta},
		{"unknown kid", "jwt-unknown-kid.jwt", now, authority.ReasonUntrustedExternal, oidcSubject, []authority.ID{}},
		{"kid of the JWKS, signed by another key", "jwt-key-not-in-jwks.jwt", now, authority.ReasonBadSignature, oidcSubject, okta},
		{"ES256 under the kid of the EdDSA key", "jwt-alg-mismatch-kid.jwt", now, authority.ReasonBadSignature, oidcSubject, okta},
		{"alg none", "jwt-alg-none.jwt", now, authority.ReasonMalformed, "", []authority.ID{}},
		{"alg HS256 keyed with the public key", "jwt-alg-hs256-confusion.jwt", now, authority.ReasonMalformed, "", []authority.ID{}},
		{"issuer nobody declared", "jwt-undeclared-issuer.jwt", now, authority.ReasonUnknownAuthority, "", []authority.ID{}},
		{"claim the rule requires is missing", "jwt-no-group.jwt", now, authority.ReasonConditionFailed, oidcSubject, []authority.ID{w.okta.id(), w.azure.id(), w.rules["okta"]}},
		{"no exp", "jwt-no-exp.jwt", now, authority.ReasonMalformed, oidcSubject, okta},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := authority.Verify(w.g, w.jwtRequest(readJWT(t, tt.fixture)), authority.WithTime(tt.at))
			checkDecision(t, d, tt.reason, tt.subject, tt.chain)
			if tt.reason == authority.ReasonOK && (d.Issuer != w.okta.id() || d.Rule != w.rules["okta"]) {
				t.Errorf("allow names issuer %s rule %s", d.Issuer.Short(), d.Rule.Short())
			}
		})
	}
}

func TestVerifyX509(t *testing.T) {
	w := newExtWorld(t)
	pkiOK := []authority.ID{w.pki.id(), w.azure.id(), w.rules["pki"]}
	pki, spire := []authority.ID{w.pki.id()}, []authority.ID{w.spire.id()}
	spireOK := []authority.ID{w.spire.id(), w.azure.id(), w.rules["spire"]}
	tests := []struct {
		name    string
		fixture string
		reason  authority.Reason
		subject string
		chain   []authority.ID
	}{
		{"root, intermediate, leaf with a SPIFFE ID", "x509-chain-valid-spiffe.pem", authority.ReasonOK, loaderSPIFFE, pkiOK},
		{"leaf with a DNS name only", "x509-chain-valid-dns.pem", authority.ReasonOK, "batch.corp.example", pkiOK},
		{"missing intermediate", "x509-chain-missing-intermediate.pem", authority.ReasonUntrustedExternal, loaderSPIFFE, []authority.ID{}},
		{"expired leaf", "x509-chain-expired-leaf.pem", authority.ReasonExpired, loaderSPIFFE, pki},
		{"leaf not yet valid", "x509-chain-not-yet-valid-leaf.pem", authority.ReasonNotYetValid, loaderSPIFFE, pki},
		{"CA certificate as the leaf", "x509-chain-ca-as-leaf.pem", authority.ReasonUntrustedExternal, loaderSPIFFE, []authority.ID{}},
		{"chain under an undeclared root", "x509-chain-undeclared-root.pem", authority.ReasonUntrustedExternal, loaderSPIFFE, []authority.ID{}},
		{"SVID of the declared trust domain", "spiffe-svid-valid.pem", authority.ReasonOK, loaderSPIFFE, spireOK},
		{"SVID of another trust domain under the SPIFFE root", "spiffe-svid-other-trust-domain.pem", authority.ReasonUntrustedExternal, "spiffe://other.example/ns/etl/sa/loader", spire},
		{"certificate without SPIFFE ID under the SPIFFE root", "spiffe-svid-no-spiffe-id.pem", authority.ReasonUntrustedExternal, "", spire},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := authority.Verify(w.g, w.x509Request(readChain(t, tt.fixture)), authority.WithTime(now))
			checkDecision(t, d, tt.reason, tt.subject, tt.chain)
		})
	}
}

// TestVerifyExternalRequests covers what is judged before any anchor: the
// shape of the request, the view, and the home authority's standing.
func TestVerifyExternalRequests(t *testing.T) {
	w := newExtWorld(t)
	tok := readJWT(t, "jwt-valid-eddsa.jwt")
	native := w.etlCredential(t).Raw
	tests := []struct {
		name   string
		view   func() authority.View
		req    func() authority.Request
		reason authority.Reason
	}{
		{"JWT and native credential", nil, func() authority.Request { r := w.jwtRequest(tok); r.Credential = native; return r }, authority.ReasonMalformed},
		{"JWT and X.509 chain", nil, func() authority.Request {
			r := w.jwtRequest(tok)
			r.X509 = readChain(t, "x509-chain-valid-spiffe.pem")
			return r
		}, authority.ReasonMalformed},
		{"JWT with a delegation chain", nil, func() authority.Request { r := w.jwtRequest(tok); r.Delegation = [][]byte{native}; return r }, authority.ReasonMalformed},
		{"JWT too long", nil, func() authority.Request { return w.jwtRequest(strings.Repeat("a", authority.MaxJWTLen+1)) }, authority.ReasonMalformed},
		{"X.509 chain too long", nil, func() authority.Request {
			c := readChain(t, "x509-chain-valid-spiffe.pem")
			for len(c) <= authority.MaxX509Chain {
				c = append(c, c[1])
			}
			return w.x509Request(c)
		}, authority.ReasonMalformed},
		{"X.509 garbage", nil, func() authority.Request { return w.x509Request([][]byte{[]byte("not a certificate")}) }, authority.ReasonMalformed},
		{"view that cannot find anchors", func() authority.View { return struct{ authority.View }{w.g} }, func() authority.Request { return w.jwtRequest(tok) }, authority.ReasonUnknownAuthority},
		{"unknown target", nil, func() authority.Request { r := w.jwtRequest(tok); r.Target = w.okta.id(); r.Target[0] ^= 1; return r }, authority.ReasonUnknownAuthority},
		{"native credential still judged as before", nil, func() authority.Request { return w.request(native) }, authority.ReasonNoRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v authority.View = w.g
			if tt.view != nil {
				v = tt.view()
			}
			checkDecision(t, authority.Verify(v, tt.req(), authority.WithTime(now)), tt.reason, "", nil)
		})
	}

	t.Run("home authority revoked itself", func(t *testing.T) {
		w := newExtWorld(t)
		rev := w.apply(t, w.okta.revoke(t, w.okta.id()))
		d := authority.Verify(w.g, w.jwtRequest(tok), authority.WithTime(now))
		checkDecision(t, d, authority.ReasonRevoked, oidcSubject, []authority.ID{w.okta.id(), rev.ID})
	})
	t.Run("carried over a path of two rules", func(t *testing.T) {
		// okta-corp → gcp-data → azure-corp: azure-corp accepts gcp-data's
		// principals with one hop more, gcp-data accepts okta-corp's.
		w := newExtWorld(t)
		gcp := newChain(t, "gcp-data", seedGCP)
		w.apply(t, gcp.genesis)
		day := 24 * time.Hour
		inner := w.apply(t, gcp.next(t, authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{
			Source: w.okta.id(), Subjects: "*", Resources: "blob://*", Actions: []string{"read"},
			NotBefore: unix(now.Add(-day)), NotAfter: unix(now.Add(day)), Require: []authority.Attr{{Key: "email", Value: oidcSubject}},
		}}))
		outer := w.apply(t, w.azure.next(t, authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{
			Source: gcp.id(), Subjects: "*", Resources: dataPattern, Actions: []string{"read"}, Hops: 1,
			NotBefore: unix(now.Add(-day)), NotAfter: unix(now.Add(day)),
		}}))
		// Without group the direct rule fails its Require, so the path
		// (whose inner rule requires the email claim instead) decides.
		d := authority.Verify(w.g, w.jwtRequest(readJWT(t, "jwt-no-group.jwt")), authority.WithTime(now))
		checkDecision(t, d, authority.ReasonOK, oidcSubject, []authority.ID{w.okta.id(), gcp.id(), inner.ID, w.azure.id(), outer.ID})
	})
}

// TestVerifyJWTSharedIssuer: a later authority declaring the same issuer,
// with a key of its own under the same kid, cannot take over the issuer's
// principals: each token's home is the first authority whose JWKS verifies
// it, and the impostor's principals get only what rules for it grant.
func TestVerifyJWTSharedIssuer(t *testing.T) {
	w := newExtWorld(t)
	foreign := ed25519.NewKeyFromSeed(seedBytes(seedExtJWTForeign))
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: foreign.Public(), KeyID: "ed"}}})
	if err != nil {
		t.Fatal(err)
	}
	impostor := anchoredChain(t, "okta-impostor", seedImpostor, authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: set}})
	w.apply(t, impostor.genesis)
	tests := []struct {
		name    string
		fixture string
		reason  authority.Reason
		issuer  authority.ID
	}{
		{"the issuer's own token keeps its home", "jwt-valid-eddsa.jwt", authority.ReasonOK, w.okta.id()},
		{"the impostor's token is the impostor's", "jwt-key-not-in-jwks.jwt", authority.ReasonNoRule, impostor.id()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := authority.Verify(w.g, w.jwtRequest(readJWT(t, tt.fixture)), authority.WithTime(now))
			checkDecision(t, d, tt.reason, oidcSubject, nil)
			if d.Issuer != tt.issuer || d.Chain[0] != tt.issuer {
				t.Errorf("issuer %s chain %v, want home %s", d.Issuer.Short(), d.Chain, tt.issuer.Short())
			}
		})
	}
}

// TestGenesisAnchors checks the validation of declared anchors.
func TestGenesisAnchors(t *testing.T) {
	jwks := readFixture(t, "jwks.json")
	root := readChain(t, "x509-root-ca.pem")
	leaf := readChain(t, "x509-chain-valid-spiffe.pem")[0]
	spiffeRoots := readChain(t, "spiffe-root-ca.pem")
	jwksOf := func(keys ...jose.JSONWebKey) []byte {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ed := ed25519.NewKeyFromSeed(seedBytes(seedExtJWTEd))
	tests := []struct {
		name string
		g    authority.Genesis
		ok   bool
	}{
		{"no anchors", authority.Genesis{}, true},
		{"OIDC", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: jwks}}, true},
		{"X.509 roots", authority.Genesis{X509Roots: root}, true},
		{"SPIFFE", authority.Genesis{SPIFFE: &authority.SPIFFEAnchor{TrustDomain: trustDomain, Roots: spiffeRoots}}, true},
		{"OIDC without issuer", authority.Genesis{OIDC: &authority.OIDCAnchor{JWKS: jwks}}, false},
		{"OIDC JWKS not JSON", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: []byte("{")}}, false},
		{"OIDC JWKS empty set", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: []byte(`{"keys":[]}`)}}, false},
		{"OIDC JWKS too big", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: make([]byte, authority.MaxJWKSLen+1)}}, false},
		{"OIDC JWKS private key", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: jwksOf(jose.JSONWebKey{Key: ed, KeyID: "ed"})}}, false},
		{"OIDC JWKS key without kid", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: jwksOf(jose.JSONWebKey{Key: ed.Public()})}}, false},
		{"OIDC JWKS duplicate kid", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: jwksOf(jose.JSONWebKey{Key: ed.Public(), KeyID: "k"}, jose.JSONWebKey{Key: ed.Public(), KeyID: "k"})}}, false},
		{"OIDC JWKS symmetric key", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: jwksOf(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hs"})}}, false},
		{"OIDC JWKS alg lies about the key", authority.Genesis{OIDC: &authority.OIDCAnchor{Issuer: oidcIssuer, JWKS: jwksOf(jose.JSONWebKey{Key: ed.Public(), KeyID: "ed", Algorithm: "RS256"})}}, false},
		{"X.509 root that is not a CA", authority.Genesis{X509Roots: [][]byte{leaf}}, false},
		{"X.509 root garbage", authority.Genesis{X509Roots: [][]byte{[]byte("x")}}, false},
		{"X.509 too many roots", authority.Genesis{X509Roots: slices.Repeat(root, authority.MaxX509Roots+1)}, false},
		{"X.509 empty list", authority.Genesis{X509Roots: [][]byte{}}, false},
		{"SPIFFE trust domain as an ID", authority.Genesis{SPIFFE: &authority.SPIFFEAnchor{TrustDomain: "spiffe://corp.example", Roots: spiffeRoots}}, false},
		{"SPIFFE trust domain not canonical", authority.Genesis{SPIFFE: &authority.SPIFFEAnchor{TrustDomain: "Corp.Example", Roots: spiffeRoots}}, false},
		{"SPIFFE without roots", authority.Genesis{SPIFFE: &authority.SPIFFEAnchor{TrustDomain: trustDomain}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := fixedKey(t, seedExtOkta)
			g := tt.g
			g.Name, g.RootKeys, g.Threshold = "anchored", []authority.PublicKey{k.Public()}, 1
			s, err := authority.Sign(authority.Declaration{Kind: authority.KindGenesis, IssuedAt: unix(now), Genesis: &g}, k)
			if tt.ok != (err == nil) {
				t.Fatalf("sign: %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, authority.ErrBadAnchor) {
					t.Errorf("error %v is not ErrBadAnchor", err)
				}
				return
			}
			back, err := authority.Parse(s.Raw)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !slices.EqualFunc(back.Decl.Genesis.X509Roots, g.X509Roots, func(a, b []byte) bool { return string(a) == string(b) }) {
				t.Errorf("X.509 roots do not round-trip")
			}
		})
	}
}
