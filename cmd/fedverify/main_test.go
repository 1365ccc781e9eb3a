package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/bundle"
	"github.com/fednode/fednode/tlog"
)

// Fixed times: tests never read the clock (run is always given --time).
var (
	exportTime = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	notAfter   = exportTime.Add(24 * time.Hour)
)

const origin = "fednode/edge-test"

type party struct {
	name string
	key  *authority.PrivateKey
	gen  *authority.Signed
}

func key(t *testing.T, seed string) *authority.PrivateKey {
	t.Helper()
	h := sha256.Sum256([]byte("fedverify test key: " + seed))
	k, err := authority.GenerateKey(authority.AlgEd25519, bytes.NewReader(h[:]))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t *testing.T, d authority.Declaration, k *authority.PrivateKey) *authority.Signed {
	t.Helper()
	s, err := authority.Sign(d, k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newParty(t *testing.T, name string) party {
	t.Helper()
	k := key(t, name)
	return party{name: name, key: k, gen: sign(t, authority.Declaration{
		Kind: authority.KindGenesis, IssuedAt: exportTime.Add(-time.Hour).Unix(),
		Genesis: &authority.Genesis{Name: name, Kind: "pki", Threshold: 1, RootKeys: []authority.PublicKey{k.Public()}},
	}, k)}
}

func (p party) signer() bundle.Signer { return bundle.Signer{Name: p.name, ID: p.gen.ID, Key: p.key} }

// site is the edge fixture: pki accepts aws principals for reads of db/*
// (version 3, the full bundle) and, in the delta (version 4), of web/*.
type site struct {
	pki, aws, other party
	full, delta     string // bundle files
	alice           string // credential file
	dir             string
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{pki: newParty(t, "pki"), aws: newParty(t, "aws"), other: newParty(t, "other"), dir: t.TempDir()}
	rule := func(seq uint64, prev authority.ID, res string) *authority.Signed {
		return sign(t, authority.Declaration{
			Kind: authority.KindRule, Authority: s.pki.gen.ID, Seq: seq, Prev: prev, IssuedAt: exportTime.Add(-time.Hour).Unix(),
			Rule: &authority.Rule{Source: s.aws.gen.ID, Subjects: "*", Resources: res, Actions: []string{"read"}},
		}, s.pki.key)
	}
	r1 := rule(1, s.pki.gen.ID, "db/*")
	r2 := rule(2, r1.ID, "web/*")
	decls := [][]byte{s.pki.gen.Raw, s.aws.gen.Raw, r1.Raw, r2.Raw}
	log := tlog.NewMemStore()
	a, err := tlog.NewAppender(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range decls {
		if err := a.Append(d, log.PutNode); err != nil {
			t.Fatal(err)
		}
	}
	make := func(base, size uint64) []byte {
		root, err := tlog.RootAt(log, size)
		if err != nil {
			t.Fatal(err)
		}
		note, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: origin, Size: size, Root: root}, "pki", s.pki.key)
		if err != nil {
			t.Fatal(err)
		}
		c := bundle.Contents{
			GraphVersion: size, BaseVersion: base, Origin: origin, Checkpoint: note,
			ExportedAt: exportTime.UnixMilli(), NotAfter: notAfter.UnixMilli(),
			Declarations: decls[base:size],
		}
		if err := c.Prove(log); err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Build(c, s.pki.signer())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s.full = s.write(t, "graph.bundle", make(0, 3))
	s.delta = s.write(t, "delta.bundle", make(3, 4))
	s.alice = s.write(t, "alice.cred", sign(t, authority.Declaration{
		Kind: authority.KindCredential, Authority: s.aws.gen.ID, IssuedAt: exportTime.Add(-time.Hour).Unix(),
		Credential: &authority.Credential{Subject: "alice", NotBefore: exportTime.Add(-time.Hour).Unix(), NotAfter: exportTime.Add(30 * 24 * time.Hour).Unix()},
	}, s.aws.key).Raw)
	return s
}

func (s *site) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// args is a request for resource at time at, trusting pki, plus extra flags.
func (s *site) args(resource string, at time.Time, extra ...string) []string {
	return append([]string{
		"--bundle", s.full, "--credential", s.alice, "--at", "pki", "--resource", resource, "--action", "read",
		"--time", at.Format(time.RFC3339), "--trust", s.pki.gen.ID.String(),
	}, extra...)
}

func TestRun(t *testing.T) {
	s := newSite(t)
	later := exportTime.Add(time.Hour)
	corrupt := s.write(t, "corrupt.bundle", []byte("not a bundle"))
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // in stdout
		stderr string // in stderr
	}{
		{name: "allow", args: s.args("db/orders", later), code: 0, stdout: "allow (ok): pki accepts"},
		{name: "allow, by name and by id", args: s.args("db/orders", later, "--at", s.pki.gen.ID.String()), code: 0, stdout: "graph version 3 of fednode/edge-test"},
		{name: "deny: resource", args: s.args("hr/salaries", later), code: 1, stdout: "deny (resource-not-allowed)"},
		{name: "deny: unknown target", args: s.args("db/orders", later, "--at", "nobody"), code: 1, stdout: `deny (unknown-authority): target "nobody"`},
		{name: "delta's rule without the delta", args: s.args("web/index", later), code: 1, stdout: "deny (resource-not-allowed)"},
		{name: "delta's rule with the delta", args: s.args("web/index", later, "--delta", s.delta), code: 0, stdout: "graph version 4"},
		{name: "stale", args: s.args("db/orders", notAfter.Add(2*time.Hour)), code: 1, stdout: "deny (stale-bundle): the bundle expired at 2025-03-15T12:00:00Z, 2h0m0s before"},
		{name: "stale, allowed", args: s.args("db/orders", notAfter.Add(2*time.Hour), "--allow-stale", "3h"), code: 0, stdout: "allowed by the operator up to 3h0m0s"},
		{name: "stale beyond the allowance", args: s.args("db/orders", notAfter.Add(4*time.Hour), "--allow-stale", "3h"), code: 1, stdout: "deny (stale-bundle)"},
		{name: "stale, unknown target", args: s.args("db/orders", notAfter.Add(time.Hour), "--at", "nobody"), code: 1, stdout: "deny (stale-bundle)"},
		{name: "origin pinned", args: s.args("db/orders", later, "--origin", origin), code: 0},
		{name: "bad bundle", args: s.args("db/orders", later, "--bundle", corrupt), code: 2, stderr: "fedverify: bundle: load " + corrupt + ": bundle: invalid bundle: outer structure"},
		{name: "missing bundle", args: s.args("db/orders", later, "--bundle", filepath.Join(s.dir, "none")), code: 2, stderr: "no such file"},
		{name: "untrusted exporter", args: s.args("db/orders", later, "--trust", s.other.gen.ID.String()), code: 2, stderr: "0 of its 1 signatures are by trusted authorities, need 1"},
		{name: "too few signatures", args: s.args("db/orders", later, "--min-signatures", "2"), code: 2, stderr: "need 2"},
		{name: "another log", args: s.args("db/orders", later, "--origin", "fednode/other"), code: 2, stderr: `but this site follows "fednode/other"`},
		{name: "delta out of order", args: s.args("db/orders", later, "--delta", s.delta, "--delta", s.delta), code: 2, stderr: "delta from graph version 3, but the base bundle is at version 4"},
		{name: "no trust list", args: append(s.args("db/orders", later)[:12], "--min-signatures", "1"), code: 0, stderr: "warning: no --trust"},
		{name: "missing flags", args: []string{"--bundle", s.full}, code: 2, stderr: "are required"},
		{name: "bad time", args: s.args("db/orders", later, "--time", "yesterday"), code: 2, stderr: "--time"},
		{name: "bad trust id", args: s.args("db/orders", later, "--trust", "pki"), code: 2, stderr: "--trust: authority: id"},
		{name: "unknown flag", args: s.args("db/orders", later, "--frobnicate"), code: 2, stderr: "flag provided but not defined"},
		{name: "stray argument", args: append(s.args("db/orders", later), "extra"), code: 2, stderr: "unexpected arguments"},
		{name: "help", args: []string{"-h"}, code: 0, stderr: "usage: fedverify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			t.Logf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout does not contain %q", tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr does not contain %q", tt.stderr)
			}
		})
	}
}

func TestRunJSON(t *testing.T) {
	s := newSite(t)
	var stdout, stderr bytes.Buffer
	at := exportTime.Add(90 * time.Minute)
	if code := run(s.args("db/orders", at, "--json"), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var d struct {
		Decision     string   `json:"decision"`
		Reason       string   `json:"reason"`
		Message      string   `json:"message"`
		Chain        []string `json:"chain"`
		GraphVersion uint64   `json:"graph_version"`
		GraphAgeMS   *int64   `json:"graph_age_ms"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		t.Fatalf("stdout is not one JSON object: %v: %s", err, stdout.String())
	}
	if d.Decision != "allow" || d.Reason != "ok" || d.Message == "" || len(d.Chain) != 4 || d.GraphVersion != 3 || d.GraphAgeMS == nil || *d.GraphAgeMS != 90*60*1000 {
		t.Errorf("decision JSON = %s", stdout.String())
	}
}

// TestRunRollback runs the verifier at one site in sequence: the site
// remembers the newest version it accepted and refuses an older bundle.
func TestRunRollback(t *testing.T) {
	s := newSite(t)
	dir := filepath.Join(s.dir, "site")
	at := exportTime.Add(time.Hour)
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout string
		seen   uint64
	}{
		{"first bundle", s.args("db/orders", at, "--site", dir), 0, "allow (ok)", 3},
		{"newer, with the delta", s.args("db/orders", at, "--site", dir, "--delta", s.delta), 0, "graph version 4", 4},
		{"older bundle replayed", s.args("db/orders", at, "--site", dir), 1, "deny (rollback): the bundle is at graph version 3 of fednode/edge-test, but this site has already seen version 4", 4},
		{"rollback before a bad target", s.args("db/orders", at, "--site", dir, "--at", "nobody"), 1, "deny (rollback)", 4},
		{"another site has not seen it", s.args("db/orders", at, "--site", filepath.Join(s.dir, "site2")), 0, "allow (ok)", 4},
	}
	for _, st := range steps {
		var stdout, stderr bytes.Buffer
		code := run(st.args, &stdout, &stderr)
		if code != st.code || !strings.Contains(stdout.String(), st.stdout) {
			t.Fatalf("%s: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stdout containing %q", st.name, code, st.code, stdout.String(), stderr.String(), st.stdout)
		}
		seen, err := bundle.Site{Dir: dir}.LastSeen(origin)
		if err != nil || seen != st.seen {
			t.Fatalf("%s: site has seen %d (%v), want %d", st.name, seen, err, st.seen)
		}
	}
	// A damaged site state is bad input: the verifier fails closed.
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("site directory: %v, %d entries", err, len(entries))
	}
	if err := os.WriteFile(filepath.Join(dir, entries[0].Name()), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(s.args("db/orders", at, "--site", dir), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--site: bundle: site:") {
		t.Fatalf("damaged site: exit %d, stderr %s", code, stderr.String())
	}
}

// TestDependencies keeps the edge verifier small: none of the node's heavy
// dependencies, and of this module only authority (with its internal
// packages), tlog and bundle.
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/fednode/fednode"
	allowed := map[string]bool{module + "/authority": true, module + "/tlog": true, module + "/bundle": true, module + "/cmd/fedverify": true}
	forbidden := []string{"libp2p", "hashicorp/raft", "dgraph-io/badger", "spf13/cobra", "prometheus", "net/http"}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed too little: %q", out)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.Contains(d, f) {
				t.Errorf("fedverify depends on %s", d)
			}
		}
		// authority/internal/... is authority's own code (edwards25519),
		// importable by nothing else.
		if strings.HasPrefix(d, module+"/") && !allowed[d] && !strings.HasPrefix(d, module+"/authority/internal/") {
			t.Errorf("fedverify depends on %s; of this module it may use only authority, tlog and bundle", d)
		}
	}
}
