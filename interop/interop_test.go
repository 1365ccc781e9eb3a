package interop_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

type entry struct {
	Index    uint64 `json:"index"`
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	LeafHash string `json:"leaf_hash"`
	Envelope []byte `json:"envelope"`
}

type checkpoint struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"`
	Note   string `json:"note"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readExport(t *testing.T) ([]entry, checkpoint) {
	t.Helper()
	f, err := os.Open("testdata/export.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entries []entry
	var cp checkpoint
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Contains(line, []byte(`"checkpoint"`)) {
			var tr struct {
				Checkpoint checkpoint `json:"checkpoint"`
			}
			if err := json.Unmarshal(line, &tr); err != nil {
				t.Fatal(err)
			}
			cp = tr.Checkpoint
			continue
		}
		var e entry
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	return entries, cp
}

// TestExportRecomputes: every leaf hash is RFC 9162's hash of the envelope,
// every ID is SHA-256 of it, and the leaves give the checkpoint's root.
func TestExportRecomputes(t *testing.T) {
	entries, cp := readExport(t)
	if uint64(len(entries)) != cp.Size {
		t.Fatalf("%d entries, checkpoint size %d", len(entries), cp.Size)
	}
	h := rfc6962.DefaultHasher
	rf := compact.RangeFactory{Hash: h.HashChildren}
	r := rf.NewEmptyRange(0)
	for i, e := range entries {
		if e.Index != uint64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		leaf := h.HashLeaf(e.Envelope)
		if !bytes.Equal(leaf, unhex(t, e.LeafHash)) {
			t.Fatalf("entry %d: leaf hash %s, RFC 9162 says %x", i, e.LeafHash, leaf)
		}
		if err := r.Append(leaf, nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, unhex(t, cp.Root)) {
		t.Fatalf("recomputed root %x, checkpoint says %s", root, cp.Root)
	}
}

// TestInclusionProofs verifies `fednode audit prove` output with merkle's
// own verifier.
func TestInclusionProofs(t *testing.T) {
	b, err := os.ReadFile("testdata/proofs.json")
	if err != nil {
		t.Fatal(err)
	}
	var proofs []struct {
		Index    uint64   `json:"index"`
		TreeSize uint64   `json:"tree_size"`
		LeafHash string   `json:"leaf_hash"`
		Proof    []string `json:"proof"`
		Root     string   `json:"root"`
		Envelope []byte   `json:"envelope"`
	}
	if err := json.Unmarshal(b, &proofs); err != nil {
		t.Fatal(err)
	}
	if len(proofs) == 0 {
		t.Fatal("no proofs")
	}
	for _, p := range proofs {
		var hashes [][]byte
		for _, s := range p.Proof {
			hashes = append(hashes, unhex(t, s))
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(p.Envelope)
		if !bytes.Equal(leaf, unhex(t, p.LeafHash)) {
			t.Fatalf("leaf %d: hash mismatch", p.Index)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, p.TreeSize, leaf, hashes, unhex(t, p.Root)); err != nil {
			t.Fatalf("leaf %d of %d: %v", p.Index, p.TreeSize, err)
		}
		if len(hashes) > 0 {
			hashes[0] = bytes.Repeat([]byte{0}, 32)
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, p.TreeSize, leaf, hashes, unhex(t, p.Root)); err == nil {
				t.Fatalf("leaf %d: a corrupted proof verified", p.Index)
			}
		}
	}
}

// TestConsistencyProof verifies `fednode audit consistency` output.
func TestConsistencyProof(t *testing.T) {
	b, err := os.ReadFile("testdata/consistency.json")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		OldSize uint64   `json:"old_size"`
		NewSize uint64   `json:"new_size"`
		OldRoot string   `json:"old_root"`
		NewRoot string   `json:"new_root"`
		Proof   []string `json:"proof"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	for _, s := range c.Proof {
		hashes = append(hashes, unhex(t, s))
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c.OldSize, c.NewSize, hashes, unhex(t, c.OldRoot), unhex(t, c.NewRoot)); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointIsASignedNote: the checkpoint is a C2SP signed note that
// x/mod's note package opens with the signer's key, taken from its genesis
// in the export (decoded here with plain CBOR, not fednode's code).
func TestCheckpointIsASignedNote(t *testing.T) {
	entries, cp := readExport(t)
	lines := strings.Split(cp.Note, "\n")
	if lines[0] != cp.Origin || lines[1] != strconv.FormatUint(cp.Size, 10) {
		t.Fatalf("note body %q does not start with origin and size", cp.Note)
	}
	if root, err := base64.StdEncoding.DecodeString(lines[2]); err != nil || !bytes.Equal(root, unhex(t, cp.Root)) {
		t.Fatalf("note root line %q is not the checkpoint root", lines[2])
	}
	var verifiers []note.Verifier
	for _, e := range entries {
		if e.Kind != "genesis" {
			continue
		}
		name, pub := genesisKey(t, e.Envelope)
		vkey, err := note.NewEd25519VerifierKey(name, pub)
		if err != nil {
			t.Fatal(err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		verifiers = append(verifiers, v)
	}
	n, err := note.Open([]byte(cp.Note), note.VerifierList(verifiers...))
	if err != nil {
		t.Fatalf("x/mod note.Open: %v", err)
	}
	if len(n.Sigs) == 0 {
		t.Fatal("no signature verified")
	}
	t.Logf("checkpoint signed by %s", n.Sigs[0].Name)
}

// genesisKey digs the authority name and Ed25519 root key out of a genesis
// envelope: COSE_Sign1 (tag 18) whose payload is {16: {1: name, 3: [{1: alg, 2: key}]}}.
func genesisKey(t *testing.T, env []byte) (string, []byte) {
	t.Helper()
	var tag cbor.Tag
	if err := cbor.Unmarshal(env, &tag); err != nil || tag.Number != 18 {
		t.Fatalf("not a COSE_Sign1: %v", err)
	}
	arr, ok := tag.Content.([]any)
	if !ok || len(arr) != 4 {
		t.Fatal("COSE_Sign1 is not a 4-array")
	}
	payload, _ := arr[2].([]byte)
	var decl map[uint64]any
	if err := cbor.Unmarshal(payload, &decl); err != nil {
		t.Fatal(err)
	}
	gen, ok := decl[16].(map[any]any)
	if !ok {
		t.Fatal("no genesis body")
	}
	name, _ := gen[uint64(1)].(string)
	keys, _ := gen[uint64(3)].([]any)
	if name == "" || len(keys) == 0 {
		t.Fatal("genesis without name or keys")
	}
	k, _ := keys[0].(map[any]any)
	pub, _ := k[uint64(2)].([]byte)
	if len(pub) != 32 {
		t.Fatal(fmt.Sprintf("root key is %d bytes", len(pub)))
	}
	return name, pub
}
