package tlog_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// goldenNote is golden signed by fixture key 1 as "aws". Ed25519 is
// deterministic, so the bytes are fixed; TestSignMatchesXMod derives them
// independently with x/mod's own signer.
const goldenNote = goldenBody + "\n— aws inOXKQ6J0af0xaL/fgkKvou8slWGhKN0CBiFD+jds3ZfH87eIy7avAIywuuuTCPHvHwgdPTj9qBKTZ82mR3hfvc6aQE=\n"

const goldenVerifierKey = "aws+8a739729+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c"

func TestSignCheckpointGolden(t *testing.T) {
	got, err := tlog.SignCheckpoint(golden, "aws", fixedKey(t, seedAWS))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != goldenNote {
		t.Errorf("SignCheckpoint =\n%s\nwant\n%s", got, goldenNote)
	}
	vkey, err := tlog.VerifierKey(witness(t, "aws", seedAWS))
	if err != nil {
		t.Fatal(err)
	}
	if vkey != goldenVerifierKey {
		t.Errorf("VerifierKey = %s, want %s", vkey, goldenVerifierKey)
	}
}

// TestSignMatchesXMod signs with x/mod's own signer, made from the same seed
// in x/mod's private-key encoding, and expects the very same note: key name,
// key ID and signature are the note spec's, not ours.
func TestSignMatchesXMod(t *testing.T) {
	vkey, err := tlog.VerifierKey(witness(t, "aws", seedAWS))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(vkey, "+")
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%s+%s", parts[0], parts[1], base64.StdEncoding.EncodeToString(append([]byte{1}, seedBytes(seedAWS)...)))
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	want, err := note.Sign(&note.Note{Text: goldenBody}, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tlog.SignCheckpoint(golden, "aws", fixedKey(t, seedAWS))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("SignCheckpoint =\n%s\nx/mod signs\n%s", got, want)
	}
	ours, err := tlog.Signer("aws", fixedKey(t, seedAWS))
	if err != nil {
		t.Fatal(err)
	}
	if ours.Name() != s.Name() || ours.KeyHash() != s.KeyHash() {
		t.Errorf("Signer = %s/%08x, x/mod's = %s/%08x", ours.Name(), ours.KeyHash(), s.Name(), s.KeyHash())
	}
}

// TestXModOpensSignedCheckpoint is the interop check: x/mod's note.Open,
// with a verifier built by x/mod from the public key alone, reads what
// SignCheckpoint writes.
func TestXModOpensSignedCheckpoint(t *testing.T) {
	k := fixedKey(t, seedAzure)
	msg, err := tlog.SignCheckpoint(golden, "azure", k)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := note.NewEd25519VerifierKey("azure", k.Public().Key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if n.Text != goldenBody || len(n.Sigs) != 1 || n.Sigs[0].Name != "azure" {
		t.Errorf("note.Open = %+v", n)
	}
}

func TestCosignAndOpen(t *testing.T) {
	aws, azure, gcp := fixedKey(t, seedAWS), fixedKey(t, seedAzure), fixedKey(t, seedGCP)
	known := []tlog.Witness{witness(t, "aws", seedAWS), witness(t, "azure", seedAzure), witness(t, "gcp", seedGCP)}
	one, err := tlog.SignCheckpoint(golden, "aws", aws)
	if err != nil {
		t.Fatal(err)
	}
	two, err := tlog.Cosign(one, "azure", azure)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(two, one) {
		t.Errorf("Cosign changed the existing text or signature:\n%s", two)
	}
	three, err := tlog.Cosign(two, "gcp", gcp)
	if err != nil {
		t.Fatal(err)
	}
	again, err := tlog.Cosign(three, "azure", azure)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(again), "\n— "); n != 3 {
		t.Errorf("cosigning twice with one key gives %d signatures, want 3:\n%s", n, again)
	}
	tests := []struct {
		name  string
		note  []byte
		known []tlog.Witness
		want  []string
	}{
		{name: "signed", note: one, known: known, want: []string{"aws"}},
		{name: "cosigned", note: two, known: known, want: []string{"aws", "azure"}},
		{name: "cosigned twice", note: three, known: known, want: []string{"aws", "azure", "gcp"}},
		{name: "only the witness known", note: two, known: known[1:2], want: []string{"azure"}},
		{name: "known twice", note: two, known: append(slices.Clone(known), known...), want: []string{"aws", "azure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, names, err := tlog.OpenCheckpoint(tt.note, tt.known)
			if err != nil {
				t.Fatal(err)
			}
			if c.Origin != golden.Origin || c.Size != golden.Size || !bytes.Equal(c.Root, golden.Root) {
				t.Errorf("checkpoint = %v, want %v", c, golden)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("signers = %q, want %q", names, tt.want)
			}
		})
	}
}

func TestOpenCheckpointIgnoresUnknownSigners(t *testing.T) {
	stranger := fixedKey(t, seedStranger)
	known := []tlog.Witness{witness(t, "aws", seedAWS)}
	signed, err := tlog.SignCheckpoint(golden, "aws", fixedKey(t, seedAWS))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		signerName string
	}{
		{name: "unknown name", signerName: "stranger"},
		// Same name as a known signer, another key: the key ID differs, so
		// the note spec says to ignore it rather than fail.
		{name: "known name, unknown key", signerName: "aws"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cosigned, err := tlog.Cosign(signed, tt.signerName, stranger)
			if err != nil {
				t.Fatal(err)
			}
			_, names, err := tlog.OpenCheckpoint(cosigned, known)
			if err != nil {
				t.Fatalf("OpenCheckpoint: %v", err)
			}
			if !slices.Equal(names, []string{"aws"}) {
				t.Errorf("signers = %q, want [aws]", names)
			}
			only, err := tlog.SignCheckpoint(golden, tt.signerName, stranger)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := tlog.OpenCheckpoint(only, known); !errors.Is(err, tlog.ErrUnverified) {
				t.Errorf("a note signed by a stranger only: %v, want ErrUnverified", err)
			}
		})
	}
}

// TestAlteredBodyBreaksEverySignature changes the body of a note with three
// signatures in each way that still parses as a checkpoint, and expects the
// note refused whichever signer the reader knows.
func TestAlteredBodyBreaksEverySignature(t *testing.T) {
	msg, err := tlog.SignCheckpoint(golden, "aws", fixedKey(t, seedAWS))
	if err != nil {
		t.Fatal(err)
	}
	if msg, err = tlog.Cosign(msg, "azure", fixedKey(t, seedAzure)); err != nil {
		t.Fatal(err)
	}
	if msg, err = tlog.Cosign(msg, "gcp", fixedKey(t, seedGCP)); err != nil {
		t.Fatal(err)
	}
	sigs := string(msg[len(goldenBody):])
	otherRoot := goldenRoot()
	otherRoot[31] ^= 1
	bodies := []struct {
		name string
		c    tlog.Checkpoint
	}{
		{name: "other size", c: tlog.Checkpoint{Origin: golden.Origin, Size: golden.Size + 1, Root: golden.Root}},
		{name: "other root", c: tlog.Checkpoint{Origin: golden.Origin, Size: golden.Size, Root: otherRoot}},
		{name: "other origin", c: tlog.Checkpoint{Origin: "fednode/other", Size: golden.Size, Root: golden.Root}},
	}
	for _, b := range bodies {
		altered := append(b.c.Marshal(), sigs...)
		for _, w := range []tlog.Witness{witness(t, "aws", seedAWS), witness(t, "azure", seedAzure), witness(t, "gcp", seedGCP)} {
			t.Run(b.name+"/"+w.Name, func(t *testing.T) {
				if _, _, err := tlog.OpenCheckpoint(altered, []tlog.Witness{w}); !errors.Is(err, tlog.ErrBadSignature) {
					t.Errorf("OpenCheckpoint = %v, want ErrBadSignature", err)
				}
			})
		}
	}
}

func TestOpenCheckpointRefuses(t *testing.T) {
	known := []tlog.Witness{witness(t, "aws", seedAWS)}
	signedBadBody, err := note.Sign(&note.Note{Text: goldenBody + "extension\n"}, mustSigner(t, "aws", seedAWS))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		note  string
		known []tlog.Witness
		want  error
	}{
		{name: "no signature block", note: goldenBody, known: known, want: tlog.ErrMalformed},
		{name: "no known signers", note: goldenNote, known: nil, want: tlog.ErrUnverified},
		{name: "signature not base64", note: goldenBody + "\n— aws !!!\n", known: known, want: tlog.ErrMalformed},
		{name: "signature line without dash", note: goldenBody + "\naws inOXKQ6J0af0xaL/fgkKvou8slWGhKN0CBiFD+jds3ZfH87eIy7avAIywuuuTCPHvHwgdPTj9qBKTZ82mR3hfvc6aQE=\n", known: known, want: tlog.ErrMalformed},
		{name: "control character", note: strings.Replace(goldenNote, "example", "exa\x01mple", 1), known: known, want: tlog.ErrMalformed},
		{name: "signed body with an extension line", note: string(signedBadBody), known: known, want: tlog.ErrMalformed},
		{name: "signature altered", note: strings.Replace(goldenNote, "jds3", "jds4", 1), known: known, want: tlog.ErrBadSignature},
		{name: "too large", note: goldenNote + strings.Repeat("— x AAAAAAAA\n", tlog.MaxNoteSize/13), known: known, want: tlog.ErrMalformed},
		{name: "too many signatures", note: goldenNote + strings.Repeat("— x AAAAAAAA\n", tlog.MaxSignatures), known: known, want: tlog.ErrMalformed},
		{name: "witness with a short key", note: goldenNote, known: []tlog.Witness{{Name: "aws", Key: authority.PublicKey{Alg: authority.AlgEd25519, Key: make([]byte, 31)}}}, want: tlog.ErrBadKey},
		{name: "witness of another algorithm", note: goldenNote, known: []tlog.Witness{{Name: "aws", Key: authority.PublicKey{Alg: 7, Key: known[0].Key.Key}}}, want: tlog.ErrBadKey},
		{name: "witness without a name", note: goldenNote, known: []tlog.Witness{{Key: known[0].Key}}, want: tlog.ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := tlog.OpenCheckpoint([]byte(tt.note), tt.known); !errors.Is(err, tt.want) {
				t.Errorf("OpenCheckpoint = %v, want %v", err, tt.want)
			}
		})
	}
}

func mustSigner(t *testing.T, name string, seed byte) note.Signer {
	t.Helper()
	s, err := tlog.Signer(name, fixedKey(t, seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignRefuses(t *testing.T) {
	k := fixedKey(t, seedAWS)
	tests := []struct {
		name     string
		c        tlog.Checkpoint
		signer   string
		key      *authority.PrivateKey
		want     error
		isCosign bool
	}{
		{name: "short root", c: tlog.Checkpoint{Origin: golden.Origin, Size: 1, Root: goldenRoot()[:31]}, signer: "aws", key: k, want: tlog.ErrMalformed},
		{name: "origin with a newline", c: tlog.Checkpoint{Origin: "fednode/a\n5", Size: 1, Root: goldenRoot()}, signer: "aws", key: k, want: tlog.ErrMalformed},
		{name: "empty origin", c: tlog.Checkpoint{Size: 1, Root: goldenRoot()}, signer: "aws", key: k, want: tlog.ErrMalformed},
		{name: "empty signer name", c: golden, signer: "", key: k, want: tlog.ErrBadKey},
		{name: "signer name too long", c: golden, signer: strings.Repeat("n", tlog.MaxKeyNameLen+1), key: k, want: tlog.ErrBadKey},
		{name: "no key", c: golden, signer: "aws", key: nil, want: tlog.ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tlog.SignCheckpoint(tt.c, tt.signer, tt.key); !errors.Is(err, tt.want) {
				t.Errorf("SignCheckpoint = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := tlog.Cosign([]byte(goldenBody+"extension\n\n— aws AAAAAAAA\n"), "azure", fixedKey(t, seedAzure)); !errors.Is(err, tlog.ErrMalformed) {
		t.Errorf("Cosign of a note whose body is no checkpoint = %v, want ErrMalformed", err)
	}
	if _, err := tlog.Cosign([]byte(goldenBody), "azure", fixedKey(t, seedAzure)); !errors.Is(err, tlog.ErrMalformed) {
		t.Errorf("Cosign of an unsigned body = %v, want ErrMalformed", err)
	}
	full := goldenNote
	for i := range tlog.MaxSignatures - 1 {
		full += fmt.Sprintf("— x%d AAAAAAAA\n", i) // distinct: note.Open drops repeated lines
	}
	if _, err := tlog.Cosign([]byte(full), "azure", fixedKey(t, seedAzure)); !errors.Is(err, tlog.ErrMalformed) {
		t.Errorf("Cosign of a full note = %v, want ErrMalformed", err)
	}
}

// TestAuthorityNamesAsKeyNames signs under authority names that are not note
// key names as they are, and checks that the escaped name opens, is what
// x/mod sees, and still maps back to the authority's name.
func TestAuthorityNamesAsKeyNames(t *testing.T) {
	tests := []struct {
		name, authority, keyName string
	}{
		{name: "plain", authority: "aws-prod", keyName: "aws-prod"},
		{name: "plus", authority: "a+b", keyName: "a%2Bb"},
		{name: "percent", authority: "100%", keyName: "100%25"},
		{name: "escape look-alike stays distinct", authority: "a%2Bb", keyName: "a%252Bb"},
		{name: "no-break space", authority: "a\u00a0b", keyName: "a%C2%A0b"},
		{name: "control character", authority: "a\x7fb", keyName: "a%7Fb"},
		{name: "unicode kept", authority: "défense", keyName: "défense"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tlog.KeyName(tt.authority); got != tt.keyName {
				t.Fatalf("KeyName(%q) = %q, want %q", tt.authority, got, tt.keyName)
			}
			msg, err := tlog.SignCheckpoint(golden, tt.authority, fixedKey(t, seedGCP))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(msg), "\n— "+tt.keyName+" ") {
				t.Errorf("signature line does not carry key name %q:\n%s", tt.keyName, msg)
			}
			_, names, err := tlog.OpenCheckpoint(msg, []tlog.Witness{witness(t, tt.authority, seedGCP)})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, []string{tt.authority}) {
				t.Errorf("signers = %q, want [%q]", names, tt.authority)
			}
		})
	}
}

func TestSplitViewEvidence(t *testing.T) {
	aws, azure := fixedKey(t, seedAWS), fixedKey(t, seedAzure)
	known := []tlog.Witness{witness(t, "aws", seedAWS), witness(t, "azure", seedAzure)}
	forked := tlog.Checkpoint{Origin: golden.Origin, Size: golden.Size, Root: bytes.Repeat([]byte{9}, tlog.HashSize)}
	sign := func(c tlog.Checkpoint, names ...string) []byte {
		t.Helper()
		var msg []byte
		for i, n := range names {
			k := map[string]*authority.PrivateKey{"aws": aws, "azure": azure}[n]
			var err error
			if i == 0 {
				msg, err = tlog.SignCheckpoint(c, n, k)
			} else {
				msg, err = tlog.Cosign(msg, n, k)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		return msg
	}
	tests := []struct {
		name    string
		a, b    []byte
		want    error
		both    []string
		signers [2][]string
	}{
		{name: "one signer equivocates", a: sign(golden, "aws", "azure"), b: sign(forked, "aws"), both: []string{"aws"}, signers: [2][]string{{"aws", "azure"}, {"aws"}}},
		{name: "replicas diverge, nobody signs twice", a: sign(golden, "aws"), b: sign(forked, "azure"), signers: [2][]string{{"aws"}, {"azure"}}},
		{name: "same root", a: sign(golden, "aws"), b: sign(golden, "azure"), want: tlog.ErrNotSplitView},
		{name: "other size", a: sign(golden, "aws"), b: sign(tlog.Checkpoint{Origin: golden.Origin, Size: 1, Root: forked.Root}, "aws"), want: tlog.ErrNotSplitView},
		{name: "second note unsigned by anyone known", a: sign(golden, "aws"), b: []byte(goldenBody), want: tlog.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := tlog.SplitViewEvidence{A: tt.a, B: tt.b}.Verify(known)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if !slices.Equal(q.Both, tt.both) || !slices.Equal(q.SignersA, tt.signers[0]) || !slices.Equal(q.SignersB, tt.signers[1]) {
				t.Errorf("Verify = both %q, signers %q and %q; want %q, %q", q.Both, q.SignersA, q.SignersB, tt.both, tt.signers)
			}
			if !tlog.SplitView(q.A, q.B) {
				t.Errorf("evidence checkpoints %v and %v are no split view", q.A, q.B)
			}
		})
	}
}

// TestSignNoteTextRefusesNonNotes covers the authority method tlog signs
// with: it signs note text only, so it can never sign a COSE Sig_structure
// (which starts with 0x84) for whoever picks the bytes.
func TestSignNoteTextRefusesNonNotes(t *testing.T) {
	k := fixedKey(t, seedAWS)
	tests := []struct {
		name string
		text string
		ok   bool
	}{
		{name: "checkpoint body", text: goldenBody, ok: true},
		{name: "empty", text: ""},
		{name: "no final newline", text: "fednode/c\n1"},
		{name: "invalid UTF-8", text: "fednode/\xff\n"},
		{name: "control character", text: "fednode/\x00\n"},
		{name: "carriage return", text: "fednode/c\r\n"},
		{name: "COSE Sig_structure", text: "\x84jSignature1C\xa1\x01'@X\x01\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := k.SignNoteText([]byte(tt.text))
			if !tt.ok {
				if err == nil {
					t.Errorf("SignNoteText(%q) signed", tt.text)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !ed25519.Verify(ed25519.PublicKey(k.Public().Key), []byte(tt.text), sig) {
				t.Errorf("signature does not verify")
			}
		})
	}
}
