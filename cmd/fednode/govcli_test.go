package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
	"github.com/fednode/fednode/tlog"
)

// externalFixtures are authority's external-credential fixtures: a JWKS
// and a JWT of issuer https://login.corp.example for audience azure-corp,
// valid around 2026-12-01T12:00:00Z, and an X.509 root.
const externalFixtures = "../../authority/testdata/external"

// keyIDs are the key IDs of a home's root keys, as it loads now.
func keyIDs(t *testing.T, home string) [][]byte {
	t.Helper()
	h, err := node.LoadHome(home)
	if err != nil {
		t.Fatalf("LoadHome: %v", err)
	}
	var out [][]byte
	for _, k := range h.Roots {
		out = append(out, k.Public().KeyID())
	}
	return out
}

// TestRotateDelegateTrust drives rotate, delegate, issue/federate --op-key
// and trust against one node in process, then every refusal of bad input.
func TestRotateDelegateTrust(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "aws")
	mustSign(t, "init", "--home", home, "--name", "aws-prod", "--keys", "3", "--threshold", "2")
	h0, err := node.LoadHome(home)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := node.New(ctx, node.Config{Home: home, Bootstrap: true, API: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	waitUntil(t, "the node's genesis agreed", func() bool { return n.Agreed(h0.Authority) })
	oldKeys := keyIDs(t, home)

	// rotate: 2-of-3 Ed25519 to 2-of-2 ML-DSA-65, signed by the current 2.
	out := mustSign(t, "rotate", "--home", home, "--keys", "2", "--threshold", "2", "--alg", "mldsa65")
	t.Log(out)
	h1, err := node.LoadHome(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(h1.Roots) != 2 || h1.Threshold != 2 || h1.Root.Alg() != authority.AlgMLDSA65 || h1.Rotation == nil {
		t.Fatalf("after rotate: %d keys of %v, threshold %d", len(h1.Roots), h1.Root.Alg(), h1.Threshold)
	}
	if _, err := os.Stat(filepath.Join(home, "root-3.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root-3.key of the old set is still in the home: %v", err)
	}
	retired, err := os.ReadDir(filepath.Join(home, "retired"))
	if err != nil || len(retired) != len(oldKeys) {
		t.Fatalf("retired/: %d files, %v; want %d", len(retired), err, len(oldKeys))
	}
	head, err := n.Head(ctx, "aws-prod")
	if err != nil || len(head.Rotations) != 1 || head.Rotations[0] != authority.IDOf(h1.Rotation) {
		t.Fatalf("the graph's rotations %v, %v", head.Rotations, err)
	}
	// The node signs checkpoints with the new key, in the ML-DSA note type.
	cp, err := n.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: "aws-prod", Key: h1.Root.Public()}}); err != nil {
		t.Fatalf("checkpoint after rotate: %v", err)
	}
	if _, _, err := tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: "aws-prod", Key: h0.Root.Public()}}); !errors.Is(err, tlog.ErrUnverified) {
		t.Fatalf("checkpoint opens with a retired key: %v", err)
	}

	// delegate an operational key for credentials and rules; issue and
	// federate with it.
	opKey := filepath.Join(dir, "op.key")
	mustSign(t, "delegate", "--home", home, "--key-out", opKey, "--kinds", "rule,credential", "--not-after", "720h")
	if fi, err := os.Stat(opKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("op key file: %v %v", fi, err)
	}
	ob, _ := os.ReadFile(opKey)
	op, err := authority.ParsePrivateKey(ob)
	if err != nil {
		t.Fatal(err)
	}
	cred := filepath.Join(dir, "cred.cose")
	mustSign(t, "issue", "--home", home, "--subject", "etl", "--out", cred, "--op-key", opKey)
	if sd := envelopeOf(t, cred); len(sd.Signatures) != 1 || !bytes.Equal(sd.KeyID, op.Public().KeyID()) {
		t.Fatalf("issue --op-key: %d signatures, kid %x", len(sd.Signatures), sd.KeyID)
	}
	out = mustSign(t, "federate", "--home", home, "--accept", "aws-prod", "--subjects", "*", "--resources", "s3://*", "--actions", "read", "--op-key", opKey)
	ruleID, err := authority.ParseID(strings.TrimSuffix(strings.Fields(out)[1], ":"))
	if err != nil || !n.Agreed(ruleID) {
		t.Fatalf("federate --op-key: %q: %v", out, err)
	}
	mustSign(t, "verify", "--home", home, "--credential", cred, "--at", "aws-prod", "--resource", "s3://x", "--action", "read")

	// trust: an OIDC anchor, then X.509 roots replacing it.
	jwks := filepath.Join(externalFixtures, "jwks.json")
	jwt := filepath.Join(externalFixtures, "jwt-valid-eddsa.jwt")
	verifyJWT := func() string {
		out, errText, code := runFednode(t, "verify", "--home", home, "--jwt", jwt, "--at", "aws-prod", "--resource", "s3://x", "--action", "read", "--time", "2026-12-01T12:00:00Z")
		if code != 1 {
			t.Fatalf("verify --jwt: exit %d: %s %s", code, out, errText)
		}
		return out
	}
	if out := verifyJWT(); !strings.Contains(out, "unknown-authority") {
		t.Fatalf("before trust: %s", out)
	}
	mustSign(t, "trust", "--home", home, "--oidc-issuer", "https://login.corp.example", "--jwks", jwks)
	// The JWT's audience is azure-corp: found and verified, then denied on
	// audience, which proves the anchor is in effect.
	if out := verifyJWT(); !strings.Contains(out, "audience-mismatch") {
		t.Fatalf("after trust --oidc-issuer: %s", out)
	}
	out = mustSign(t, "trust", "--home", home, "--x509-roots", filepath.Join(externalFixtures, "x509-root-ca.pem"))
	// An anchors declaration cannot be revoked: the node says so at once.
	if _, errText, code := runFednode(t, "revoke", "--home", home, "--id", strings.Fields(out)[1]); code == 0 || !strings.Contains(errText, "not revocable") {
		t.Fatalf("revoke of an anchors declaration: exit %d, %s", code, errText)
	}
	if out := verifyJWT(); !strings.Contains(out, "unknown-authority") {
		t.Fatalf("after trust --x509-roots replaced the OIDC anchor: %s", out)
	}
	x509 := filepath.Join(externalFixtures, "x509-chain-valid-spiffe.pem")
	if _, errText, code := runFednode(t, "verify", "--home", home, "--x509", x509, "--at", "aws-prod", "--resource", "s3://x", "--action", "read", "--time", "2026-12-01T12:00:00Z"); code != 0 {
		t.Fatalf("verify --x509 under the declared roots: exit %d: %s", code, errText)
	}

	// A SPIFFE bundle (PEM, its trust domain named) beside the X.509 roots.
	mustSign(t, "trust", "--home", home, "--x509-roots", filepath.Join(externalFixtures, "x509-root-ca.pem"),
		"--spiffe-bundle", filepath.Join(externalFixtures, "spiffe-root-ca.pem"), "--trust-domain", "corp.example")
	svid := filepath.Join(externalFixtures, "spiffe-svid-valid.pem")
	if _, errText, code := runFednode(t, "verify", "--home", home, "--x509", svid, "--at", "aws-prod", "--resource", "s3://x", "--action", "read", "--time", "2026-12-01T12:00:00Z"); code != 0 {
		t.Fatalf("verify --x509 of an SVID under the declared bundle: exit %d: %s", code, errText)
	}

	// Offline rotation: staged, submitted, then committed.
	head, err = n.Head(ctx, "aws-prod")
	if err != nil {
		t.Fatal(err)
	}
	rot := filepath.Join(dir, "rot.cose")
	before := keyIDs(t, home)
	mustSign(t, "rotate", "--home", home, "--offline", "--head-seq", strconv.FormatUint(head.Head, 10), "--head-id", head.HeadID.String(), "--out", rot)
	if got := keyIDs(t, home); len(got) != len(before) || !bytes.Equal(got[0], before[0]) {
		t.Fatal("rotate --offline installed its keys without --install")
	}
	if _, errText, code := runFednode(t, "rotate", "--home", home); code != 1 || !strings.Contains(errText, "--commit") {
		t.Fatalf("rotate with a signed stage: exit %d, %s; want 1 naming --commit", code, errText)
	}
	if _, errText, code := runFednode(t, "rotate", "--home", home, "--commit"); code != 1 || !strings.Contains(errText, "does not hold") {
		t.Fatalf("commit before submit: exit %d, %s", code, errText)
	}
	mustSign(t, "submit", rot, "--home", home)
	mustSign(t, "rotate", "--home", home, "--commit")
	if got := keyIDs(t, home); len(got) != 1 || bytes.Equal(got[0], before[0]) {
		t.Fatal("rotate --commit did not install the new key")
	}
	if _, err := n.Checkpoint(); err != nil {
		t.Fatalf("checkpoint after the offline rotation: %v", err)
	}

	// Bad input: exit 2, naming the flag or file, and nothing on disk lost.
	badJWKS := filepath.Join(dir, "bad-jwks.json")
	notPEM := filepath.Join(dir, "roots.txt")
	for f, b := range map[string]string{badJWKS: "{", notPEM: "not a certificate"} {
		if err := os.WriteFile(f, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keysNow := keyIDs(t, home)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"rotate threshold above keys", []string{"rotate", "--home", home, "--keys", "2", "--threshold", "3"}, "--threshold"},
		{"rotate unknown alg", []string{"rotate", "--home", home, "--alg", "rsa"}, "--alg"},
		{"rotate commit with nothing staged", []string{"rotate", "--home", home, "--commit"}, "no signed rotation"},
		{"rotate offline without head", []string{"rotate", "--home", home, "--offline", "--out", rot}, "--head-seq"},
		{"rotate --out without --offline", []string{"rotate", "--home", home, "--out", rot}, "--offline"},
		{"delegate a root-only kind", []string{"delegate", "--home", home, "--key-out", filepath.Join(dir, "x.key"), "--kinds", "rotation", "--not-after", "1h"}, "--kinds"},
		{"delegate without not-after", []string{"delegate", "--home", home, "--key-out", filepath.Join(dir, "x.key"), "--kinds", "credential"}, "--not-after"},
		{"delegate over an existing key file", []string{"delegate", "--home", home, "--key-out", opKey, "--kinds", "credential", "--not-after", "1h"}, "exists"},
		{"delegate both key flags", []string{"delegate", "--home", home, "--key-out", filepath.Join(dir, "x.key"), "--op-key", opKey, "--kinds", "credential", "--not-after", "1h"}, "--key-out"},
		{"trust issuer without jwks", []string{"trust", "--home", home, "--oidc-issuer", "https://x.example"}, "--jwks"},
		{"trust missing jwks file", []string{"trust", "--home", home, "--oidc-issuer", "https://x.example", "--jwks", filepath.Join(dir, "none.json")}, "--jwks"},
		{"trust jwks not JSON", []string{"trust", "--home", home, "--oidc-issuer", "https://x.example", "--jwks", badJWKS}, "JWKS"},
		{"trust roots not PEM", []string{"trust", "--home", home, "--x509-roots", notPEM}, "--x509-roots"},
		{"trust nothing", []string{"trust", "--home", home}, "--oidc-issuer"},
		{"trust a SPIFFE bundle naming no trust domain", []string{"trust", "--home", home, "--spiffe-bundle", filepath.Join(externalFixtures, "spiffe-root-ca.pem")}, "--trust-domain"},
		{"trust a SPIFFE bundle in a bad trust domain", []string{"trust", "--home", home, "--spiffe-bundle", filepath.Join(externalFixtures, "spiffe-root-ca.pem"), "--trust-domain", "Corp.Example"}, "SPIFFE trust domain"},
		{"issue with a missing op key", []string{"issue", "--home", home, "--subject", "s", "--out", filepath.Join(dir, "c"), "--op-key", filepath.Join(dir, "none.key")}, "--op-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errText, code := runFednode(t, tt.args...)
			if code != 2 || !strings.Contains(errText, tt.want) {
				t.Fatalf("exit %d, %q; want exit 2 naming %q", code, errText, tt.want)
			}
			t.Log(errText)
		})
	}
	if got := keyIDs(t, home); len(got) != len(keysNow) || !bytes.Equal(got[0], keysNow[0]) {
		t.Fatal("a refused command changed the home's root keys")
	}
	if b, _ := os.ReadFile(opKey); !bytes.Equal(b, ob) {
		t.Fatal("a refused command changed the operational key file")
	}
}

// TestRotateOfflineInstall: an air-gapped root rotates with no node at all:
// --offline --install signs at the named position and installs the new keys
// at once, keeping the old ones in retired/.
func TestRotateOfflineInstall(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "root")
	mustSign(t, "init", "--home", home, "--name", "air-gapped")
	h0, err := node.LoadHome(home)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "rot.cose")
	mustSign(t, "rotate", "--home", home, "--offline", "--head-seq", "0", "--head-id", h0.Authority.String(), "--out", out,
		"--install", "--alg", "hybrid", "--keys", "3", "--threshold", "2")
	sd := envelopeOf(t, out)
	if sd.Decl.Kind != authority.KindRotation || sd.Decl.Seq != 1 || sd.Decl.Prev != h0.Authority || len(sd.Decl.Rotation.RootKeys) != 3 {
		t.Fatalf("offline rotation: %v at seq %d", sd.Decl.Kind, sd.Decl.Seq)
	}
	if err := sd.VerifyThreshold([]authority.PublicKey{h0.Root.Public()}, 1); err != nil {
		t.Fatalf("not signed by the old root: %v", err)
	}
	h1, err := node.LoadHome(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(h1.Roots) != 3 || h1.Threshold != 2 || h1.Root.Alg() != authority.AlgHybrid {
		t.Fatalf("installed: %d keys of %v, threshold %d", len(h1.Roots), h1.Root.Alg(), h1.Threshold)
	}
	old, err := os.ReadFile(filepath.Join(home, "retired", hexKID(h0.Root.Public())+".key"))
	if err != nil {
		t.Fatalf("the old root key is not in retired/: %v", err)
	}
	if k, err := authority.ParsePrivateKey(old); err != nil || !bytes.Equal(k.Public().Key, h0.Root.Public().Key) {
		t.Fatalf("retired key: %v", err)
	}
	// The new 2-of-3 root signs the next declaration.
	next := filepath.Join(dir, "rule.cose")
	mustSign(t, "sign", "--offline", "--home", home, "--head-seq", "1", "--head-id", sd.ID.String(), "--kind", "rule", "--accept", h0.Authority.String(), "--subjects", "a*", "--resources", "r/*", "--actions", "read", "--out", next)
	if got := envelopeOf(t, next); len(got.Signatures) != 2 || got.VerifyThreshold(sd.Decl.Rotation.RootKeys, 2) != nil {
		t.Fatalf("the next declaration is not signed by 2 of the new keys: %d signatures", len(got.Signatures))
	}
}

func hexKID(k authority.PublicKey) string { return hex.EncodeToString(k.KeyID()) }
