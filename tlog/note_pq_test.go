package tlog_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// algKey is the deterministic key of alg from seed n (GenerateKey reads
// exactly the key-file seed from its reader).
func algKey(t *testing.T, alg authority.Alg, n byte) *authority.PrivateKey {
	t.Helper()
	k, err := authority.GenerateKey(alg, bytes.NewReader(bytes.Repeat([]byte{n}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestNoteAlgorithms: every authority algorithm signs checkpoints that open
// with its witness key, cosign beside the others, and break when altered.
func TestNoteAlgorithms(t *testing.T) {
	tests := []struct {
		name string
		alg  authority.Alg
		// typ is the documented type identifier (tlog.NoteType).
		typ []byte
	}{
		{"ed25519", authority.AlgEd25519, []byte{0x01}},
		{"mldsa65", authority.AlgMLDSA65, append([]byte{0xff}, "fednode/mldsa65\x00"...)},
		{"hybrid", authority.AlgHybrid, append([]byte{0xff}, "fednode/mldsa65-ed25519\x00"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := algKey(t, tt.alg, seedAWS)
			w := tlog.Witness{Name: "aws", Key: k.Public()}
			if got := tlog.NoteType(tt.alg); !bytes.Equal(got, tt.typ) {
				t.Fatalf("NoteType = %q, want %q", got, tt.typ)
			}
			n, err := tlog.SignCheckpoint(golden, "aws", k)
			if err != nil {
				t.Fatal(err)
			}
			c, signers, err := tlog.OpenCheckpoint(n, []tlog.Witness{w})
			if err != nil || c.Size != golden.Size || len(signers) != 1 || signers[0] != "aws" {
				t.Fatalf("OpenCheckpoint = %v, %v, %v", c, signers, err)
			}
			// The key ID is the spec's hash over name, newline, type and key,
			// and the verifier key carries type || key.
			vkey, err := tlog.VerifierKey(w)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(vkey, "+", 3)
			raw, _ := base64.StdEncoding.DecodeString(parts[2])
			if len(parts) != 3 || parts[0] != "aws" || !bytes.Equal(raw, append(tt.typ, k.Public().Key...)) {
				t.Fatalf("verifier key %q", vkey)
			}
			v, err := tlog.Verifier(w)
			if err != nil || fmt.Sprintf("%08x", v.KeyHash()) != parts[1] {
				t.Fatalf("Verifier hash %08x, key %s: %v", v.KeyHash(), parts[1], err)
			}
			sig := noteSig(t, n)
			if binary.BigEndian.Uint32(sig) != v.KeyHash() || !v.Verify([]byte(goldenBody), sig[4:]) {
				t.Fatal("the signature line does not verify with the verifier")
			}
			// Cosigned by an Ed25519 witness, both verify.
			co, err := tlog.Cosign(n, "azure", fixedKey(t, seedAzure))
			if err != nil {
				t.Fatal(err)
			}
			if _, signers, err := tlog.OpenCheckpoint(co, []tlog.Witness{w, witness(t, "azure", seedAzure)}); err != nil || len(signers) != 2 {
				t.Fatalf("cosigned: %v, %v", signers, err)
			}
			// An altered body breaks the signature.
			bad := bytes.Replace(n, []byte("\n20852163\n"), []byte("\n20852164\n"), 1)
			if bytes.Equal(bad, n) {
				t.Fatal("test did not alter the size line")
			}
			if _, _, err := tlog.OpenCheckpoint(bad, []tlog.Witness{w}); !errors.Is(err, tlog.ErrBadSignature) {
				t.Fatalf("altered: %v, want ErrBadSignature", err)
			}
			// The same key bytes under another type are another key ID, so
			// an Ed25519 witness never answers for an ML-DSA signature line.
			if tt.alg != authority.AlgEd25519 {
				ed := tlog.Witness{Name: "aws", Key: fixedKey(t, seedAWS).Public()}
				if _, _, err := tlog.OpenCheckpoint(n, []tlog.Witness{ed}); !errors.Is(err, tlog.ErrUnverified) {
					t.Fatalf("opened with an Ed25519 witness: %v", err)
				}
			}
		})
	}
}

// noteSig is the decoded signature (key hash included) of n's first line.
func noteSig(t *testing.T, n []byte) []byte {
	t.Helper()
	_, err := note.Open(n, note.VerifierList())
	var u *note.UnverifiedNoteError
	if !errors.As(err, &u) || len(u.Note.UnverifiedSigs) != 1 {
		t.Fatalf("note.Open: %v", err)
	}
	b, err := base64.StdEncoding.DecodeString(u.Note.UnverifiedSigs[0].Base64)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkCheckpointAlg is signing and opening a checkpoint note with one
// signature, per algorithm, and the note's size.
func BenchmarkCheckpointAlg(b *testing.B) {
	for _, alg := range authority.Algs {
		k, err := authority.GenerateKey(alg, bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
		if err != nil {
			b.Fatal(err)
		}
		w := []tlog.Witness{{Name: "aws", Key: k.Public()}}
		n, err := tlog.SignCheckpoint(golden, "aws", k)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(alg.String()+"/sign", func(b *testing.B) {
			for b.Loop() {
				if _, err := tlog.SignCheckpoint(golden, "aws", k); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(n)), "note-bytes")
		})
		b.Run(alg.String()+"/open", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := tlog.OpenCheckpoint(n, w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
