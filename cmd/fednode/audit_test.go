package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
	"github.com/fednode/fednode/tlog"
)

// The audit commands run in process (the command tree, Execute), against a
// real single node started in the test.

// auditT0 is the fixed time the audit tests sign at.
var auditT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// auditNode starts a bootstrapped single node and gives its log seven
// declarations: two geneses, four rules and a revocation.
func auditNode(t *testing.T) (*node.Node, *node.Home, *authority.PrivateKey) {
	t.Helper()
	h, err := node.Init(filepath.Join(t.TempDir(), "aws"), node.InitOptions{Name: "aws-prod", Kind: "aws", Now: auditT0})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := node.New(ctx, node.Config{Home: h.Dir, Bootstrap: true, API: "127.0.0.1:0"})
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
	var first, last *authority.Signed
	for i := 0; i < 4; i++ {
		last, err = node.SignNext(ctx, h, n, auditT0, func(d *authority.Declaration) {
			d.Kind = authority.KindRule
			d.Rule = &authority.Rule{Source: okta.ID, Subjects: "alice*", Resources: "s3://b" + strconv.Itoa(i) + "/*", Actions: []string{"read"}}
		})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = last
		}
	}
	last, err = node.SignNext(ctx, h, n, auditT0, func(d *authority.Declaration) {
		d.Kind = authority.KindRevocation
		d.Revocation = &authority.Revocation{Target: first.ID, Reason: "test"}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "all seven declarations agreed", func() bool { return n.Agreed(last.ID) && n.GraphVersion() == 7 })
	return n, h, oktaKey
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errText, code := runFednode(t, args...)
	if code != 0 {
		t.Fatalf("fednode %s: exit %d: %s\n%s", strings.Join(args, " "), code, errText, out)
	}
	return out
}

func TestAuditCommands(t *testing.T) {
	n, h, oktaKey := auditNode(t)
	api := n.APIAddr()
	dir := t.TempDir()
	want, err := n.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("checkpoint", func(t *testing.T) {
		var cp struct {
			Origin   string   `json:"origin"`
			Size     uint64   `json:"size"`
			Root     string   `json:"root"`
			Note     string   `json:"note"`
			SignedBy []string `json:"signed_by"`
		}
		out := mustRun(t, "audit", "checkpoint", "--api", api, "--json")
		t.Logf("audit checkpoint --json:\n%s", out)
		if err := json.Unmarshal([]byte(out), &cp); err != nil {
			t.Fatal(err)
		}
		if cp.Size != 7 || cp.Root != hex.EncodeToString(want.Root) || cp.Note != want.Note || cp.Origin != want.Origin || cp.SignedBy != nil {
			t.Errorf("checkpoint %+v, want the node's %+v and no signed_by without --home", cp, want)
		}
		out = mustRun(t, "audit", "checkpoint", "--home", h.Dir, "--json")
		if err := json.Unmarshal([]byte(out), &cp); err != nil || len(cp.SignedBy) != 1 || cp.SignedBy[0] != "aws-prod" {
			t.Errorf("with --home: signed_by %v (%v), want [aws-prod]", cp.SignedBy, err)
		}
		if out := mustRun(t, "audit", "checkpoint", "--home", h.Dir); !strings.Contains(out, "signature verified") || !strings.Contains(out, "size   7") {
			t.Errorf("readable checkpoint:\n%s", out)
		}
	})

	t.Run("prove", func(t *testing.T) {
		id := h.Authority.String()
		out := mustRun(t, "audit", "prove", id, "--api", api, "--json")
		t.Logf("audit prove --json:\n%s", out)
		var p struct {
			Index    *uint64  `json:"index"`
			TreeSize uint64   `json:"tree_size"`
			LeafHash string   `json:"leaf_hash"`
			Proof    []string `json:"proof"`
			Root     string   `json:"root"`
			Verified bool     `json:"verified"`
		}
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatal(err)
		}
		if p.Index == nil || *p.Index != 0 || p.TreeSize != 7 || len(p.LeafHash) != 64 || len(p.Proof) != 3 || p.Root != hex.EncodeToString(want.Root) || !p.Verified {
			t.Errorf("proof of the genesis: %+v", p)
		}
		out = mustRun(t, "audit", "prove", id, "--home", h.Dir, "--size", "3")
		if !strings.Contains(out, "leaf 0 of the log of 3 leaves") || !strings.Contains(out, "verified") {
			t.Errorf("readable proof:\n%s", out)
		}
		tests := []struct {
			name string
			args []string
			code int
		}{
			{name: "bad id", args: []string{"audit", "prove", "nope", "--api", api}, code: 2},
			{name: "no id", args: []string{"audit", "prove", "--api", api}, code: 2},
			{name: "no node named", args: []string{"audit", "prove", id}, code: 2},
			{name: "size zero", args: []string{"audit", "prove", id, "--api", api, "--size", "0"}, code: 2},
			{name: "unknown id", args: []string{"audit", "prove", strings.Repeat("ab", 32), "--api", api}, code: 1},
			{name: "size beyond the log", args: []string{"audit", "prove", id, "--api", api, "--size", "99"}, code: 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, errText, code := runFednode(t, tt.args...); code != tt.code {
					t.Errorf("exit %d, want %d: %s", code, tt.code, errText)
				}
			})
		}
	})

	t.Run("consistency", func(t *testing.T) {
		out := mustRun(t, "audit", "consistency", "2", "7", "--api", api, "--json")
		var p struct {
			OldSize  uint64   `json:"old_size"`
			NewSize  uint64   `json:"new_size"`
			NewRoot  string   `json:"new_root"`
			Proof    []string `json:"proof"`
			Verified bool     `json:"verified"`
		}
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatal(err)
		}
		if p.OldSize != 2 || p.NewSize != 7 || p.NewRoot != hex.EncodeToString(want.Root) || len(p.Proof) == 0 || !p.Verified {
			t.Errorf("consistency 2 7: %+v", p)
		}
		if out := mustRun(t, "audit", "consistency", "3", "5", "--home", h.Dir); !strings.Contains(out, "verified") {
			t.Errorf("readable consistency:\n%s", out)
		}
		tests := []struct {
			name string
			args []string
			code int
		}{
			{name: "old above new", args: []string{"audit", "consistency", "7", "2", "--api", api}, code: 2},
			{name: "not a number", args: []string{"audit", "consistency", "x", "2", "--api", api}, code: 2},
			{name: "one size", args: []string{"audit", "consistency", "2", "--api", api}, code: 2},
			{name: "beyond the log", args: []string{"audit", "consistency", "2", "99", "--api", api}, code: 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, errText, code := runFednode(t, tt.args...); code != tt.code {
					t.Errorf("exit %d, want %d: %s", code, tt.code, errText)
				}
			})
		}
	})

	good := filepath.Join(dir, "log.jsonl")
	t.Run("export", func(t *testing.T) {
		out := mustRun(t, "audit", "export", "--api", api, "--out", good)
		if !strings.Contains(out, "exported 7 entries") {
			t.Errorf("export said:\n%s", out)
		}
		if _, errText, code := runFednode(t, "audit", "export", "--api", api); code != 2 {
			t.Errorf("export without --out: exit %d, want 2: %s", code, errText)
		}
	})
	lines := bytes.Split(bytes.TrimSuffix(readFile(t, good), []byte("\n")), []byte("\n"))
	if len(lines) != 8 {
		t.Fatalf("the export has %d lines, want 7 entries and a checkpoint", len(lines))
	}

	t.Run("verify good", func(t *testing.T) {
		out := mustRun(t, "audit", "verify", good, "--json")
		var rep exportReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		key := hex.EncodeToString(h.Root.Public().Key)
		if !rep.OK || rep.Size != 7 || rep.Root != hex.EncodeToString(want.Root) || len(rep.Signers) != 1 || rep.Signers[0] != (signer{Name: "aws-prod", Key: key}) {
			t.Errorf("verify: %+v", rep)
		}
		if out := mustRun(t, "audit", "verify", good); !strings.Contains(out, "signed  by aws-prod") {
			t.Errorf("readable verify:\n%s", out)
		}
		mustRun(t, "audit", "verify", good, "--checkpoint-signer-from-export")
		mustRun(t, "audit", "verify", good, "--trust", "aws-prod="+key)
		mustRun(t, "audit", "verify", good, "--trust", "aws-prod="+base64.StdEncoding.EncodeToString(h.Root.Public().Key))
	})

	t.Run("verify usage", func(t *testing.T) {
		key := hex.EncodeToString(h.Root.Public().Key)
		tests := []struct {
			name string
			args []string
			code int
		}{
			{name: "no file", args: []string{"audit", "verify"}, code: 2},
			{name: "missing file", args: []string{"audit", "verify", filepath.Join(dir, "nope")}, code: 2},
			{name: "both signer sources", args: []string{"audit", "verify", good, "--trust", "aws-prod=" + key, "--checkpoint-signer-from-export"}, code: 2},
			{name: "trust without a key", args: []string{"audit", "verify", good, "--trust", "aws-prod"}, code: 2},
			{name: "trust with a short key", args: []string{"audit", "verify", good, "--trust", "aws-prod=abcd"}, code: 2},
			{name: "trust another key", args: []string{"audit", "verify", good, "--trust", "aws-prod=" + hex.EncodeToString(oktaKey.Public().Key)}, code: 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, errText, code := runFednode(t, tt.args...); code != tt.code {
					t.Errorf("exit %d, want %d: %s", code, tt.code, errText)
				}
			})
		}
	})

	entry := func(i int) node.ExportEntry {
		var e node.ExportEntry
		if err := json.Unmarshal(lines[i], &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	encode := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	trailer := func() node.ExportTrailer {
		var tr node.ExportTrailer
		if err := json.Unmarshal(lines[7], &tr); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	with := func(edit func(ls [][]byte) [][]byte) [][]byte {
		ls := make([][]byte, len(lines))
		copy(ls, lines)
		return edit(ls)
	}
	// forged re-signs entry 5's declaration with okta's key: a line that is
	// consistent in itself (id, leaf hash) whose signature is not aws-prod's.
	forged := func() node.ExportEntry {
		e := entry(5)
		sd, err := authority.Parse(e.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		f, err := authority.Sign(sd.Decl, oktaKey)
		if err != nil {
			t.Fatal(err)
		}
		e.ID, e.Envelope, e.LeafHash = f.ID, f.Raw, tlog.LeafHash(f.Raw)
		return e
	}

	idx := func(i int64) *int64 { return &i }
	tests := []struct {
		name  string
		lines [][]byte
		index *int64 // the entry named; nil: the checkpoint or the whole file
		want  string // in the error
	}{
		{name: "envelope byte flipped", index: idx(3), want: "entry 3 (id ", lines: with(func(ls [][]byte) [][]byte {
			e := entry(3)
			e.Envelope[len(e.Envelope)-5] ^= 0x01
			ls[3] = encode(e)
			return ls
		})},
		{name: "two entries swapped", index: idx(2), want: "index 3", lines: with(func(ls [][]byte) [][]byte {
			ls[2], ls[3] = ls[3], ls[2]
			return ls
		})},
		{name: "entry removed", index: idx(4), want: "missing", lines: with(func(ls [][]byte) [][]byte {
			return append(ls[:4:4], ls[5:]...)
		})},
		{name: "entry removed and the rest renumbered", index: idx(4), want: "refuses", lines: with(func(ls [][]byte) [][]byte {
			for i := 5; i < 7; i++ {
				e := entry(i)
				e.Index--
				ls[i] = encode(e)
			}
			return append(ls[:4:4], ls[5:]...)
		})},
		{name: "last entry removed", want: "size 7, but the export has 6 entries", lines: with(func(ls [][]byte) [][]byte {
			return append(ls[:6:6], ls[7])
		})},
		{name: "leaf hash altered", index: idx(2), want: "leaf_hash", lines: with(func(ls [][]byte) [][]byte {
			e := entry(2)
			e.LeafHash[0] ^= 0x80
			ls[2] = encode(e)
			return ls
		})},
		{name: "seq altered", index: idx(4), want: "seq", lines: with(func(ls [][]byte) [][]byte {
			e := entry(4)
			e.Seq++
			ls[4] = encode(e)
			return ls
		})},
		{name: "entry signed by another key", index: idx(5), want: "refuses", lines: with(func(ls [][]byte) [][]byte {
			ls[5] = encode(forged())
			return ls
		})},
		{name: "not JSON", index: idx(1), want: "not an export line", lines: with(func(ls [][]byte) [][]byte {
			ls[1] = []byte(`{"index": 1,`)
			return ls
		})},
		{name: "checkpoint root altered", want: "but the entries give root", lines: with(func(ls [][]byte) [][]byte {
			tr := trailer()
			tr.Checkpoint.Root[31] ^= 0x01
			ls[7] = encode(tr)
			return ls
		})},
		{name: "root line of the note altered", want: "signed note", lines: with(func(ls [][]byte) [][]byte {
			// The field still matches the leaves: only the signature
			// catches a note whose body was changed.
			tr := trailer()
			tr.Checkpoint.Note = strings.Replace(tr.Checkpoint.Note, base64.StdEncoding.EncodeToString(tr.Checkpoint.Root), base64.StdEncoding.EncodeToString(make([]byte, 32)), 1)
			ls[7] = encode(tr)
			return ls
		})},
		{name: "checkpoint signature altered", want: "signed note", lines: with(func(ls [][]byte) [][]byte {
			tr := trailer()
			tr.Checkpoint.Note = flipSignature(t, tr.Checkpoint.Note)
			ls[7] = encode(tr)
			return ls
		})},
		{name: "checkpoint origin altered", want: "origin", lines: with(func(ls [][]byte) [][]byte {
			tr := trailer()
			tr.Checkpoint.Origin += "x"
			ls[7] = encode(tr)
			return ls
		})},
		{name: "no checkpoint line", want: "truncated", lines: with(func(ls [][]byte) [][]byte {
			return ls[:7]
		})},
		{name: "a line after the checkpoint", want: "must be last", lines: with(func(ls [][]byte) [][]byte {
			return append(ls, ls[6])
		})},
	}
	for _, tt := range tests {
		t.Run("verify "+tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".jsonl")
			writeFile(t, file, append(bytes.Join(tt.lines, []byte("\n")), '\n'))
			out, errText, code := runFednode(t, "audit", "verify", file, "--json")
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s\n%s", code, errText, out)
			}
			var rep exportReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("--json on failure: %v\n%s", err, out)
			}
			if rep.OK || rep.Bad == nil || !strings.Contains(errText, tt.want) || !strings.Contains(rep.Error, tt.want) {
				t.Fatalf("got %q (report %+v), want an error containing %q", errText, rep, tt.want)
			}
			switch {
			case tt.index == nil && rep.Bad.Index != nil:
				t.Errorf("blamed entry %d, want the checkpoint or the file: %s", *rep.Bad.Index, errText)
			case tt.index != nil && (rep.Bad.Index == nil || *rep.Bad.Index != *tt.index):
				t.Errorf("blamed %s, want entry %d", errText, *tt.index)
			case tt.index != nil && !strings.Contains(errText, "entry "+strconv.FormatInt(*tt.index, 10)+" "):
				t.Errorf("the message %q does not name entry %d", errText, *tt.index)
			}
			t.Log(errText)
		})
	}
}

// flipSignature changes one base64 character inside the note's last
// signature, keeping the base64 valid.
func flipSignature(t *testing.T, noteText string) string {
	t.Helper()
	i := strings.LastIndex(noteText, "\n— ")
	if i < 0 {
		t.Fatalf("no signature line in %q", noteText)
	}
	line := noteText[i+1 : len(noteText)-1]
	sp := strings.LastIndex(line, " ")
	sig := []byte(line[sp+1:])
	k := len(sig) - 10 // inside the Ed25519 signature, clear of the padding
	if sig[k] == 'A' {
		sig[k] = 'B'
	} else {
		sig[k] = 'A'
	}
	return noteText[:i+1] + line[:sp+1] + string(sig) + "\n"
}

// TestOpenNote: the checkpoint signature policy of audit verify, on a note
// cosigned by two authorities.
func TestOpenNote(t *testing.T) {
	key := func() *authority.PrivateKey {
		k, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b, other := key(), key(), key()
	cp := tlog.Checkpoint{Origin: tlog.Origin("0011223344556677"), Size: 3, Root: make([]byte, 32)}
	signed, err := tlog.SignCheckpoint(cp, "aws-prod", a)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := tlog.Cosign(signed, "okta", b)
	if err != nil {
		t.Fatal(err)
	}
	wa := tlog.Witness{Name: "aws-prod", Key: a.Public()}
	wb := tlog.Witness{Name: "okta", Key: b.Public()}
	tests := []struct {
		name    string
		note    string
		known   []tlog.Witness
		signers []string // nil: refused
	}{
		{name: "both known", note: string(cosigned), known: []tlog.Witness{wa, wb}, signers: []string{"aws-prod", "okta"}},
		{name: "one known, the other ignored", note: string(cosigned), known: []tlog.Witness{wa}, signers: []string{"aws-prod"}},
		{name: "another key under a signer's name is unknown", note: string(cosigned), known: []tlog.Witness{wa, {Name: "okta", Key: other.Public()}}, signers: []string{"aws-prod"}},
		{name: "a known signature altered", note: flipSignature(t, string(cosigned)), known: []tlog.Witness{wa, wb}},
		{name: "no known key", note: string(cosigned), known: []tlog.Witness{{Name: "gcp", Key: other.Public()}}},
		{name: "no keys at all", note: string(cosigned)},
		{name: "not a note", note: "hello\n", known: []tlog.Witness{wa}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, signers, err := openNote(tt.note, tt.known)
			if tt.signers == nil {
				if err == nil {
					t.Fatalf("accepted, signed by %v", signers)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range signers {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.signers, ",") || c.Size != cp.Size || c.Origin != cp.Origin {
				t.Errorf("signers %v of %v, want %v of %v", names, c, tt.signers, cp)
			}
		})
	}
}
