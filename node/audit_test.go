package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// The audit tests check the node's proofs and checkpoints with other code
// than the node's: transparency-dev/merkle's verifiers, x/mod's note.Open,
// crypto/sha256 and a naive RFC 9162 tree hash below. That is the interop
// claim: an auditor with any RFC 9162 and C2SP implementation can check them.

// refLeaf is RFC 9162's leaf hash, SHA-256(0x00 || data), written out.
func refLeaf(data []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, data...))
	return h[:]
}

// refRoot is RFC 9162's MTH, recursively, straight from §2.1.1.
func refRoot(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		return refLeaf(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	h := sha256.Sum256(append(append([]byte{1}, refRoot(leaves[:k])...), refRoot(leaves[k:])...))
	return h[:]
}

func toBytes(hs []HexBytes) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

// envelopes reads the replica's declarations in log order.
func envelopes(t *testing.T, n *Node) [][]byte {
	t.Helper()
	var envs [][]byte
	err := n.store.Declarations(0, 0, func(v uint64, env []byte) error {
		if v != uint64(len(envs))+1 {
			return fmt.Errorf("version %d after %d", v, len(envs))
		}
		envs = append(envs, bytes.Clone(env))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func wantOrigin(envs [][]byte) string {
	id := authority.IDOf(envs[0])
	return tlog.Origin(hex.EncodeToString(id[:8]))
}

// openWithXMod opens a checkpoint note with x/mod's note package alone and
// parses the body by hand.
func openWithXMod(t *testing.T, noteText, name string, key authority.PublicKey) (origin string, size uint64, root []byte) {
	t.Helper()
	vkey, err := note.NewEd25519VerifierKey(name, ed25519.PublicKey(key.Key))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := note.Open([]byte(noteText), note.VerifierList(v))
	if err != nil {
		t.Fatalf("x/mod note.Open: %v\n%s", err, noteText)
	}
	if len(nt.Sigs) != 1 || nt.Sigs[0].Name != name {
		t.Fatalf("x/mod note.Open: verified signatures %+v, want one by %q", nt.Sigs, name)
	}
	lines := strings.Split(nt.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("checkpoint body %q: want origin, size, root and a final newline", nt.Text)
	}
	size, err = strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	root, err = base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	return lines[0], size, root
}

// fillLog gives a single node's log a few declarations of two authorities.
func fillLog(t *testing.T, n *Node, h *Home, rules int) {
	t.Helper()
	okta := newOutsider(t, "okta")
	if _, err := n.Submit(context.Background(), okta.gen.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "okta's genesis agreed", agreedAt(okta.id(), n))
	var last *authority.Signed
	for i := 0; i < rules; i++ {
		last = nextRule(t, h, n, okta.id(), fmt.Sprintf("s3://bucket-%d/*", i))
	}
	waitFor(t, waitAgreed, "the rules agreed", agreedAt(last.ID, n))
}

func TestAuditSingleNode(t *testing.T) {
	n, h := startSingle(t, "aws-prod")
	fillLog(t, n, h, 5)
	ctx := context.Background()
	c := NewClient(n.APIAddr(), "")
	envs := envelopes(t, n)
	size := uint64(len(envs))
	if size != n.GraphVersion() || size != 7 {
		t.Fatalf("log has %d declarations at graph version %d, want 7 at both", size, n.GraphVersion())
	}

	t.Run("checkpoint", func(t *testing.T) {
		cp, err := c.AuditCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, storeRoot, err := n.store.LogRoot()
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != n.GraphVersion() || !bytes.Equal(cp.Root, storeRoot) || !bytes.Equal(cp.Root, refRoot(envs)) {
			t.Fatalf("checkpoint size %d root %x; want graph version %d, chainstore's root %x (reference %x)", cp.Size, cp.Root, n.GraphVersion(), storeRoot, refRoot(envs))
		}
		if cp.Origin != wantOrigin(envs) {
			t.Errorf("origin %q, want %q", cp.Origin, wantOrigin(envs))
		}
		got, signers, err := tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: h.Config.Name, Key: h.Root.Public()}})
		if err != nil {
			t.Fatalf("tlog.OpenCheckpoint with the node's authority key: %v", err)
		}
		if got.Origin != cp.Origin || got.Size != cp.Size || !bytes.Equal(got.Root, cp.Root) || len(signers) != 1 || signers[0] != h.Config.Name {
			t.Errorf("note says %v signed by %q; JSON says %s@%d:%x", got, signers, cp.Origin, cp.Size, cp.Root)
		}
		origin, sz, root := openWithXMod(t, cp.Note, h.Config.Name, h.Root.Public())
		if origin != cp.Origin || sz != cp.Size || !bytes.Equal(root, cp.Root) {
			t.Errorf("x/mod reads %s@%d:%x, JSON says %s@%d:%x", origin, sz, root, cp.Origin, cp.Size, cp.Root)
		}
		// Another authority's key does not open it.
		other := newOutsider(t, h.Config.Name)
		if _, _, err := tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: h.Config.Name, Key: other.root.Public()}}); err == nil {
			t.Error("the note opened with another key")
		}
		again, err := n.Checkpoint()
		if err != nil || again.Note != cp.Note {
			t.Errorf("a second checkpoint at the same size differs: %v\n%s\n%s", err, again.Note, cp.Note)
		}
	})

	t.Run("prove", func(t *testing.T) {
		for i, env := range envs {
			id := authority.IDOf(env)
			sizes := []uint64{0, uint64(i) + 1}
			if uint64(i)+1 < size {
				sizes = append(sizes, size)
			}
			for _, sz := range sizes {
				t.Run(fmt.Sprintf("leaf %d size %d", i, sz), func(t *testing.T) {
					p, err := c.AuditProve(ctx, id, sz)
					if err != nil {
						t.Fatal(err)
					}
					treeSize := sz
					if sz == 0 {
						treeSize = size
					}
					if p.ID != id || p.Index != uint64(i) || p.TreeSize != treeSize || !bytes.Equal(p.Envelope, env) {
						t.Fatalf("proof of %s: id %s index %d tree size %d; want leaf %d of %d with its envelope", id.Short(), p.ID.Short(), p.Index, p.TreeSize, i, treeSize)
					}
					leaf := refLeaf(env)
					if !bytes.Equal(p.LeafHash, leaf) {
						t.Errorf("leaf hash %x, want SHA-256(0x00 || envelope) = %x", p.LeafHash, leaf)
					}
					if want := refRoot(envs[:treeSize]); !bytes.Equal(p.Root, want) {
						t.Errorf("root %x, want %x", p.Root, want)
					}
					if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, p.TreeSize, leaf, toBytes(p.Proof), p.Root); err != nil {
						t.Errorf("merkle's VerifyInclusion: %v", err)
					}
				})
			}
		}
	})

	t.Run("consistency", func(t *testing.T) {
		for m := uint64(0); m <= size; m++ {
			for k := m; k <= size; k++ {
				p, err := c.AuditConsistency(ctx, m, k)
				if err != nil {
					t.Fatalf("%d -> %d: %v", m, k, err)
				}
				if p.OldSize != m || p.NewSize != k || !bytes.Equal(p.OldRoot, refRoot(envs[:m])) || !bytes.Equal(p.NewRoot, refRoot(envs[:k])) {
					t.Fatalf("%d -> %d: got %d -> %d, roots %x %x", m, k, p.OldSize, p.NewSize, p.OldRoot, p.NewRoot)
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, k, toBytes(p.Proof), p.OldRoot, p.NewRoot); err != nil {
					t.Errorf("%d -> %d: merkle's VerifyConsistency: %v", m, k, err)
				}
			}
		}
		// new defaults to the current size.
		st, body := rawGet(t, n, "/v1/audit/consistency?old=2")
		var p ConsistencyJSON
		if st != http.StatusOK || json.Unmarshal(body, &p) != nil || p.NewSize != size {
			t.Errorf("consistency?old=2: %d %s, want new_size %d", st, body, size)
		}
	})

	t.Run("export", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, "http://"+n.APIAddr()+"/v1/audit/export", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" {
			t.Fatalf("export: status %d, content type %q", resp.StatusCode, ct)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var lines [][]byte
		for sc.Scan() {
			lines = append(lines, bytes.Clone(sc.Bytes()))
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if len(lines) != len(envs)+1 {
			t.Fatalf("export has %d lines, want %d entries and the checkpoint", len(lines), len(envs))
		}
		for i, env := range envs {
			var e map[string]any
			if err := json.Unmarshal(lines[i], &e); err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			sd, _ := authority.Parse(env)
			owner := sd.Decl.Authority
			if sd.Decl.Kind == authority.KindGenesis {
				owner = sd.ID
			}
			want := map[string]any{
				"index": float64(i), "id": sd.ID.String(), "kind": sd.Decl.Kind.String(), "authority": owner.String(),
				"seq": float64(sd.Decl.Seq), "leaf_hash": hex.EncodeToString(refLeaf(env)), "envelope": base64.StdEncoding.EncodeToString(env),
			}
			if fmt.Sprint(e) != fmt.Sprint(want) {
				t.Errorf("line %d:\n got %v\nwant %v", i+1, e, want)
			}
		}
		var tr struct {
			Checkpoint *CheckpointJSON `json:"checkpoint"`
		}
		dec := json.NewDecoder(bytes.NewReader(lines[len(envs)]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&tr); err != nil || tr.Checkpoint == nil {
			t.Fatalf("last line %s: %v", lines[len(envs)], err)
		}
		cp, err := n.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		if tr.Checkpoint.Size != size || !bytes.Equal(tr.Checkpoint.Root, refRoot(envs)) || tr.Checkpoint.Note != cp.Note || tr.Checkpoint.Origin != cp.Origin {
			t.Errorf("export checkpoint %+v, want the node's %+v", *tr.Checkpoint, cp)
		}
	})

	t.Run("errors", func(t *testing.T) {
		first, last := authority.IDOf(envs[0]), authority.IDOf(envs[len(envs)-1])
		var unknown authority.ID
		if _, err := rand.Read(unknown[:]); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			path string
			want int
		}{
			{name: "prove unknown id", path: "/v1/audit/prove/" + unknown.String(), want: http.StatusNotFound},
			{name: "prove bad id", path: "/v1/audit/prove/not-an-id", want: http.StatusBadRequest},
			{name: "prove size beyond the log", path: "/v1/audit/prove/" + first.String() + "?size=" + strconv.FormatUint(size+1, 10), want: http.StatusBadRequest},
			{name: "prove size not a number", path: "/v1/audit/prove/" + first.String() + "?size=seven", want: http.StatusBadRequest},
			{name: "prove negative size", path: "/v1/audit/prove/" + first.String() + "?size=-1", want: http.StatusBadRequest},
			{name: "prove size zero", path: "/v1/audit/prove/" + first.String() + "?size=0", want: http.StatusBadRequest},
			{name: "prove a leaf the tree does not hold yet", path: "/v1/audit/prove/" + last.String() + "?size=1", want: http.StatusBadRequest},
			{name: "consistency without old", path: "/v1/audit/consistency?new=2", want: http.StatusBadRequest},
			{name: "consistency old above new", path: "/v1/audit/consistency?old=3&new=2", want: http.StatusBadRequest},
			{name: "consistency new beyond the log", path: "/v1/audit/consistency?old=1&new=" + strconv.FormatUint(size+1, 10), want: http.StatusBadRequest},
			{name: "consistency old not a number", path: "/v1/audit/consistency?old=x", want: http.StatusBadRequest},
			{name: "consistency new overflows", path: "/v1/audit/consistency?old=1&new=18446744073709551616", want: http.StatusBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, body := rawGet(t, n, tt.path)
				if st != tt.want {
					t.Fatalf("GET %s: status %d, want %d: %s", tt.path, st, tt.want, body)
				}
				wantJSONError(t, body)
			})
		}
		var ae *APIError
		if _, err := c.AuditProve(ctx, unknown, 0); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			t.Errorf("client prove of an unknown id: %v, want an APIError 404", err)
		}
	})
}

// TestAuditEmptyLog: a node that has joined nothing has no log to sign.
func TestAuditEmptyLog(t *testing.T) {
	h := initHome(t, "loner")
	n := startNode(t, h, Config{API: "127.0.0.1:0"})
	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "checkpoint", path: "/v1/audit/checkpoint", want: http.StatusServiceUnavailable},
		{name: "export", path: "/v1/audit/export", want: http.StatusServiceUnavailable},
		{name: "prove", path: "/v1/audit/prove/" + h.Authority.String(), want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := rawGet(t, n, tt.path)
			if st != tt.want {
				t.Fatalf("GET %s: status %d, want %d: %s", tt.path, st, tt.want, body)
			}
			wantJSONError(t, body)
		})
	}
	if _, err := n.Checkpoint(); !errors.Is(err, ErrEmptyLog) {
		t.Errorf("Checkpoint: %v, want ErrEmptyLog", err)
	}
	// The empty tree is still consistent with itself.
	st, body := rawGet(t, n, "/v1/audit/consistency?old=0")
	var p ConsistencyJSON
	if st != http.StatusOK || json.Unmarshal(body, &p) != nil || !bytes.Equal(p.OldRoot, refRoot(nil)) || len(p.Proof) != 0 {
		t.Errorf("consistency?old=0 of the empty log: %d %s", st, body)
	}
}

// TestAuditThreeNodes: after a burst of declarations at every node, all
// three replicas sign the same checkpoint body, each with its own key.
func TestAuditThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes: not in -short")
	}
	nodes, homes := startTrio(t)
	const perNode = 5
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*perNode)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := homes[(i+1)%len(homes)].Authority
			for j := 0; j < perNode; j++ {
				_, err := SignNext(context.Background(), homes[i], nodes[i], t0, func(d *authority.Declaration) {
					d.Kind = authority.KindRule
					d.Rule = &authority.Rule{Source: src, Subjects: "*", Resources: fmt.Sprintf("db://%d/*", j), Actions: []string{"read"}}
				})
				if err != nil {
					errs <- fmt.Errorf("%s: rule %d: %w", homes[i].Config.Name, j, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := uint64(len(nodes) + len(nodes)*perNode)
	cps := make([]CheckpointJSON, len(nodes))
	waitFor(t, waitAgreed, fmt.Sprintf("all three checkpoints at size %d with one root", want), func() bool {
		for i, n := range nodes {
			cp, err := NewClient(n.APIAddr(), "").AuditCheckpoint(context.Background())
			if err != nil || cp.Size != want {
				return false
			}
			cps[i] = cp
		}
		for _, cp := range cps[1:] {
			if cp.Origin != cps[0].Origin || !bytes.Equal(cp.Root, cps[0].Root) {
				t.Fatalf("split view: %s@%d:%x and %s@%d:%x", cps[0].Origin, cps[0].Size, cps[0].Root, cp.Origin, cp.Size, cp.Root)
			}
		}
		return true
	})
	var body string
	for i, cp := range cps {
		c, signers, err := tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: homes[i].Config.Name, Key: homes[i].Root.Public()}})
		if err != nil || len(signers) != 1 {
			t.Fatalf("node %d's note does not open with its key: %v", i+1, err)
		}
		b := string(c.Marshal())
		if i > 0 && b != body {
			t.Errorf("node %d signed body %q, node 1 %q", i+1, b, body)
		}
		body = b
	}
	if envs := envelopes(t, nodes[0]); cps[0].Origin != wantOrigin(envs) || !bytes.Equal(cps[0].Root, refRoot(envs)) {
		t.Errorf("checkpoint %s:%x, want %s:%x", cps[0].Origin, cps[0].Root, wantOrigin(envs), refRoot(envs))
	}
	// A proof served by one replica verifies against another's root.
	p, err := NewClient(nodes[2].APIAddr(), "").AuditProve(context.Background(), homes[1].Authority, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, p.TreeSize, refLeaf(p.Envelope), toBytes(p.Proof), cps[0].Root); err != nil {
		t.Errorf("node 3's proof against node 1's root: %v", err)
	}
}
