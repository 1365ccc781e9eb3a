package bundle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// exportTime is when test bundles are exported: tests never read the clock.
var exportTime = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

// testKey derives an Ed25519 key from a fixed seed name, so fixtures (and
// their IDs) are the same on every run.
func testKey(tb testing.TB, seed string) *authority.PrivateKey {
	tb.Helper()
	h := sha256.Sum256([]byte("fednode bundle test key: " + seed))
	k, err := authority.GenerateKey(authority.AlgEd25519, bytes.NewReader(h[:]))
	if err != nil {
		tb.Fatalf("GenerateKey %s: %v", seed, err)
	}
	return k
}

func mustSign(tb testing.TB, d authority.Declaration, k *authority.PrivateKey) *authority.Signed {
	tb.Helper()
	s, err := authority.Sign(d, k)
	if err != nil {
		tb.Fatalf("Sign %v: %v", d.Kind, err)
	}
	return s
}

func genesis(tb testing.TB, name string, k *authority.PrivateKey) *authority.Signed {
	tb.Helper()
	return mustSign(tb, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: exportTime.Add(-72 * time.Hour).Unix(),
		Genesis: &authority.Genesis{
			Name: name, Kind: "pki", Threshold: 1,
			RootKeys: []authority.PublicKey{k.Public()},
		},
	}, k)
}

// ruleAt makes a rule of target at seq, after prev.
func ruleAt(tb testing.TB, target *authority.Signed, k *authority.PrivateKey, seq uint64, prev authority.ID, r authority.Rule) *authority.Signed {
	tb.Helper()
	return mustSign(tb, authority.Declaration{
		Kind: authority.KindRule, Authority: target.ID, Seq: seq, Prev: prev,
		IssuedAt: exportTime.Add(-48 * time.Hour).Unix(), Rule: &r,
	}, k)
}

func credential(tb testing.TB, issuer *authority.Signed, k *authority.PrivateKey, subject string) *authority.Signed {
	tb.Helper()
	return mustSign(tb, authority.Declaration{
		Kind: authority.KindCredential, Authority: issuer.ID,
		IssuedAt: exportTime.Add(-24 * time.Hour).Unix(),
		Credential: &authority.Credential{
			Subject:   subject,
			NotBefore: exportTime.Add(-24 * time.Hour).Unix(),
			NotAfter:  exportTime.Add(30 * 24 * time.Hour).Unix(),
		},
	}, k)
}

// fixture is a small federation: authority pki (the exporter) accepts
// principals of aws for reads of db/* (rule1) and writes of db/scratch/*
// (rule2); aws issued credentials to alice and bob and revoked bob's.
type fixture struct {
	pkiKey, awsKey, malloryKey *authority.PrivateKey
	pki, aws, mallory          *authority.Signed
	rule1, rule2, revocation   *authority.Signed
	// fork is validly signed by pki at rule1's position: equivocation.
	fork       *authority.Signed
	alice, bob *authority.Signed
	contents   Contents // as exported; Declarations in graph order
	bundle     []byte
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{
		pkiKey:     testKey(tb, "pki"),
		awsKey:     testKey(tb, "aws"),
		malloryKey: testKey(tb, "mallory"),
	}
	f.pki = genesis(tb, "pki", f.pkiKey)
	f.aws = genesis(tb, "aws", f.awsKey)
	f.mallory = genesis(tb, "mallory", f.malloryKey)
	f.rule1 = ruleAt(tb, f.pki, f.pkiKey, 1, f.pki.ID, authority.Rule{
		Source: f.aws.ID, Subjects: "*", Resources: "db/*", Actions: []string{"read"},
	})
	f.rule2 = ruleAt(tb, f.pki, f.pkiKey, 2, f.rule1.ID, authority.Rule{
		Source: f.aws.ID, Subjects: "alice", Resources: "db/scratch/*", Actions: []string{"write"},
	})
	f.fork = ruleAt(tb, f.pki, f.pkiKey, 1, f.pki.ID, authority.Rule{
		Source: f.aws.ID, Subjects: "*", Resources: "*", Actions: []string{"admin"},
	})
	f.alice = credential(tb, f.aws, f.awsKey, "alice")
	f.bob = credential(tb, f.aws, f.awsKey, "bob")
	f.revocation = mustSign(tb, authority.Declaration{
		Kind: authority.KindRevocation, Authority: f.aws.ID, Seq: 1, Prev: f.aws.ID,
		IssuedAt:   exportTime.Add(-time.Hour).Unix(),
		Revocation: &authority.Revocation{Target: f.bob.ID, Reason: "left"},
	}, f.awsKey)
	decls := [][]byte{f.pki.Raw, f.aws.Raw, f.rule1.Raw, f.rule2.Raw, f.revocation.Raw}
	f.contents = Contents{
		GraphVersion: uint64(len(decls)),
		ExportedAt:   exportTime.UnixMilli(),
		Exporter:     f.pki.ID,
		Declarations: decls,
	}
	b, err := Export(f.contents, f.pkiKey)
	if err != nil {
		tb.Fatalf("Export: %v", err)
	}
	f.contents.Format = FormatVersion
	f.bundle = b
	return f
}

// with returns a copy of the fixture's contents with its own declaration
// slice, for a test case to alter.
func (f *fixture) with() Contents {
	c := f.contents
	c.Declarations = append([][]byte(nil), c.Declarations...)
	return c
}

// sealRaw encodes c as it stands (no checks, Format untouched) and seals it
// with k: how a forger or a buggy exporter would make a bundle.
func sealRaw(tb testing.TB, c Contents, k *authority.PrivateKey) []byte {
	tb.Helper()
	payload, err := encMode.Marshal(&c)
	if err != nil {
		tb.Fatalf("encode contents: %v", err)
	}
	return sealPayload(tb, payload, k)
}

func sealPayload(tb testing.TB, payload []byte, k *authority.PrivateKey) []byte {
	tb.Helper()
	b, err := authority.Seal(payload, k)
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	return b
}

// payloadOf returns the canonical payload of c.
func payloadOf(tb testing.TB, c Contents) []byte {
	tb.Helper()
	p, err := encMode.Marshal(&c)
	if err != nil {
		tb.Fatalf("encode contents: %v", err)
	}
	return p
}

// bigBundle exports a graph of n declarations: two authorities, n-3 rules
// of pki accepting aws for resources svc-<i>/*, and aws revoking bob.
func bigBundle(tb testing.TB, n int) (*fixture, []byte) {
	tb.Helper()
	f := newFixture(tb)
	decls := [][]byte{f.pki.Raw, f.aws.Raw}
	prev := f.pki.ID
	for seq := uint64(1); len(decls) < n-1; seq++ {
		r := ruleAt(tb, f.pki, f.pkiKey, seq, prev, authority.Rule{
			Source: f.aws.ID, Subjects: "*", Resources: fmt.Sprintf("svc-%d/*", seq), Actions: []string{"read"},
		})
		decls = append(decls, r.Raw)
		prev = r.ID
	}
	decls = append(decls, f.revocation.Raw)
	b, err := Export(Contents{
		GraphVersion: uint64(len(decls)),
		ExportedAt:   exportTime.UnixMilli(),
		Exporter:     f.pki.ID,
		Declarations: decls,
	}, f.pkiKey)
	if err != nil {
		tb.Fatalf("Export: %v", err)
	}
	return f, b
}
