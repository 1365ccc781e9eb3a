package authority_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

func TestPrivateKeyRoundTrip(t *testing.T) {
	for _, n := range []byte{seedAWS, seedAzure, 0, 0xff} {
		t.Run(fmt.Sprintf("seed %#x", n), func(t *testing.T) {
			k := fixedKey(t, n)
			b, err := authority.MarshalPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, keyFile(n)) {
				t.Fatalf("MarshalPrivateKey = %x, want the documented {1: alg, 2: seed} = %x", b, keyFile(n))
			}
			k2, err := authority.ParsePrivateKey(b)
			if err != nil {
				t.Fatal(err)
			}
			if k2.Alg() != authority.AlgEd25519 || k2.Public().Alg != authority.AlgEd25519 {
				t.Errorf("alg %v", k2.Alg())
			}
			want := rawKey(n).Public().(ed25519.PublicKey)
			if !bytes.Equal(k2.Public().Key, want) || !bytes.Equal(k.Public().Key, want) {
				t.Errorf("public key %x, want %x", k2.Public().Key, want)
			}
			d := credentialDecl(authority.ID{1}, etlSubject, now, now.Add(time.Hour))
			if mustSign(t, d, k).ID != mustSign(t, d, k2).ID {
				t.Error("the parsed key signs differently")
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	seed := bytes.Repeat([]byte{0x42}, ed25519.SeedSize)
	k, err := authority.GenerateKey(authority.AlgEd25519, bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public().Key, rawKey(0x42).Public().(ed25519.PublicKey)) {
		t.Error("GenerateKey does not use the reader's seed")
	}
	b, err := authority.MarshalPrivateKey(k)
	if err != nil || !bytes.Equal(b, keyFile(0x42)) {
		t.Fatalf("MarshalPrivateKey = %x, %v", b, err)
	}
	if _, err := authority.GenerateKey(authority.AlgEd25519, bytes.NewReader(seed[:3])); err == nil {
		t.Error("GenerateKey from a short reader succeeded")
	}
	if _, err := authority.GenerateKey(7, bytes.NewReader(seed)); err == nil {
		t.Error("GenerateKey of an unknown algorithm succeeded")
	}
}

func TestKeyID(t *testing.T) {
	a, b := fixedKey(t, seedAWS).Public(), fixedKey(t, seedAzure).Public()
	if len(a.KeyID()) != authority.KeyIDSize || bytes.Equal(a.KeyID(), b.KeyID()) {
		t.Fatalf("key ids %x %x", a.KeyID(), b.KeyID())
	}
	// The algorithm is part of the key id.
	c := a
	c.Alg = 7
	if bytes.Equal(a.KeyID(), c.KeyID()) {
		t.Error("key id ignores the algorithm")
	}
}

func TestParseAlg(t *testing.T) {
	tests := []struct {
		name, in string
		want     authority.Alg
		ok       bool
	}{
		{name: "ed25519", in: "ed25519", want: authority.AlgEd25519, ok: true},
		{name: "default", in: "", want: authority.AlgEd25519, ok: true},
		{name: "round trip of String", in: authority.AlgEd25519.String(), want: authority.AlgEd25519, ok: true},
		{name: "unknown", in: "rsa"},
		{name: "case matters", in: "Ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := authority.ParseAlg(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Fatalf("ParseAlg(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

// TestParsePrivateKeyGarbage: errors of a key file never quote its bytes,
// in any of the forms a log might show them.
func TestParsePrivateKeyGarbage(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5a, 0xc3}, 16) // 32 distinctive bytes
	file := func(alg byte, seed []byte) []byte {
		b := []byte{0xa2, 0x01, alg, 0x02, 0x58, byte(len(seed))}
		return append(b, seed...)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "raw seed, no CBOR", in: secret},
		{name: "text", in: []byte("-----BEGIN PRIVATE KEY----- " + string(secret))},
		{name: "seed one byte short", in: file(1, secret[:31])},
		{name: "seed one byte long", in: file(1, append(clone(secret), 0x11))},
		{name: "unsupported algorithm", in: file(7, secret)},
		{name: "algorithm zero", in: file(0, secret)},
		{name: "trailing byte", in: append(file(1, secret), 0x00)},
		{name: "truncated", in: file(1, secret)[:20]},
		{name: "unknown field", in: append([]byte{0xa3, 0x01, 0x01, 0x02, 0x58, 0x20}, append(clone(secret), 0x03, 0x01)...)},
		{name: "keys out of order", in: append(append([]byte{0xa2, 0x02, 0x58, 0x20}, secret...), 0x01, 0x01)},
		{name: "indefinite-length map", in: append(append([]byte{0xbf, 0x01, 0x01, 0x02, 0x58, 0x20}, secret...), 0xff)},
		{name: "seed as an array", in: append([]byte{0xa2, 0x01, 0x01, 0x02, 0x98, 0x20}, bytes.Repeat([]byte{0x18, 0x5a}, 32)...)},
		{name: "empty", in: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := authority.ParsePrivateKey(tt.in)
			if err == nil || k != nil {
				t.Fatalf("ParsePrivateKey accepted %x", tt.in)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "authority: ") {
				t.Errorf("error %q lacks the package prefix", msg)
			}
			for _, leak := range []string{
				string(secret[:8]),
				hex.EncodeToString(secret[:8]),
				strings.ToUpper(hex.EncodeToString(secret[:8])),
				base64.StdEncoding.EncodeToString(secret[:9]),
				strings.Trim(fmt.Sprint(secret[:4]), "[]"),
				fmt.Sprintf("%q", secret[:4]),
			} {
				if strings.Contains(msg, leak) || strings.Contains(msg, strings.Trim(fmt.Sprintf("%q", leak), `"`)) {
					t.Errorf("error %q leaks key bytes (%q)", msg, leak)
				}
			}
		})
	}
}
