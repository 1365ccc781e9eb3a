package tlog_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// Key seeds of the fixture signers.
const (
	seedAWS      byte = 1
	seedAzure    byte = 2
	seedGCP      byte = 3
	seedStranger byte = 9
)

// fataler is what the helpers need of *testing.T, *testing.B and *testing.F.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// seedBytes is the 32-byte Ed25519 seed of fixture key n.
func seedBytes(n byte) []byte { return bytes.Repeat([]byte{n}, ed25519.SeedSize) }

// fixedKey is the deterministic authority key of seed n, built from the
// documented key-file layout {1: alg, 2: seed} (as in authority's tests).
func fixedKey(t fataler, n byte) *authority.PrivateKey {
	t.Helper()
	b := append([]byte{0xa2, 0x01, byte(authority.AlgEd25519), 0x02, 0x58, ed25519.SeedSize}, seedBytes(n)...)
	k, err := authority.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("fixed key %d: %v", n, err)
	}
	return k
}

func witness(t fataler, name string, n byte) tlog.Witness {
	return tlog.Witness{Name: name, Key: fixedKey(t, n).Public()}
}

// leaf is deterministic stand-in leaf data i, of size bytes (at least 8).
func leaf(i uint64, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, i)
	for j := 8; j < size; j++ {
		b[j] = byte(i) ^ byte(j)
	}
	return b
}

func leaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = leaf(uint64(i), 40)
	}
	return out
}

// mth is the Merkle Tree Hash of RFC 9162 §2.1.1, written naively from the
// RFC with crypto/sha256 alone, as the model the package is checked against.
func mth(d [][]byte) []byte {
	switch n := len(d); n {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		h := sha256.Sum256(append([]byte{0x00}, d[0]...))
		return h[:]
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		h := sha256.New()
		h.Write([]byte{0x01})
		h.Write(mth(d[:k]))
		h.Write(mth(d[k:]))
		return h.Sum(nil)
	}
}

// tree builds a MemStore over ds and returns it with the appender's root
// at every size 0..len(ds).
func tree(t fataler, ds [][]byte) (*tlog.MemStore, [][]byte) {
	t.Helper()
	ms := tlog.NewMemStore()
	a, err := tlog.NewAppender(0, nil)
	if err != nil {
		t.Fatalf("NewAppender: %v", err)
	}
	roots := make([][]byte, 0, len(ds)+1)
	root, err := a.Root()
	if err != nil {
		t.Fatalf("Root: %v", err)
	}
	roots = append(roots, root)
	for i, d := range ds {
		if err := a.Append(d, ms.PutNode); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		root, err := a.Root()
		if err != nil {
			t.Fatalf("Root at %d: %v", i+1, err)
		}
		roots = append(roots, root)
	}
	return ms, roots
}
