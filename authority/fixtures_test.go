package authority_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// Fixtures live in testdata/, one declaration envelope per file, named after
// the defect it holds. graph-*.cbor are the declarations the others are judged
// against, applied in file-name order. Regenerate with
//
//	go test ./authority -run TestFixtures -update
//
// Ed25519 and the CBOR encoding are deterministic, so regenerating gives the
// same bytes: TestFixtures fails if the files and the generator disagree.

type fixture struct {
	name string
	raw  []byte
}

// makeFixtures builds every fixture from the fixed keys and now.
func makeFixtures(t fataler) []fixture {
	t.Helper()
	w := newWorld(t)
	rule := w.etlRule(t)
	valid := w.etlCredential(t)

	flipped := clone(valid.Raw)
	flipped[len(flipped)-1] ^= 0x01

	gcp := newChain(t, "gcp-data", seedGCP) // never in the graph
	unknown := gcp.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour))

	// aws-prod named as issuer, azure-corp's key used.
	foreign := mustSign(t, credentialDecl(w.aws.id(), etlSubject, now.Add(-time.Hour), now.Add(time.Hour)), w.azure.key)

	payload, _ := payloadOf(t, valid.Raw)
	noncanonical := resign(t, reorderMap(t, payload, false), seedAWS, nil, nil, nil)

	expired := w.aws.credential(t, etlSubject, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	admin := w.aws.credential(t, adminSubject, now.Add(-time.Hour), now.Add(time.Hour))

	return []fixture{
		{"graph-1-aws-prod-genesis.cbor", w.aws.genesis.Raw},
		{"graph-2-azure-corp-genesis.cbor", w.azure.genesis.Raw},
		{"graph-3-azure-corp-rule-etl-read.cbor", rule.Raw},
		{"valid-credential.cbor", valid.Raw},
		{"flipped-signature-byte.cbor", flipped},
		{"truncated-credential.cbor", valid.Raw[:len(valid.Raw)/2]},
		{"unknown-issuer-credential.cbor", unknown.Raw},
		{"foreign-key-signature.cbor", foreign.Raw},
		{"noncanonical-payload.cbor", noncanonical},
		{"rule-presented-as-credential.cbor", rule.Raw},
		{"expired-credential.cbor", expired.Raw},
		{"admin-role-credential.cbor", admin.Raw},
	}
}

func TestFixtures(t *testing.T) {
	checkGolden(t, "TestFixtures", "testdata", makeFixtures)
}

// checkGolden checks the fixtures make generates against the *.cbor files
// in dir: made twice, they must be byte-identical (deterministic signing
// and encoding); each must equal its file, and no file may lack a maker.
// With -update it writes the files instead and removes stale ones. test
// names the test to rerun with -update.
func checkGolden(t *testing.T, test, dir string, make func(fataler) []fixture) {
	t.Helper()
	fixtures, again := make(t), make(t)
	rerun := fmt.Sprintf("run: go test ./authority -run %s -update", test)
	want := map[string]bool{}
	for i, f := range fixtures {
		if want[f.name] {
			t.Errorf("two fixtures are named %s", f.name)
		}
		want[f.name] = true
		if !bytes.Equal(f.raw, again[i].raw) {
			t.Errorf("%s: two generations differ: signing or encoding is not deterministic", f.name)
		}
		path := filepath.Join(dir, f.name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f.raw, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (%s)", err, rerun)
			continue
		}
		if !bytes.Equal(got, f.raw) {
			t.Errorf("%s differs from what the generator makes (%s)", path, rerun)
		}
	}
	present, _ := filepath.Glob(filepath.Join(dir, "*.cbor"))
	for _, p := range present {
		if !want[filepath.Base(p)] {
			if *update {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("stale fixture %s: no generator makes it", p)
		}
	}
}

// loadFixtureGraph applies testdata/graph-*.cbor in name order and returns
// the graph and the target of fixture requests (azure-corp).
func loadFixtureGraph(t fataler) (*authority.Graph, authority.ID) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "graph-*.cbor"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no graph fixtures: %v", err)
	}
	sort.Strings(paths)
	g := authority.NewGraph()
	for _, p := range paths {
		s, err := authority.Parse(readFile(t, p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if err := g.Apply(s); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	target, err := authority.ResolveAuthority(g, "azure-corp")
	if err != nil {
		t.Fatalf("%v", err)
	}
	return g, target
}

func readFile(t fataler, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return b
}

// fixtureRequest is the request every credential fixture is judged on.
func fixtureRequest(target authority.ID, cred []byte) authority.Request {
	return authority.Request{Credential: cred, Target: target, Resource: dataResource, Action: "read"}
}

func TestFixtureReasons(t *testing.T) {
	g, target := loadFixtureGraph(t)
	tests := []struct {
		name string // file in testdata
		want authority.Reason
	}{
		{name: "valid-credential.cbor", want: authority.ReasonOK},
		{name: "flipped-signature-byte.cbor", want: authority.ReasonBadSignature},
		{name: "truncated-credential.cbor", want: authority.ReasonMalformed},
		{name: "unknown-issuer-credential.cbor", want: authority.ReasonUnknownAuthority},
		{name: "foreign-key-signature.cbor", want: authority.ReasonBadSignature},
		{name: "noncanonical-payload.cbor", want: authority.ReasonMalformed},
		{name: "rule-presented-as-credential.cbor", want: authority.ReasonMalformed},
		{name: "expired-credential.cbor", want: authority.ReasonExpired},
		{name: "admin-role-credential.cbor", want: authority.ReasonSubjectNotAllowed},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			raw := readFile(t, filepath.Join("testdata", tt.name))
			d := authority.Verify(g, fixtureRequest(target, raw), authority.WithTime(now))
			t.Logf("%s: %s", d.Reason, d.Message)
			if d.Reason != tt.want || d.Allow != (tt.want == authority.ReasonOK) {
				t.Fatalf("reason %q (%s), want %q", d.Reason, d.Message, tt.want)
			}
		})
	}
	all, _ := filepath.Glob(filepath.Join("testdata", "*.cbor"))
	for _, p := range all {
		if name := filepath.Base(p); !strings.HasPrefix(name, "graph-") && !covered[name] {
			t.Errorf("fixture %s has no expected reason in TestFixtureReasons", name)
		}
	}
}
