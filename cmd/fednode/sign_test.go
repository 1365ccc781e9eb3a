package main

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

func mustSign(t *testing.T, args ...string) string {
	t.Helper()
	out, errText, code := runFednode(t, args...)
	if code != 0 {
		t.Fatalf("fednode %s: exit %d: %s\n%s", strings.Join(args, " "), code, errText, out)
	}
	return out
}

// envelopeOf reads a signed envelope file and returns its parsed form.
func envelopeOf(t *testing.T, path string) *authority.Signed {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := authority.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

// TestOfflineSignSubmit: a 2-of-3 home made by init signs a rule and a
// revocation offline at the positions the operator gives; submit (with
// --home and with --api --token-file) gets both agreed; a file signed at
// a stale position is refused with exit 2 and the node's conflict message.
func TestOfflineSignSubmit(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "aws")
	mustSign(t, "init", "--home", home, "--name", "aws-prod", "--kind", "aws", "--alg", "ed25519", "--keys", "3", "--threshold", "2")
	h, err := node.LoadHome(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Roots) != 3 || h.Threshold != 2 {
		t.Fatalf("init --keys 3 --threshold 2 made a home with %d keys, threshold %d", len(h.Roots), h.Threshold)
	}
	ctx := context.Background()
	n, err := node.New(ctx, node.Config{Home: home, Bootstrap: true, API: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	waitUntil(t, "the node's genesis agreed", func() bool { return n.Agreed(h.Authority) })

	oktaKey, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	okta, err := authority.Sign(authority.Declaration{Kind: authority.KindGenesis, IssuedAt: auditT0.Unix(),
		Genesis: &authority.Genesis{Name: "okta", Kind: "oidc", RootKeys: []authority.PublicKey{oktaKey.Public()}, Threshold: 1}}, oktaKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Submit(ctx, okta.Raw); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "okta's genesis agreed", func() bool { return n.Agreed(okta.ID) })

	ruleArgs := func(seq uint64, prev authority.ID, resources, out string) []string {
		return []string{"sign", "--offline", "--home", home, "--head-seq", strconv.FormatUint(seq, 10), "--head-id", prev.String(),
			"--kind", "rule", "--accept", okta.ID.String(), "--subjects", "alice*", "--resources", resources, "--actions", "read,list", "--until", "720h", "--out", out}
	}

	// Rule at seq 1, submitted with --home.
	r1 := filepath.Join(dir, "r1.cose")
	mustSign(t, ruleArgs(0, h.Authority, "s3://logs/*", r1)...)
	fi, err := os.Stat(r1)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("envelope mode = %v, want 0644", fi.Mode().Perm())
	}
	sd1 := envelopeOf(t, r1)
	if sd1.Decl.Seq != 1 || sd1.Decl.Prev != h.Authority || sd1.Decl.Authority != h.Authority || len(sd1.Signatures) != 2 {
		t.Fatalf("signed rule: seq %d prev %s authority %s, %d signatures; want 1, the genesis, aws-prod, 2", sd1.Decl.Seq, sd1.Decl.Prev.Short(), sd1.Decl.Authority.Short(), len(sd1.Signatures))
	}
	out := mustSign(t, "submit", r1, "--home", home)
	if !strings.Contains(out, sd1.ID.String()) || !strings.Contains(out, "accepted") {
		t.Errorf("submit output %q does not give the id and status", out)
	}
	if !n.Agreed(sd1.ID) {
		t.Fatal("submit returned but the rule is not agreed")
	}

	// Revocation at seq 2, submitted with --api and --token-file.
	rv := filepath.Join(dir, "rv.cose")
	mustSign(t, "sign", "--offline", "--home", home, "--head-seq", "1", "--head-id", sd1.ID.String(), "--kind", "revocation", "--id", sd1.ID.String(), "--reason", "test", "--out", rv)
	sdRv := envelopeOf(t, rv)
	mustSign(t, "submit", rv, "--api", n.APIAddr(), "--token-file", filepath.Join(home, "token"))
	if !n.Agreed(sdRv.ID) {
		t.Fatal("submit returned but the revocation is not agreed")
	}

	// A rule signed at the stale position 1 conflicts with the agreed rule.
	stale := filepath.Join(dir, "stale.cose")
	mustSign(t, ruleArgs(0, h.Authority, "s3://other/*", stale)...)
	_, errText, code := runFednode(t, "submit", stale, "--home", home, "--wait", "0")
	if code != 2 || !strings.Contains(strings.ToLower(errText), "conflict") {
		t.Fatalf("submit of a stale position: exit %d, %q; want exit 2 naming the conflict", code, errText)
	}
	t.Logf("stale submission refused: %s", errText)

	// Submitting the same file again is not a refusal.
	if out, errText, code := runFednode(t, "submit", r1, "--home", home, "--wait", "0"); code != 0 {
		t.Errorf("resubmit of an agreed rule: exit %d, %s %s", code, errText, out)
	}

	// issue signs credentials with the threshold too.
	credFile := filepath.Join(dir, "cred.cose")
	mustSign(t, "issue", "--home", home, "--subject", "svc", "--out", credFile)
	if cred := envelopeOf(t, credFile); len(cred.Signatures) != 2 {
		t.Errorf("credential of a 2-of-3 home has %d signatures, want 2", len(cred.Signatures))
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no --offline", args: []string{"sign", "--home", home, "--head-seq", "2", "--head-id", sdRv.ID.String(), "--kind", "revocation", "--id", sd1.ID.String(), "--out", filepath.Join(dir, "x")}, want: "--offline"},
		{name: "source by name", args: []string{"sign", "--offline", "--home", home, "--head-seq", "2", "--head-id", sdRv.ID.String(), "--kind", "rule", "--accept", "okta", "--subjects", "a", "--resources", "b", "--actions", "read", "--out", filepath.Join(dir, "x")}, want: "authority id"},
		{name: "no head", args: []string{"sign", "--offline", "--home", home, "--kind", "revocation", "--id", sd1.ID.String(), "--out", filepath.Join(dir, "x")}, want: "--head-seq"},
		{name: "unknown kind", args: []string{"sign", "--offline", "--home", home, "--head-seq", "2", "--head-id", sdRv.ID.String(), "--kind", "genesis", "--out", filepath.Join(dir, "x")}, want: "rule or revocation"},
		{name: "submit without a target", args: []string{"submit", r1}, want: "--api"},
		{name: "submit --api without a token", args: []string{"submit", r1, "--api", n.APIAddr()}, want: "--token-file"},
		{name: "submit garbage", args: []string{"submit", filepath.Join(home, "config.json"), "--home", home, "--wait", "0"}, want: "refused"},
		{name: "init threshold over keys", args: []string{"init", "--home", filepath.Join(dir, "bad"), "--name", "x", "--keys", "2", "--threshold", "3"}, want: "--threshold 3"},
		{name: "init unknown alg", args: []string{"init", "--home", filepath.Join(dir, "bad"), "--name", "x", "--alg", "rsa"}, want: "unknown algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errText, code := runFednode(t, tt.args...)
			if code != 2 || !strings.Contains(errText, tt.want) {
				t.Fatalf("exit %d, %q; want exit 2 mentioning %q", code, errText, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a refused sign wrote its --out file")
	}
}

// TestInitMLDSAHome: init --alg mldsa65 makes a home whose genesis is
// signed by ML-DSA-65 keys to its threshold.
func TestInitMLDSAHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "pq")
	mustSign(t, "init", "--home", home, "--name", "pq", "--alg", "mldsa65", "--keys", "2", "--threshold", "2")
	h, err := node.LoadHome(home)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := authority.Parse(h.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	if len(gen.Signatures) != 2 || gen.Decl.Genesis.Threshold != 2 || gen.Alg != authority.AlgMLDSA65 {
		t.Fatalf("genesis: %d signatures, threshold %d, alg %v; want 2, 2, mldsa65", len(gen.Signatures), gen.Decl.Genesis.Threshold, gen.Alg)
	}
	for _, f := range []string{"root.key", "root-2.key"} {
		fi, err := os.Stat(filepath.Join(home, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}
}
