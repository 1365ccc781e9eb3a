package edwards25519

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"testing"

	"github.com/c2sp/wycheproof"
)

// stdVerify is the reference: crypto/ed25519.Verify, with a key of the
// wrong length refused instead of panicking.
func stdVerify(pub, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(pub, msg, sig)
}

// oursVerify is NewPublicKey then Verify (twice, so that reusing a decoded
// key is checked too); a key that does not decode verifies nothing.
func oursVerify(t testing.TB, pub, msg, sig []byte) bool {
	k, err := NewPublicKey(pub)
	if err != nil {
		return false
	}
	a, b := k.Verify(msg, sig), k.Verify(msg, sig)
	if a != b {
		t.Fatalf("Verify answered %v then %v", a, b)
	}
	if got := k.Bytes(); string(got) != string(pub) {
		t.Fatalf("Bytes = %x, want %x", got, pub)
	}
	return a
}

// TestVerifyWycheproof: every case of Wycheproof's ed25519_test.json gets
// the standard library's answer, and the expected one.
func TestVerifyWycheproof(t *testing.T) {
	b, err := fs.ReadFile(wycheproof.TestVectors, "ed25519_test.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		TestGroups []struct {
			PublicKey struct {
				PK string `json:"pk"`
			} `json:"publicKey"`
			Tests []struct {
				TcID    int    `json:"tcId"`
				Comment string `json:"comment"`
				Msg     string `json:"msg"`
				Sig     string `json:"sig"`
				Result  string `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	dec := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	n := 0
	for _, g := range f.TestGroups {
		pub := dec(g.PublicKey.PK)
		for _, tc := range g.Tests {
			n++
			msg, sig := dec(tc.Msg), dec(tc.Sig)
			got, std := oursVerify(t, pub, msg, sig), stdVerify(pub, msg, sig)
			if got != std {
				t.Errorf("tcId %d (%s): Verify = %v, crypto/ed25519 = %v", tc.TcID, tc.Comment, got, std)
			}
			if want := tc.Result == "valid"; tc.Result != "acceptable" && got != want {
				t.Errorf("tcId %d (%s): Verify = %v, want %v (%s)", tc.TcID, tc.Comment, got, want, tc.Result)
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d cases", n)
	}
}

// TestVerifyDifferential compares with crypto/ed25519 on valid signatures
// and on every kind of corruption: a flipped bit anywhere in key, message
// or signature, S + L (non-canonical), random keys (about half are not
// points), and small-order keys.
func TestVerifyDifferential(t *testing.T) {
	src := rand.NewChaCha8([32]byte{'e', 'd'})
	rng := rand.New(src)
	// L, the group order, little-endian.
	l, _ := hex.DecodeString("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
	type tcase struct {
		name          string
		pub, msg, sig []byte
	}
	var cases []tcase
	for i := range 200 {
		seed := make([]byte, ed25519.SeedSize)
		src.Read(seed)
		priv := ed25519.NewKeyFromSeed(seed)
		pub := []byte(priv.Public().(ed25519.PublicKey))
		msg := make([]byte, rng.IntN(300))
		src.Read(msg)
		sig := ed25519.Sign(priv, msg)
		cases = append(cases, tcase{"valid", pub, msg, sig})
		flip := func(b []byte) []byte {
			c := append([]byte(nil), b...)
			if len(c) > 0 {
				c[rng.IntN(len(c))] ^= 1 << rng.IntN(8)
			}
			return c
		}
		cases = append(cases, tcase{"flipped key", flip(pub), msg, sig}, tcase{"flipped msg", pub, flip(msg), sig}, tcase{"flipped sig", pub, msg, flip(sig)})
		// S + L: the same scalar, not canonical; refused.
		s := append([]byte(nil), sig...)
		var carry uint16
		for j := range 32 {
			v := uint16(s[32+j]) + uint16(l[j]) + carry
			s[32+j], carry = byte(v), v>>8
		}
		cases = append(cases, tcase{"S+L", pub, msg, s})
		junk := make([]byte, 32)
		src.Read(junk)
		cases = append(cases, tcase{"random key", junk, msg, sig}, tcase{"short sig", pub, msg, sig[:i%64]})
	}
	// Small-order points (the identity, a point of order 2, the order-4
	// ones) with a signature R = identity, S = 0: crypto/ed25519 accepts
	// some of these (cofactorless verification of a weak key); ours must
	// answer the same.
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	} {
		pub, _ := hex.DecodeString(h)
		sig := make([]byte, 64)
		sig[0] = 1 // R = identity
		cases = append(cases, tcase{"small order", pub, []byte("m"), sig})
	}
	valid := 0
	for i, c := range cases {
		got, want := oursVerify(t, c.pub, c.msg, c.sig), stdVerify(c.pub, c.msg, c.sig)
		if got != want {
			t.Errorf("case %d (%s): Verify = %v, crypto/ed25519 = %v (pub %x sig %x)", i, c.name, got, want, c.pub, c.sig)
		}
		if got {
			valid++
		}
	}
	if valid < 200 {
		t.Fatalf("only %d cases verified", valid)
	}
}

// FuzzVerify: on any key, message and signature, Verify answers as
// crypto/ed25519 does, and a decoded key is one crypto/ed25519 accepts.
func FuzzVerify(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := []byte(priv.Public().(ed25519.PublicKey))
	f.Add(pub, []byte("msg"), ed25519.Sign(priv, []byte("msg")))
	f.Add(make([]byte, 32), []byte{}, make([]byte, 64))
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if got, want := oursVerify(t, pub, msg, sig), stdVerify(pub, msg, sig); got != want {
			t.Fatalf("Verify = %v, crypto/ed25519 = %v", got, want)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := []byte(priv.Public().(ed25519.PublicKey))
	msg := make([]byte, 200)
	sig := ed25519.Sign(priv, msg)
	k, err := NewPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !k.Verify(msg, sig) {
				b.Fatal("no")
			}
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("no")
			}
		}
	})
}
