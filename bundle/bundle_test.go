package bundle

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

var update = flag.Bool("update", false, "rewrite testdata/v1-valid.bundle from the fixture")

func mustOpen(t *testing.T, b []byte, opts OpenOptions) *Bundle {
	t.Helper()
	bd, err := Open(b, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return bd
}

func TestOpen(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name  string
		trust []authority.ID
	}{
		{"no trust list", nil},
		{"exporter trusted", []authority.ID{f.pki.ID}},
		{"exporter among several trusted", []authority.ID{f.aws.ID, f.mallory.ID, f.pki.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd := mustOpen(t, f.bundle, OpenOptions{Trust: tt.trust})
			if bd.Format != FormatVersion || bd.GraphVersion != 5 || bd.ExportedAt != exportTime.UnixMilli() {
				t.Errorf("contents: format %d, graph version %d, exported at %d", bd.Format, bd.GraphVersion, bd.ExportedAt)
			}
			if got := bd.Graph.Version(); got != bd.GraphVersion {
				t.Errorf("Graph.Version() = %d, want %d", got, bd.GraphVersion)
			}
			if bd.Exporter == nil || bd.Exporter.ID != f.pki.ID || bd.Exporter.Name != "pki" || bd.Contents.Exporter != f.pki.ID {
				t.Errorf("Exporter = %+v, want pki %s", bd.Exporter, f.pki.ID.Short())
			}
			want := []authority.ID{f.pki.ID, f.aws.ID, f.rule1.ID, f.rule2.ID, f.revocation.ID}
			for i, id := range bd.Graph.Order() {
				if id != want[i] {
					t.Errorf("graph order[%d] = %s, want %s", i, id.Short(), want[i].Short())
				}
			}
		})
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	bd := mustOpen(t, f.bundle, OpenOptions{Trust: []authority.ID{f.pki.ID}})
	later := exportTime.Add(36 * time.Hour)
	tests := []struct {
		name      string
		cred      *authority.Signed
		resource  string
		action    string
		at        time.Time
		allow     bool
		reason    authority.Reason
		wantAgeMS int64
	}{
		{"allow read", f.alice, "db/orders", "read", later, true, authority.ReasonOK, 129600000},
		{"allow by second rule", f.alice, "db/scratch/tmp", "write", later, true, authority.ReasonOK, 129600000},
		{"revoked credential", f.bob, "db/orders", "read", later, false, authority.ReasonRevoked, 129600000},
		{"action not allowed", f.alice, "db/orders", "delete", later, false, authority.ReasonActionNotAllowed, 129600000},
		{"resource not allowed", f.alice, "web/index", "read", later, false, authority.ReasonResourceNotAllowed, 129600000},
		{"at the export", f.alice, "db/orders", "read", exportTime, true, authority.ReasonOK, 0},
		{"clock behind the exporter", f.alice, "db/orders", "read", exportTime.Add(-time.Hour), true, authority.ReasonOK, 0},
		{"credential expired", f.alice, "db/orders", "read", exportTime.Add(31 * 24 * time.Hour), false, authority.ReasonExpired, 31 * 24 * 3600 * 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := bd.Verify(authority.Request{Credential: tt.cred.Raw, Target: f.pki.ID, Resource: tt.resource, Action: tt.action}, tt.at)
			if d.Allow != tt.allow || d.Reason != tt.reason {
				t.Fatalf("decision %s/%s (%s), want allow=%v reason %s", d.Outcome, d.Reason, d.Message, tt.allow, tt.reason)
			}
			if d.GraphVersion != 5 {
				t.Errorf("GraphVersion = %d, want 5", d.GraphVersion)
			}
			if d.GraphAgeMS != tt.wantAgeMS {
				t.Errorf("GraphAgeMS = %d, want %d", d.GraphAgeMS, tt.wantAgeMS)
			}
			if got := bd.Age(tt.at).Milliseconds(); got != tt.wantAgeMS {
				t.Errorf("Age = %d ms, want %d (as GraphAgeMS)", got, tt.wantAgeMS)
			}
		})
	}
}

// TestRefusals covers every kind of bad bundle Open must refuse. Each
// forged case re-seals its payload with a key that passes every check
// before the one under test, so that the check under test is what refuses.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	trustPKI := []authority.ID{f.pki.ID}
	canon := payloadOf(t, f.contents)
	if canon[0] != 0xa5 || canon[1] != 0x01 || canon[2] != 0x01 {
		t.Fatalf("payload does not start with map(5) {1: 1: %x", canon[:3])
	}
	tests := []struct {
		name   string
		bundle func() []byte
		trust  []authority.ID
		frag   string
		is     error // also wrapped, besides ErrInvalid
	}{
		{
			name:   "flipped signature byte",
			bundle: func() []byte { return flip(f.bundle, len(f.bundle)-1) },
			frag:   "seal does not verify with the root keys of exporter pki",
			is:     authority.ErrBadSignature,
		},
		{
			name:   "resealed by an untrusted key, trust set",
			bundle: func() []byte { return sealPayload(t, canon, f.malloryKey) },
			trust:  trustPKI,
			frag:   "seal does not verify with the root keys of exporter pki",
			is:     authority.ErrBadSignature,
		},
		{
			name:   "resealed by another key, no trust list",
			bundle: func() []byte { return sealPayload(t, canon, f.awsKey) },
			frag:   "which its issuer never declared",
			is:     authority.ErrBadSignature,
		},
		{
			name: "exporter in the graph but not trusted",
			bundle: func() []byte {
				c := f.with()
				c.Exporter = f.aws.ID
				return sealRaw(t, c, f.awsKey)
			},
			trust: trustPKI,
			frag:  "exporter " + f.aws.ID.Short() + " is not one of the 1 authorities this site trusts",
		},
		{
			name: "exporter not in the graph",
			bundle: func() []byte {
				c := f.with()
				c.Exporter = f.mallory.ID
				return sealRaw(t, c, f.malloryKey)
			},
			frag: "exporter " + f.mallory.ID.Short() + " is not an authority in the bundle's graph",
		},
		{
			name: "exporter names a rule",
			bundle: func() []byte {
				c := f.with()
				c.Exporter = f.rule1.ID
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "is declaration 3 of 5 (rule " + f.rule1.ID.Short() + "), not a genesis",
		},
		{
			name: "zero exporter",
			bundle: func() []byte {
				c := f.with()
				c.Exporter = authority.ID{}
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "no exporter authority",
		},
		{
			name: "declaration swapped for an equivocating one",
			bundle: func() []byte {
				c := f.with()
				c.Declarations[3] = f.fork.Raw
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "declaration 4 of 5 (rule " + f.fork.ID.Short() + "): authority: rule",
			is:   authority.ErrConflict,
		},
		{
			name: "rules in the wrong order",
			bundle: func() []byte {
				c := f.with()
				c.Declarations[2], c.Declarations[3] = c.Declarations[3], c.Declarations[2]
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "declaration 3 of 5 (rule " + f.rule2.ID.Short() + ")",
			is:   authority.ErrGap,
		},
		{
			name: "revocation before its issuer's genesis",
			bundle: func() []byte {
				c := f.with()
				c.Declarations[1], c.Declarations[4] = c.Declarations[4], c.Declarations[1]
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "declaration 2 of 5 (revocation " + f.revocation.ID.Short() + ")",
			is:   authority.ErrUnknownAuthority,
		},
		{
			name: "declaration with a bad signature",
			bundle: func() []byte {
				c := f.with()
				c.Declarations[2] = flip(f.rule1.Raw, len(f.rule1.Raw)-1)
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "declaration 3 of 5 (rule " + authority.IDOf(flip(f.rule1.Raw, len(f.rule1.Raw)-1)).Short() + "): authority: bad signature",
			is:   authority.ErrBadSignature,
		},
		{
			name: "malformed declaration",
			bundle: func() []byte {
				c := f.with()
				c.Declarations[4] = []byte("not a declaration")
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "declaration 5 of 5 (" + authority.IDOf([]byte("not a declaration")).Short() + "): authority: malformed declaration",
			is:   authority.ErrMalformed,
		},
		{
			name: "duplicate declaration",
			bundle: func() []byte {
				c := f.with()
				c.Declarations = append(c.Declarations, f.rule2.Raw)
				c.GraphVersion++
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "declaration 6 of 6 (rule " + f.rule2.ID.Short() + ")",
			is:   authority.ErrDuplicate,
		},
		{
			name: "credential in the graph",
			bundle: func() []byte {
				c := f.with()
				c.Declarations = append(c.Declarations, f.alice.Raw)
				c.GraphVersion++
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "declaration 6 of 6 (credential " + f.alice.ID.Short() + ")",
			is:   authority.ErrOffChain,
		},
		{
			name: "declaration removed",
			bundle: func() []byte {
				c := f.with()
				c.Declarations = c.Declarations[:4]
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "graph version 5 but 4 declarations",
		},
		{
			name: "graph version zero",
			bundle: func() []byte {
				c := f.with()
				c.GraphVersion, c.Declarations = 0, nil
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "graph version 0",
		},
		{
			name: "graph version over the limit",
			bundle: func() []byte {
				c := f.with()
				c.GraphVersion = MaxDeclarations + 1
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "over the limit of 1048576 declarations",
		},
		{
			name: "negative exported-at",
			bundle: func() []byte {
				c := f.with()
				c.ExportedAt = -1
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "exported-at -1 is negative",
		},
		{
			name: "newer format",
			bundle: func() []byte {
				c := f.with()
				c.Format = 2
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "format 2 is newer than this reader, which knows only format 1",
		},
		{
			name: "format zero",
			bundle: func() []byte {
				c := f.with()
				c.Format = 0
				return sealRaw(t, c, f.pkiKey)
			},
			frag: "format 0: this reader knows only format 1",
		},
		{
			name: "non-minimal integer in payload",
			bundle: func() []byte {
				p := append([]byte{0xa5, 0x01, 0x18, 0x01}, canon[3:]...)
				return sealPayload(t, p, f.pkiKey)
			},
			frag: "payload is not in Core Deterministic CBOR encoding",
		},
		{
			name: "duplicate key in payload",
			bundle: func() []byte {
				p := append(append([]byte{0xa6}, canon[1:]...), 0x01, 0x01)
				return sealPayload(t, p, f.pkiKey)
			},
			frag: "payload: cbor: found duplicate map key",
		},
		{
			name: "unknown field in payload",
			bundle: func() []byte {
				p := append(append([]byte{0xa6}, canon[1:]...), 0x06, 0x00)
				return sealPayload(t, p, f.pkiKey)
			},
			frag: "payload: cbor: found unknown field",
		},
		{
			name: "indefinite-length declarations array",
			bundle: func() []byte {
				return sealPayload(t, indefiniteDeclarations(t, f.contents), f.pkiKey)
			},
			frag: "payload: cbor: indefinite-length array isn't allowed",
		},
		{
			name:   "payload is not a map",
			bundle: func() []byte { return sealPayload(t, []byte{0x80}, f.pkiKey) },
			frag:   "payload: cbor: cannot unmarshal array",
		},
		{
			name:   "truncated by one byte",
			bundle: func() []byte { return f.bundle[:len(f.bundle)-1] },
			frag:   "seal: authority: malformed declaration: not a COSE_Sign1 envelope",
			is:     authority.ErrMalformed,
		},
		{
			name:   "truncated by half",
			bundle: func() []byte { return f.bundle[:len(f.bundle)/2] },
			frag:   "seal: authority: malformed declaration",
		},
		{
			name:   "trailing byte",
			bundle: func() []byte { return append(append([]byte(nil), f.bundle...), 0x00) },
			frag:   "seal: authority: malformed declaration",
		},
		{
			name:   "garbage",
			bundle: func() []byte { return []byte("PK\x03\x04 this is a zip file, not a bundle") },
			frag:   "seal: authority: malformed declaration",
		},
		{
			name:   "empty",
			bundle: func() []byte { return nil },
			frag:   "seal: authority: malformed declaration: empty input",
		},
		{
			name:   "a declaration, not a bundle",
			bundle: func() []byte { return f.rule1.Raw },
			frag:   "payload: cbor: found unknown field",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd, err := Open(tt.bundle(), OpenOptions{Trust: tt.trust})
			if err == nil {
				t.Fatalf("Open accepted the bundle (graph version %d)", bd.GraphVersion)
			}
			t.Log(err)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "bundle: invalid bundle: ") {
				t.Errorf("error lacks the package prefix: %v", err)
			}
			if !strings.Contains(err.Error(), tt.frag) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.frag)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v: %v", tt.is, err)
			}
		})
	}
}

// TestRefusesAnyFlippedSignatureByte flips each bit pattern of each byte of
// the seal's signature (the last 64 bytes of the envelope).
func TestRefusesAnyFlippedSignatureByte(t *testing.T) {
	f := newFixture(t)
	n := len(f.bundle)
	if !bytes.Equal(f.bundle[n-66:n-64], []byte{0x58, 0x40}) {
		t.Fatalf("envelope does not end with a 64-byte signature: % x", f.bundle[n-66:n-64])
	}
	for i := n - 64; i < n; i++ {
		_, err := Open(flip(f.bundle, i), OpenOptions{Trust: []authority.ID{f.pki.ID}})
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, authority.ErrBadSignature) {
			t.Errorf("signature byte %d flipped: err = %v, want a bad signature", i-(n-64), err)
		}
	}
}

func TestExport(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		change func(c *Contents)
		key    *authority.PrivateKey
		frag   string // "" means success
	}{
		{name: "sets the format", change: func(c *Contents) { c.Format = 0 }, key: f.pkiKey},
		{name: "overrides a wrong format", change: func(c *Contents) { c.Format = 7 }, key: f.pkiKey},
		{name: "count mismatch", change: func(c *Contents) { c.GraphVersion = 4 }, key: f.pkiKey,
			frag: "bundle: export: graph version 4 but 5 declarations"},
		{name: "empty graph", change: func(c *Contents) { c.GraphVersion, c.Declarations = 0, nil }, key: f.pkiKey,
			frag: "bundle: export: graph version 0"},
		{name: "key of another authority", change: func(c *Contents) {}, key: f.awsKey,
			frag: "is not a root key of exporter pki"},
		{name: "exporter genesis missing", change: func(c *Contents) { c.Exporter = f.mallory.ID }, key: f.malloryKey,
			frag: "is not an authority in the bundle's graph"},
		{name: "negative time", change: func(c *Contents) { c.ExportedAt = -5 }, key: f.pkiKey,
			frag: "exported-at -5 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.with()
			tt.change(&c)
			b, err := Export(c, tt.key)
			if tt.frag != "" {
				if err == nil || !strings.Contains(err.Error(), tt.frag) {
					t.Fatalf("Export: err = %v, want %q", err, tt.frag)
				}
				return
			}
			if err != nil {
				t.Fatalf("Export: %v", err)
			}
			if !bytes.Equal(b, f.bundle) {
				t.Errorf("Export is not deterministic: the bundle differs from the fixture's")
			}
			if bd := mustOpen(t, b, OpenOptions{}); bd.Format != FormatVersion {
				t.Errorf("Format = %d, want %d", bd.Format, FormatVersion)
			}
		})
	}
}

// TestGolden pins the wire format: the fixture's bundle, from fixed keys and
// times, must be byte-for-byte the file in testdata, and that file must open.
// Run with -update after a deliberate format change (and bump FormatVersion).
func TestGolden(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join("testdata", "v1-valid.bundle")
	if *update {
		if err := os.WriteFile(path, f.bundle, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bd, err := Load(path, OpenOptions{Trust: []authority.ID{f.pki.ID}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if bd.GraphVersion != 5 || bd.Exporter.Name != "pki" {
		t.Errorf("golden bundle: graph version %d, exporter %q", bd.GraphVersion, bd.Exporter.Name)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.bundle, want) {
		t.Errorf("Export output differs from %s: the wire format changed (rerun with -update if deliberate)", path)
	}
}

func TestLoad(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := write("valid.bundle", f.bundle)
	corrupt := write("corrupt.bundle", flip(f.bundle, len(f.bundle)-1))
	big := filepath.Join(dir, "big.bundle")
	fh, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(MaxBundleSize + 1); err != nil { // sparse: nothing is written
		t.Fatal(err)
	}
	fh.Close()
	tests := []struct {
		name    string
		path    string
		invalid bool   // wraps ErrInvalid
		frag    string // "" means success
	}{
		{name: "valid", path: valid},
		{name: "corrupt", path: corrupt, invalid: true, frag: "seal does not verify"},
		{name: "oversized", path: big, invalid: true, frag: "over the 268435456-byte limit"},
		{name: "missing", path: filepath.Join(dir, "missing.bundle"), frag: "no such file"},
		{name: "a directory", path: dir, frag: "bundle: load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd, err := Load(tt.path, OpenOptions{})
			if tt.frag == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if bd.GraphVersion != 5 {
					t.Errorf("GraphVersion = %d", bd.GraphVersion)
				}
				return
			}
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if errors.Is(err, ErrInvalid) != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalid) = %v, want %v: %v", !tt.invalid, tt.invalid, err)
			}
			if !strings.HasPrefix(err.Error(), "bundle: ") || !strings.Contains(err.Error(), tt.frag) {
				t.Errorf("error %q does not contain %q", err, tt.frag)
			}
		})
	}
}

// TestVerifyConcurrent backs Bundle's doc: an opened bundle may decide from
// many goroutines at once (run under -race).
func TestVerifyConcurrent(t *testing.T) {
	f := newFixture(t)
	bd := mustOpen(t, f.bundle, OpenOptions{})
	req := authority.Request{Credential: f.alice.Raw, Target: f.pki.ID, Resource: "db/orders", Action: "read"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if d := bd.Verify(req, exportTime.Add(time.Hour)); !d.Allow {
					t.Errorf("deny: %s", d.Message)
					return
				}
			}
		})
	}
	wg.Wait()
}

// flip returns a copy of b with byte i inverted.
func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0xff
	return c
}

// indefiniteDeclarations encodes c with its declarations array in
// indefinite-length form (0x9f ... 0xff), which is valid CBOR but not
// deterministic.
func indefiniteDeclarations(t *testing.T, c Contents) []byte {
	t.Helper()
	decls := c.Declarations
	c.Declarations = [][]byte{}
	p := payloadOf(t, c) // ends with key 5 and an empty array (0x80)
	if p[len(p)-2] != 0x05 || p[len(p)-1] != 0x80 {
		t.Fatalf("payload does not end with 5: []: % x", p[len(p)-2:])
	}
	p = append(p[:len(p)-1], 0x9f)
	for _, d := range decls {
		enc, err := encMode.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		p = append(p, enc...)
	}
	return append(p, 0xff)
}
