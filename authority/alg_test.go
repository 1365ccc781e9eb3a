package authority_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/fednode/fednode/authority"
)

// Sizes of the algorithms' encodings (FIPS 204 Table 2; the hybrid is the
// concatenation), written out here rather than taken from the package.
const (
	mldsaPubSize  = 1952
	mldsaSigSize  = 3309
	hybridPubSize = mldsaPubSize + ed25519.PublicKeySize
	hybridSigSize = mldsaSigSize + ed25519.SignatureSize
)

// algSeed is the key-file seed of fixture key n of alg.
func algSeed(alg authority.Alg, n byte) []byte {
	size := ed25519.SeedSize
	if alg == authority.AlgHybrid {
		size = mldsa65.SeedSize + ed25519.SeedSize
	}
	seed := bytes.Repeat([]byte{n}, size)
	if alg == authority.AlgHybrid {
		// Two different halves, so a swap of them would show.
		for i := mldsa65.SeedSize; i < size; i++ {
			seed[i] ^= 0x5a
		}
	}
	return seed
}

// algKeyFile is the key file {1: alg, 2: seed} of fixture key n of alg,
// written by hand from the documented layout.
func algKeyFile(alg authority.Alg, n byte) []byte {
	seed := algSeed(alg, n)
	b := []byte{0xa2, 0x01, byte(alg), 0x02, 0x58, byte(len(seed))}
	return append(b, seed...)
}

func algKey(t fataler, alg authority.Alg, n byte) *authority.PrivateKey {
	t.Helper()
	k, err := authority.ParsePrivateKey(algKeyFile(alg, n))
	if err != nil {
		t.Fatalf("%v key %d: %v", alg, n, err)
	}
	return k
}

// derivedPublic is the public key of fixture key n of alg, derived directly
// with the primitives (not through the package).
func derivedPublic(alg authority.Alg, n byte) []byte {
	seed := algSeed(alg, n)
	var pub []byte
	if alg != authority.AlgEd25519 {
		var ξ [mldsa65.SeedSize]byte
		copy(ξ[:], seed)
		pk, _ := mldsa65.NewKeyFromSeed(&ξ)
		pub = pk.Bytes()
		seed = seed[mldsa65.SeedSize:]
	}
	if alg != authority.AlgMLDSA65 {
		pub = append(pub, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)...)
	}
	return pub
}

// algChain founds an authority named name with fixture key n of alg.
func algChain(t fataler, alg authority.Alg, name string, n byte) *chain {
	t.Helper()
	k := algKey(t, alg, n)
	g := mustSign(t, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: unix(now.Add(-30 * 24 * time.Hour)),
		Genesis:  &authority.Genesis{Name: name, RootKeys: []authority.PublicKey{k.Public()}, Threshold: 1},
	}, k)
	return &chain{name: name, key: k, seed: n, genesis: g, headID: g.ID}
}

func TestParseAlgAll(t *testing.T) {
	tests := []struct {
		name, in string
		want     authority.Alg
		ok       bool
	}{
		{name: "ed25519", in: "ed25519", want: authority.AlgEd25519, ok: true},
		{name: "mldsa65", in: "mldsa65", want: authority.AlgMLDSA65, ok: true},
		{name: "hybrid", in: "hybrid", want: authority.AlgHybrid, ok: true},
		{name: "default is ed25519", in: "", want: authority.AlgEd25519, ok: true},
		{name: "the FIPS name is not a config name", in: "ML-DSA-65"},
		{name: "case matters", in: "Hybrid"},
		{name: "round-3 dilithium is not ML-DSA", in: "dilithium3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := authority.ParseAlg(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Fatalf("ParseAlg(%q) = %v, %v", tt.in, got, err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "authority: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	for _, a := range authority.Algs {
		if got, err := authority.ParseAlg(a.String()); err != nil || got != a {
			t.Errorf("ParseAlg(%v.String()) = %v, %v", a, got, err)
		}
	}
	if s := authority.Alg(9).String(); s != "alg(9)" {
		t.Errorf("unknown alg prints %q", s)
	}
}

// TestKeyFileEveryAlg: a key file of each algorithm round-trips, is the
// documented {1: alg, 2: seed} layout, and gives the public key that the
// primitives derive from the seed.
func TestKeyFileEveryAlg(t *testing.T) {
	for _, alg := range authority.Algs {
		for _, n := range []byte{0, 1, 0xff} {
			t.Run(fmt.Sprintf("%v/seed %#x", alg, n), func(t *testing.T) {
				file := algKeyFile(alg, n)
				k, err := authority.ParsePrivateKey(file)
				if err != nil {
					t.Fatal(err)
				}
				if k.Alg() != alg || k.Public().Alg != alg {
					t.Fatalf("alg %v / %v", k.Alg(), k.Public().Alg)
				}
				if !bytes.Equal(k.Public().Key, derivedPublic(alg, n)) {
					t.Fatal("public key differs from the one derived from the seed")
				}
				b, err := authority.MarshalPrivateKey(k)
				if err != nil || !bytes.Equal(b, file) {
					t.Fatalf("MarshalPrivateKey = %x, %v; want %x", b, err, file)
				}
				g, err := authority.GenerateKey(alg, bytes.NewReader(algSeed(alg, n)))
				if err != nil {
					t.Fatal(err)
				}
				if gb, _ := authority.MarshalPrivateKey(g); !bytes.Equal(gb, file) {
					t.Fatal("GenerateKey from the seed's bytes is not the key of that seed")
				}
				if _, err := authority.GenerateKey(alg, bytes.NewReader(algSeed(alg, n)[1:])); err == nil {
					t.Fatal("GenerateKey from a short reader succeeded")
				}
				// Public returns a copy.
				p := k.Public()
				p.Key[0] ^= 0xff
				if bytes.Equal(p.Key, k.Public().Key) {
					t.Fatal("Public shares its bytes with the key")
				}
			})
		}
	}
}

// TestParsePrivateKeyWrongSeed: a seed of the wrong length for its
// algorithm is refused, without quoting it.
func TestParsePrivateKeyWrongSeed(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5a, 0xc3, 0x17}, 30)
	tests := []struct {
		name string
		alg  authority.Alg
		n    int
	}{
		{name: "mldsa65 seed one short", alg: authority.AlgMLDSA65, n: 31},
		{name: "mldsa65 seed one long", alg: authority.AlgMLDSA65, n: 33},
		{name: "mldsa65 expanded private key", alg: authority.AlgMLDSA65, n: 64},
		{name: "hybrid with one seed only", alg: authority.AlgHybrid, n: 32},
		{name: "hybrid seed one long", alg: authority.AlgHybrid, n: 65},
		{name: "ed25519 with a hybrid seed", alg: authority.AlgEd25519, n: 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]byte{0xa2, 0x01, byte(tt.alg), 0x02, 0x58, byte(tt.n)}, secret[:tt.n]...)
			k, err := authority.ParsePrivateKey(in)
			if err == nil || k != nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "authority: ") || strings.Contains(msg, hex.EncodeToString(secret[:8])) || strings.Contains(msg, string(secret[:8])) {
				t.Errorf("error %q lacks the prefix or quotes the seed", msg)
			}
		})
	}
}

// TestRoundTripEveryAlg: for each algorithm, authorities founded with its
// keys sign a genesis, a rule, a credential and a sealed blob; each parses,
// verifies with the declared key, enters the graph, and the credential is
// allowed by Verify. Signing is deterministic for every algorithm.
func TestRoundTripEveryAlg(t *testing.T) {
	for _, alg := range authority.Algs {
		t.Run(alg.String(), func(t *testing.T) {
			src := algChain(t, alg, "aws-prod", 1)
			dst := algChain(t, alg, "azure-corp", 2)
			g := authority.NewGraph()
			for _, s := range []*authority.Signed{src.genesis, dst.genesis} {
				if s.Alg != alg {
					t.Fatalf("envelope alg %v", s.Alg)
				}
				if err := g.Apply(s); err != nil {
					t.Fatal(err)
				}
			}
			rule := dst.rule(t, src.id(), etlPattern, dataPattern, []string{"read"}, now.Add(-time.Hour), now.Add(time.Hour))
			if err := g.Apply(rule); err != nil {
				t.Fatal(err)
			}
			cred := src.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour))
			again, err := authority.Parse(cred.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := again.VerifyWith([]authority.PublicKey{src.key.Public()}); err != nil {
				t.Fatal(err)
			}
			if mustSign(t, cred.Decl, src.key).ID != cred.ID {
				t.Error("signing the same declaration twice gives two IDs")
			}
			d := authority.Verify(g, authority.Request{Credential: cred.Raw, Target: dst.id(), Resource: dataResource, Action: "read"}, authority.WithTime(now))
			if !d.Allow {
				t.Fatalf("%s: %s", d.Reason, d.Message)
			}
			// The other authority's key, of the same algorithm, does not verify it.
			if err := again.VerifyWith([]authority.PublicKey{dst.key.Public()}); !errors.Is(err, authority.ErrBadSignature) {
				t.Fatalf("foreign key: %v", err)
			}

			sealed, err := authority.Seal([]byte("bundle bytes"), src.key)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := authority.ParseSealed(sealed, authority.MaxDeclarationSize)
			if err != nil {
				t.Fatal(err)
			}
			if ps.Alg != alg || ps.VerifyWith([]authority.PublicKey{src.key.Public()}) != nil {
				t.Fatalf("sealed: alg %v", ps.Alg)
			}
			t.Logf("%v: credential envelope %d bytes, genesis %d bytes", alg, len(cred.Raw), len(src.genesis.Raw))
		})
	}
}

// TestHybridHalves: a hybrid signature with either half corrupted, or with
// one half taken from another valid signature, is refused.
func TestHybridHalves(t *testing.T) {
	src := algChain(t, authority.AlgHybrid, "aws-prod", 1)
	keys := []authority.PublicKey{src.key.Public()}
	a := src.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour))
	b := src.credential(t, adminSubject, now.Add(-time.Hour), now.Add(time.Hour))
	sigAt := func(raw []byte) int { return len(raw) - hybridSigSize }
	if !bytes.Equal(a.Raw[sigAt(a.Raw)-3:sigAt(a.Raw)], []byte{0x59, 0x0d, 0x2d}) {
		t.Fatalf("the envelope does not end in a %d-byte signature", hybridSigSize)
	}
	flip := func(at int) []byte {
		raw := clone(a.Raw)
		raw[at] ^= 0x01
		return raw
	}
	splice := func(from []byte, lo, hi int) []byte {
		raw := clone(a.Raw)
		copy(raw[sigAt(raw)+lo:sigAt(raw)+hi], from[sigAt(from)+lo:sigAt(from)+hi])
		return raw
	}
	tests := []struct {
		name string
		raw  []byte
	}{
		{name: "first byte of the ML-DSA half", raw: flip(sigAt(a.Raw))},
		{name: "last byte of the ML-DSA half", raw: flip(sigAt(a.Raw) + mldsaSigSize - 1)},
		{name: "first byte of the Ed25519 half", raw: flip(sigAt(a.Raw) + mldsaSigSize)},
		{name: "last byte of the Ed25519 half", raw: flip(len(a.Raw) - 1)},
		{name: "ML-DSA half of another credential", raw: splice(b.Raw, 0, mldsaSigSize)},
		{name: "Ed25519 half of another credential", raw: splice(b.Raw, mldsaSigSize, hybridSigSize)},
		{name: "halves swapped in place", raw: func() []byte {
			raw := clone(a.Raw)
			sig := raw[sigAt(raw):]
			swapped := append(clone(sig[mldsaSigSize:]), sig[:mldsaSigSize]...)
			copy(sig, swapped)
			return raw
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := authority.Parse(tt.raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := s.VerifyWith(keys); !errors.Is(err, authority.ErrBadSignature) {
				t.Fatalf("VerifyWith = %v, want ErrBadSignature", err)
			}
		})
	}
	if err := a.VerifyWith(keys); err != nil {
		t.Fatalf("the unmodified credential: %v", err)
	}
}

// TestAlgSubstitutionByKey: a key declared under one algorithm never
// verifies a signature of another, even with the same bytes (the algorithm
// is part of the key ID, and the envelope's algorithm must be the key's).
func TestAlgSubstitutionByKey(t *testing.T) {
	k := algKey(t, authority.AlgHybrid, 3)
	cred := mustSign(t, credentialDecl(authority.ID{1}, etlSubject, now, now.Add(time.Hour)), k)
	pub := k.Public()
	tests := []struct {
		name string
		key  authority.PublicKey
	}{
		{name: "hybrid bytes declared as ML-DSA-65", key: authority.PublicKey{Alg: authority.AlgMLDSA65, Key: pub.Key}},
		{name: "ML-DSA half declared as ML-DSA-65", key: authority.PublicKey{Alg: authority.AlgMLDSA65, Key: pub.Key[:mldsaPubSize]}},
		{name: "Ed25519 half declared as Ed25519", key: authority.PublicKey{Alg: authority.AlgEd25519, Key: pub.Key[mldsaPubSize:]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.key.KeyID(), pub.KeyID()) {
				t.Fatal("same key ID")
			}
			if err := cred.VerifyWith([]authority.PublicKey{tt.key}); !errors.Is(err, authority.ErrBadSignature) {
				t.Fatalf("VerifyWith = %v", err)
			}
		})
	}
}

// TestPublicKeySizes: a genesis whose root key has the wrong size for its
// algorithm cannot be signed (and so cannot be parsed either).
func TestPublicKeySizes(t *testing.T) {
	signer := algKey(t, authority.AlgEd25519, 1)
	tests := []struct {
		name string
		alg  authority.Alg
		n    int
		ok   bool
	}{
		{name: "ed25519 32", alg: authority.AlgEd25519, n: 32, ok: true},
		{name: "mldsa65 1952", alg: authority.AlgMLDSA65, n: mldsaPubSize, ok: true},
		{name: "mldsa65 1951", alg: authority.AlgMLDSA65, n: mldsaPubSize - 1},
		{name: "mldsa65 1953", alg: authority.AlgMLDSA65, n: mldsaPubSize + 1},
		{name: "mldsa44-sized", alg: authority.AlgMLDSA65, n: 1312},
		{name: "hybrid 1984", alg: authority.AlgHybrid, n: hybridPubSize, ok: true},
		{name: "hybrid without its Ed25519 half", alg: authority.AlgHybrid, n: mldsaPubSize},
		{name: "hybrid 1985", alg: authority.AlgHybrid, n: hybridPubSize + 1},
		{name: "unknown algorithm", alg: 4, n: 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authority.Sign(authority.Declaration{
				Kind:    authority.KindGenesis,
				Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{{Alg: tt.alg, Key: make([]byte, tt.n)}}, Threshold: 1},
			}, signer)
			if (err == nil) != tt.ok {
				t.Fatalf("Sign = %v", err)
			}
			t.Log(err)
		})
	}
}

// TestMaxDeclarationSizeFitsPQ: a genesis with the most root keys allowed,
// all hybrid (the largest keys), signed with a hybrid key (the largest
// signature), stays well under MaxDeclarationSize, as do smaller PQ
// geneses (the first root key is always the hybrid signer's).
func TestMaxDeclarationSizeFitsPQ(t *testing.T) {
	tests := []struct {
		name string
		alg  authority.Alg
		keys int
	}{
		{name: "4 ML-DSA-65 keys", alg: authority.AlgMLDSA65, keys: 4},
		{name: "4 hybrid keys", alg: authority.AlgHybrid, keys: 4},
		{name: "MaxRootKeys ML-DSA-65 keys", alg: authority.AlgMLDSA65, keys: authority.MaxRootKeys},
		{name: "MaxRootKeys hybrid keys", alg: authority.AlgHybrid, keys: authority.MaxRootKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []authority.PublicKey
			for i := range tt.keys {
				keys = append(keys, algKey(t, tt.alg, byte(10+i)).Public())
			}
			// The first root key is the hybrid key that signs the genesis.
			signer := algKey(t, authority.AlgHybrid, 10)
			keys[0] = signer.Public()
			g := mustSign(t, authority.Declaration{
				Kind:     authority.KindGenesis,
				IssuedAt: unix(now),
				Genesis:  &authority.Genesis{Name: "pq-authority", Kind: "sovereign", RootKeys: keys, Threshold: 1},
			}, signer)
			t.Logf("%s: genesis envelope %d bytes of %d (%.0f%%)", tt.name, len(g.Raw), authority.MaxDeclarationSize, 100*float64(len(g.Raw))/authority.MaxDeclarationSize)
			if len(g.Raw) > authority.MaxDeclarationSize/2+authority.MaxDeclarationSize/4 {
				t.Errorf("%d bytes leaves little headroom under %d", len(g.Raw), authority.MaxDeclarationSize)
			}
			if err := authority.NewGraph().Apply(g); err != nil {
				t.Fatal(err)
			}
		})
	}
}
