package authority

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/veraison/go-cose"
)

// testKey is fixture key n of alg: its seed is n repeated.
func testKey(t testing.TB, alg Alg, n byte) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(alg, bytes.NewReader(bytes.Repeat([]byte{n}, seedSize(alg))))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lyingSigner signs with k but claims alg in the COSE header: how a forger
// would build an algorithm-substitution envelope.
type lyingSigner struct {
	alg cose.Algorithm
	k   *PrivateKey
}

func (s lyingSigner) Algorithm() cose.Algorithm { return s.alg }

func (s lyingSigner) Sign(_ io.Reader, content []byte) ([]byte, error) { return s.k.sign(content) }

// forge makes a canonical envelope of payload whose header claims alg and
// names kid, signed (validly, over its real Sig_structure) with k.
func forge(t *testing.T, payload []byte, alg Alg, kid []byte, k *PrivateKey) []byte {
	t.Helper()
	calg, err := alg.coseAlg()
	if err != nil {
		t.Fatal(err)
	}
	msg := cose.Sign1Message{
		Headers: cose.Headers{
			Protected:   cose.ProtectedHeader{cose.HeaderLabelAlgorithm: calg, cose.HeaderLabelKeyID: kid},
			Unprotected: cose.UnprotectedHeader{},
		},
		Payload: payload,
	}
	if err := msg.Sign(nil, nil, lyingSigner{calg, k}); err != nil {
		t.Fatal(err)
	}
	raw, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestAlgSubstitution: an envelope whose header claims one algorithm while
// its kid names a key of another is refused with ErrBadSignature, whoever
// made the signature: the named key itself (a valid signature under the
// key's real algorithm) or a key of the claimed algorithm. Every ordered
// pair of algorithms is tried, so ML-DSA ↔ Ed25519 and hybrid ↔ each single
// algorithm are all covered.
func TestAlgSubstitution(t *testing.T) {
	keys := map[Alg]*PrivateKey{}
	var declared []PublicKey
	for i, a := range Algs {
		keys[a] = testKey(t, a, byte(20+i))
		declared = append(declared, keys[a].Public())
	}
	payload, err := marshal(&Declaration{
		Kind: KindCredential, Authority: ID{1}, IssuedAt: 1,
		Credential: &Credential{Subject: "arn:aws:iam::111122223333:role/etl-loader"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, claimed := range Algs {
		for _, named := range Algs {
			if claimed == named {
				continue
			}
			for _, by := range []Alg{named, claimed} {
				name := fmt.Sprintf("claims %v, kid names a %v key, signed by the %v key", claimed, named, by)
				t.Run(name, func(t *testing.T) {
					raw := forge(t, payload, claimed, keys[named].Public().KeyID(), keys[by])
					s, err := Parse(raw)
					if err != nil {
						t.Fatalf("Parse: %v", err)
					}
					if s.Alg != claimed {
						t.Fatalf("parsed alg %v", s.Alg)
					}
					err = s.VerifyWith(declared)
					t.Log(err)
					if !errors.Is(err, ErrBadSignature) {
						t.Fatalf("VerifyWith = %v, want ErrBadSignature", err)
					}
					sealed, err := ParseSealed(raw, MaxDeclarationSize)
					if err != nil {
						t.Fatal(err)
					}
					if err := sealed.VerifyWith(declared); !errors.Is(err, ErrBadSignature) {
						t.Fatalf("Sealed.VerifyWith = %v, want ErrBadSignature", err)
					}
				})
			}
		}
	}
	// The control: the same construction with an honest header verifies.
	for _, a := range Algs {
		s, err := Parse(forge(t, payload, a, keys[a].Public().KeyID(), keys[a]))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyWith(declared); err != nil {
			t.Errorf("honest %v envelope: %v", a, err)
		}
	}
}

// TestHybridNotSeparable: neither half of a hybrid signature is a valid
// signature of the message under its component key alone (the halves sign
// M', and the ML-DSA half under the composite label as context), nor are
// plain signatures of the message a hybrid signature when concatenated.
func TestHybridNotSeparable(t *testing.T) {
	h := testKey(t, AlgHybrid, 7)
	msg := []byte("\x84jSignature1...a Sig_structure")
	sig, err := h.sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	pub := h.Public()
	if !pub.verify(msg, sig) {
		t.Fatal("hybrid signature does not verify")
	}
	mlPub := PublicKey{Alg: AlgMLDSA65, Key: pub.Key[:len(pub.Key)-32]}
	edPub := PublicKey{Alg: AlgEd25519, Key: pub.Key[len(pub.Key)-32:]}
	mlSig, edSig := sig[:len(sig)-64], sig[len(sig)-64:]
	if mlPub.verify(msg, mlSig) || edPub.verify(msg, edSig) {
		t.Error("a half of the hybrid signature verifies on its own")
	}
	// Sign the message with the components as standalone keys.
	ml := &PrivateKey{alg: AlgMLDSA65, ml: h.ml, mlSeed: h.mlSeed}
	ed := &PrivateKey{alg: AlgEd25519, ed: h.ed}
	s1, _ := ml.sign(msg)
	s2, _ := ed.sign(msg)
	if pub.verify(msg, append(s1, s2...)) {
		t.Error("standalone component signatures concatenate into a hybrid signature")
	}
}

func TestVerifyRefusesWrongSizes(t *testing.T) {
	for _, a := range Algs {
		k := testKey(t, a, 1)
		msg := []byte("m")
		sig, err := k.sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != signatureSize(a) {
			t.Fatalf("%v signature is %d bytes, want %d", a, len(sig), signatureSize(a))
		}
		pub := k.Public()
		tests := []struct {
			name string
			key  PublicKey
			sig  []byte
		}{
			{"signature with a trailing byte", pub, append(bytes.Clone(sig), 0)},
			{"signature one byte short", pub, sig[:len(sig)-1]},
			{"empty signature", pub, nil},
			{"key with a trailing byte", PublicKey{Alg: a, Key: append(bytes.Clone(pub.Key), 0)}, sig},
			{"key one byte short", PublicKey{Alg: a, Key: pub.Key[:len(pub.Key)-1]}, sig},
			{"unknown algorithm", PublicKey{Alg: 0, Key: pub.Key}, sig},
		}
		for _, tt := range tests {
			if tt.key.verify(msg, tt.sig) {
				t.Errorf("%v: %s verifies", a, tt.name)
			}
		}
	}
}

// TestKeyCacheBound: the cache never holds more than maxCachedKeys keys,
// drops the least recently used first, and hands back exactly what
// unpacking gives.
func TestKeyCacheBound(t *testing.T) {
	var c keyCache
	get := func(b []byte) *mldsa65.PublicKey {
		pk, hit := c.unpacked(b)
		if !hit {
			c.keep(b, pk)
		}
		return pk
	}
	key := func(i int) []byte {
		b := make([]byte, 1952)
		b[0], b[1], b[2] = byte(i), byte(i>>8), 0xa5
		return b
	}
	for i := range maxCachedKeys {
		get(key(i))
	}
	if c.len() != maxCachedKeys {
		t.Fatalf("len %d after %d keys", c.len(), maxCachedKeys)
	}
	get(key(0)) // now the most recently used
	for i := maxCachedKeys; i < maxCachedKeys+10; i++ {
		get(key(i))
		if c.len() != maxCachedKeys {
			t.Fatalf("len %d, over the bound %d", c.len(), maxCachedKeys)
		}
	}
	c.mu.Lock()
	_, has0 := c.byKey[string(key(0))]
	_, has1 := c.byKey[string(key(1))]
	_, hasNew := c.byKey[string(key(maxCachedKeys+9))]
	c.mu.Unlock()
	if !has0 || has1 || !hasNew {
		t.Fatalf("LRU order broken: key0 %v (want kept), key1 %v (want dropped), newest %v", has0, has1, hasNew)
	}
	for _, i := range []int{0, 5, maxCachedKeys + 3} {
		if !bytes.Equal(get(key(i)).Bytes(), unpackMLDSA(key(i)).Bytes()) || !bytes.Equal(get(key(i)).Bytes(), key(i)) {
			t.Fatalf("cached key %d differs from its unpacking", i)
		}
	}
	var nilCache *keyCache
	if pk, hit := nilCache.unpacked(key(1)); hit || !bytes.Equal(pk.Bytes(), key(1)) {
		t.Fatal("nil cache does not unpack")
	}
	nilCache.keep(key(1), unpackMLDSA(key(1)))

	// Concurrent misses past the bound, so goroutines evict each other's
	// keys while they read: still bounded, still exact.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				b := key(1000 + 100*g + i)
				if !bytes.Equal(get(b).Bytes(), b) {
					errs <- fmt.Errorf("goroutine %d: key %d came back as another", g, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.len() != maxCachedKeys {
		t.Fatalf("len %d after concurrent misses, want the bound %d", c.len(), maxCachedKeys)
	}
}

// TestKeyCacheKeepsOnlyVerified: a key enters the cache only once a
// signature has verified under it, so junk keys cannot evict real ones.
func TestKeyCacheKeepsOnlyVerified(t *testing.T) {
	for _, a := range []Alg{AlgEd25519, AlgMLDSA65, AlgHybrid} {
		var c keyCache
		k := testKey(t, a, 9)
		pub := k.Public()
		msg := []byte("m")
		sig, _ := k.sign(msg)
		bad := bytes.Clone(sig)
		bad[0] ^= 1
		if pub.verifyCached(msg, bad, &c) || c.len() != 0 {
			t.Fatalf("%v: a failed verification cached its key (len %d)", a, c.len())
		}
		if a == AlgHybrid {
			// ML-DSA half valid, Ed25519 half not: still not cached.
			bad = bytes.Clone(sig)
			bad[len(bad)-1] ^= 1
			if pub.verifyCached(msg, bad, &c) || c.len() != 0 {
				t.Fatalf("hybrid with a bad Ed25519 half cached its key (len %d)", c.len())
			}
			// Ed25519 half valid, ML-DSA half not: neither half cached.
			mlBad := bytes.Clone(sig)
			mlBad[0] ^= 1
			if pub.verifyCached(msg, mlBad, &c) || c.len() != 0 {
				t.Fatalf("hybrid with a bad ML-DSA half cached a key (len %d)", c.len())
			}
		}
		// One entry per decoded half: the hybrid keeps its ML-DSA and its
		// Ed25519 key.
		want := 1
		if a == AlgHybrid {
			want = 2
		}
		if !pub.verifyCached(msg, sig, &c) || c.len() != want {
			t.Fatalf("%v: a good verification did not cache its key (len %d, want %d)", a, c.len(), want)
		}
		switch a {
		case AlgEd25519:
			if e := c.lookup(pub.Key); e == nil || e.ed == nil {
				t.Fatalf("%v: the verified key is not a hit", a)
			}
		case AlgHybrid:
			if e := c.lookup(pub.Key[1952:]); e == nil || e.ed == nil {
				t.Fatalf("%v: the verified key's Ed25519 half is not a hit", a)
			}
			fallthrough
		default:
			if _, hit := c.unpacked(pub.Key[:1952]); !hit {
				t.Fatalf("%v: the verified key is not a hit", a)
			}
		}
		if !pub.verifyCached(msg, sig, &c) || pub.verifyCached(msg, bad, &c) || c.len() != want {
			t.Fatalf("%v: answers changed once cached", a)
		}
	}
}

// TestVerifyConcurrent: verification from many goroutines at once, sharing
// a cache, gives every goroutine the same answers as verification without a
// cache (run under -race).
func TestVerifyConcurrent(t *testing.T) {
	type job struct {
		key PublicKey
		msg []byte
		sig []byte
	}
	var jobs []job
	for i, a := range []Alg{AlgMLDSA65, AlgHybrid, AlgMLDSA65, AlgHybrid, AlgEd25519} {
		k := testKey(t, a, byte(40+i))
		msg := []byte(fmt.Sprintf("message %d", i))
		sig, err := k.sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{k.Public(), msg, sig})
		bad := bytes.Clone(sig)
		bad[len(bad)/2] ^= 0x10
		jobs = append(jobs, job{k.Public(), msg, bad})
	}
	want := make([]bool, len(jobs))
	for i, j := range jobs {
		want[i] = j.key.verifyCached(j.msg, j.sig, nil)
		if want[i] != (i%2 == 0) {
			t.Fatalf("job %d: verify = %v", i, want[i])
		}
	}
	var c keyCache
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 20 {
				i := (g + r) % len(jobs)
				j := jobs[i]
				if got := j.key.verifyCached(j.msg, j.sig, &c); got != want[i] {
					errs <- fmt.Errorf("goroutine %d, job %d: %v, want %v", g, i, got, want[i])
					return
				}
				if got := j.key.verify(j.msg, j.sig); got != want[i] {
					errs <- fmt.Errorf("goroutine %d, job %d (shared cache): %v, want %v", g, i, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := c.len(); n == 0 || n > maxCachedKeys {
		t.Errorf("cache holds %d keys", n)
	}
}

// TestSignDeterministicEveryAlg: every algorithm signs the same message the same way
// twice, so re-signing a declaration cannot look like equivocation.
func TestSignDeterministicEveryAlg(t *testing.T) {
	for _, a := range Algs {
		k := testKey(t, a, 3)
		s1, err1 := k.sign([]byte("x"))
		s2, err2 := k.sign([]byte("x"))
		if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
			t.Errorf("%v: two signatures differ (%v, %v)", a, err1, err2)
		}
	}
}

// benchMessage is a Sig_structure-sized message: what verify sees for a
// credential.
var benchMessage = bytes.Repeat([]byte("0123456789abcdef"), 20)

// BenchmarkSigVerify measures one signature check per algorithm: the plain
// name decodes the public key from its bytes each time (no cache), /cached
// uses a warm cache of unpacked keys. Ed25519 has nothing to cache (its
// decoding is part of every ed25519.Verify), so its two figures are the same
// operation.
func BenchmarkSigVerify(b *testing.B) {
	for _, a := range Algs {
		k := testKey(b, a, 1)
		pub := k.Public()
		sig, err := k.sign(benchMessage)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(a.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !pub.verifyCached(benchMessage, sig, nil) {
					b.Fatal("does not verify")
				}
			}
		})
		b.Run(a.String()+"/cached", func(b *testing.B) {
			var c keyCache
			pub.verifyCached(benchMessage, sig, &c)
			b.ReportAllocs()
			for b.Loop() {
				if !pub.verifyCached(benchMessage, sig, &c) {
					b.Fatal("does not verify")
				}
			}
		})
	}
}

// BenchmarkSigSign measures one signature per algorithm (deterministic).
func BenchmarkSigSign(b *testing.B) {
	for _, a := range Algs {
		k := testKey(b, a, 1)
		b.Run(a.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.sign(benchMessage); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignEnvelope is authority.Sign of a credential per algorithm:
// validate, encode, sign, and Parse of the result.
func BenchmarkSignEnvelope(b *testing.B) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Unix()
	d := Declaration{Kind: KindCredential, Authority: ID{1}, IssuedAt: at,
		Credential: &Credential{Subject: "arn:aws:iam::111122223333:role/etl-loader", NotBefore: at - 3600, NotAfter: at + 3600}}
	for _, a := range Algs {
		k := testKey(b, a, 1)
		b.Run(a.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Sign(d, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzPublicKeyVerify: verify never panics on hostile keys and signatures
// of any algorithm, with or without the cache, and both paths agree. Keys
// and signatures are also fitted to their algorithm's exact sizes, so the
// fuzzer reaches the primitives and not only the length checks.
func FuzzPublicKeyVerify(f *testing.F) {
	for i, a := range Algs {
		k := testKey(f, a, byte(60+i))
		sig, _ := k.sign([]byte("msg"))
		f.Add(byte(a), k.Public().Key, []byte("msg"), sig)
	}
	f.Add(byte(2), make([]byte, 1952), []byte{}, make([]byte, 3309))
	f.Fuzz(func(t *testing.T, alg byte, key, msg, sig []byte) {
		k := PublicKey{Alg: Alg(alg), Key: key}
		var c keyCache
		if k.verifyCached(msg, sig, nil) != k.verifyCached(msg, sig, &c) {
			t.Fatal("cached and uncached answers differ")
		}
		fit := func(b []byte, n int) []byte {
			if n == 0 {
				return b
			}
			out := make([]byte, n)
			copy(out, b)
			return out
		}
		k.Key = fit(key, publicKeySize(k.Alg))
		sig = fit(sig, signatureSize(k.Alg))
		if k.verifyCached(msg, sig, nil) != k.verifyCached(msg, sig, &c) {
			t.Fatal("cached and uncached answers differ on fitted inputs")
		}
	})
}
