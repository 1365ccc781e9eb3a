package tlog_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/fednode/fednode/tlog"
)

// FuzzParseCheckpoint: ParseCheckpoint never panics, and whatever it
// accepts is the one text of its checkpoint (Marshal gives the input back).
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte(goldenBody))
	f.Add([]byte("fednode/c\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Add([]byte("fednode/c\n01\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"))
	f.Add([]byte("fednode/c\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\next\n"))
	f.Add([]byte("fednode/c\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh\r8=\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := tlog.ParseCheckpoint(body)
		if err != nil {
			return
		}
		if len(c.Root) != tlog.HashSize {
			t.Fatalf("accepted a %d-byte root", len(c.Root))
		}
		if again := c.Marshal(); !bytes.Equal(again, body) {
			t.Fatalf("accepted %q, which marshals back as %q", body, again)
		}
	})
}

// FuzzOpenCheckpoint: OpenCheckpoint never panics on any note, and when it
// accepts one, the body is the canonical text of the checkpoint it returns
// and every name it reports is a known signer.
func FuzzOpenCheckpoint(f *testing.F) {
	known := []tlog.Witness{witness(f, "aws", seedAWS), witness(f, "azure", seedAzure)}
	one, err := tlog.SignCheckpoint(golden, "aws", fixedKey(f, seedAWS))
	if err != nil {
		f.Fatal(err)
	}
	two, err := tlog.Cosign(one, "azure", fixedKey(f, seedAzure))
	if err != nil {
		f.Fatal(err)
	}
	three, err := tlog.Cosign(two, "stranger", fixedKey(f, seedStranger))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(one)
	f.Add(two)
	f.Add(three)
	f.Add([]byte(goldenBody))
	f.Add([]byte(goldenBody + "\n— aws AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, names, err := tlog.OpenCheckpoint(msg, known)
		if err != nil {
			return
		}
		if len(names) == 0 {
			t.Fatalf("accepted a note with no verified signer")
		}
		for _, n := range names {
			if !slices.ContainsFunc(known, func(w tlog.Witness) bool { return w.Name == n }) {
				t.Fatalf("reported signer %q is not known", n)
			}
		}
		if body := c.Marshal(); !bytes.HasPrefix(msg, append(body, '\n')) {
			t.Fatalf("accepted note %q whose body is not %q", msg, body)
		}
	})
}
