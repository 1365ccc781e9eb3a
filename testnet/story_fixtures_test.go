package testnet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

var update = flag.Bool("update", false, "rewrite the story's external-credential fixtures in testdata/story")

const storyFixtureDir = "testdata/story"

// Story fixture facts: the story's scenario names these files and values.
const (
	storyIssuer  = "https://login.azure-corp.example"
	storySubject = "alice@corp.example"
	storySPIFFE  = "spiffe://dod.example/workload/logistics"
)

// storyKey is an Ed25519 key from a fixed seed: Ed25519 signing is
// deterministic, so the fixtures are the same bytes on every -update.
func storyKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// storyFixtures builds the story's external credentials. They are valid
// from 2020 to 2099, so the story, which runs at the real time, accepts them.
func storyFixtures(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	nbf := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

	jk := storyKey(1)
	set, err := json.MarshalIndent(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: jk.Public(), KeyID: "azure-1", Algorithm: string(jose.EdDSA), Use: "sig"},
	}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out["azure-jwks.json"] = append(set, '\n')
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: jk, KeyID: "azure-1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	// The audience names azure-corp (the issuer's tenant) and gcp-analytics,
	// the target it is presented to: the verifier requires the target.
	tok, err := jwt.Signed(s).Claims(map[string]any{
		"iss": storyIssuer, "sub": storySubject, "aud": []string{"azure-corp", "gcp-analytics"},
		"nbf": nbf.Unix(), "iat": nbf.Unix(), "exp": exp.Unix(), "group": "data-readers",
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	out["alice.jwt"] = []byte(tok + "\n")

	rootKey, interKey, leafKey := storyKey(2), storyKey(3), storyKey(4)
	mk := func(serial int64, cn string, ca bool, uri string, key ed25519.PrivateKey, parent *x509.Certificate, parentKey ed25519.PrivateKey) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{Organization: []string{"dod-pki"}, CommonName: cn},
			NotBefore: nbf, NotAfter: exp, BasicConstraintsValid: true, IsCA: ca,
		}
		if ca {
			tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		} else {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
			u, err := url.Parse(uri)
			if err != nil {
				t.Fatal(err)
			}
			tmpl.URIs = []*url.URL{u}
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(nil, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root := mk(1, "dod-pki root CA", true, "", rootKey, nil, nil)
	inter := mk(2, "dod-pki intermediate CA", true, "", interKey, root, rootKey)
	leaf := mk(3, "logistics", false, storySPIFFE, leafKey, inter, interKey)
	pemOf := func(cs ...*x509.Certificate) []byte {
		var b []byte
		for _, c := range cs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return b
	}
	out["dod-roots.pem"] = pemOf(root)
	out["logistics-chain.pem"] = pemOf(leaf, inter)
	return out
}

// TestStoryFixtures regenerates the story's files with -update and checks
// that the committed ones parse and are valid today.
func TestStoryFixtures(t *testing.T) {
	if *update {
		for name, b := range storyFixtures(t) {
			if err := os.WriteFile(filepath.Join(storyFixtureDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(storyFixtureDir, name))
		if err != nil {
			t.Fatalf("%v (regenerate with go test ./testnet -run TestStoryFixtures -update)", err)
		}
		return b
	}
	now := time.Now() // validity today is the point: the story runs at the real time

	var set jose.JSONWebKeySet
	if err := json.Unmarshal(read("azure-jwks.json"), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("azure-jwks.json: %v, %d keys", err, len(set.Keys))
	}
	tok, err := jwt.ParseSigned(strings.TrimSpace(string(read("alice.jwt"))), []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.Claims
	var extra struct {
		Group string `json:"group"`
	}
	if err := tok.Claims(set.Keys[0].Key, &claims, &extra); err != nil {
		t.Fatal(err)
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: storyIssuer, Subject: storySubject, AnyAudience: jwt.Audience{"azure-corp", "gcp-analytics"}, Time: now}, 0); err != nil {
		t.Errorf("alice.jwt: %v", err)
	}
	if extra.Group != "data-readers" {
		t.Errorf("alice.jwt: group %q, want data-readers", extra.Group)
	}

	roots, err := pemCerts(read("dod-roots.pem"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pemCerts(read("logistics-chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, der := range roots {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(c)
	}
	var leaf *x509.Certificate
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			leaf = c
		} else {
			inters.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("logistics-chain.pem: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != storySPIFFE {
		t.Errorf("leaf URIs %v, want %s", leaf.URIs, storySPIFFE)
	}
}
