package authority

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/veraison/go-cose"
)

// Alg names a signature algorithm. It is a field of every key and every
// signature rather than an assumption, so that algorithms can be added
// without changing the declaration format. The numbers are part of the wire
// format (they are hashed into every KeyID): never renumber.
type Alg uint8

const (
	// AlgEd25519 is Ed25519 (RFC 8032), COSE alg EdDSA (-8).
	AlgEd25519 Alg = 1
	// AlgMLDSA65 is ML-DSA-65 (FIPS 204, pure, empty context), COSE alg
	// ML-DSA-65 (-49, RFC 9964 / draft-ietf-cose-dilithium). Post-quantum.
	AlgMLDSA65 Alg = 2
	// AlgHybrid is the ML-DSA-65 + Ed25519 composite of
	// draft-ietf-jose-pq-composite-sigs: a signature verifies only if both
	// halves do, so it stays unforgeable while either algorithm holds. Its
	// COSE alg is a private-use value (see coseAlgHybrid): the draft's
	// requested one is not assigned.
	AlgHybrid Alg = 3
)

// Algs lists every supported algorithm, for documentation and tests. Nothing
// in the package reads it: changing it changes no behaviour.
var Algs = []Alg{AlgEd25519, AlgMLDSA65, AlgHybrid}

// String returns the name used in config files and the CLI.
func (a Alg) String() string {
	switch a {
	case AlgEd25519:
		return "ed25519"
	case AlgMLDSA65:
		return "mldsa65"
	case AlgHybrid:
		return "hybrid"
	default:
		return fmt.Sprintf("alg(%d)", uint8(a))
	}
}

// ParseAlg parses an algorithm name as String prints it. The empty name is
// Ed25519, the default.
func ParseAlg(s string) (Alg, error) {
	switch s {
	case "ed25519", "":
		return AlgEd25519, nil
	case "mldsa65":
		return AlgMLDSA65, nil
	case "hybrid":
		return AlgHybrid, nil
	}
	return 0, fmt.Errorf("authority: unknown algorithm %q (supported: ed25519, mldsa65, hybrid)", abbrev(s))
}

// coseAlg is the COSE algorithm identifier carried in the protected header.
//
// Ed25519 keeps the polymorphic EdDSA (-8) rather than RFC 9864's
// fully-specified Ed25519 (-19): every envelope signed so far says -8, and
// changing it would change every declaration ID.
func (a Alg) coseAlg() (cose.Algorithm, error) {
	switch a {
	case AlgEd25519:
		return cose.AlgorithmEdDSA, nil
	case AlgMLDSA65:
		return coseAlgMLDSA65, nil
	case AlgHybrid:
		return coseAlgHybrid, nil
	}
	return 0, fmt.Errorf("authority: %v has no COSE algorithm", a)
}

// algFromCOSE maps a protected header's COSE algorithm back to an Alg: the
// inverse of coseAlg, and nothing else (no alias is accepted, so one
// algorithm has one encoding).
func algFromCOSE(c cose.Algorithm) (Alg, error) {
	switch c {
	case cose.AlgorithmEdDSA:
		return AlgEd25519, nil
	case coseAlgMLDSA65:
		return AlgMLDSA65, nil
	case coseAlgHybrid:
		return AlgHybrid, nil
	}
	return 0, fmt.Errorf("unsupported COSE algorithm %d", int64(c))
}

// NewSerial returns a random credential serial from rand.
func NewSerial(rand io.Reader) ([]byte, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("authority: credential serial: %w", err)
	}
	return b, nil
}

// KeyIDSize is the length of a key ID (the COSE kid of signatures made with it).
const KeyIDSize = 16

// PublicKey is a declared public key. Key holds the algorithm's standard
// encoding: 32 bytes for Ed25519, the 1952-byte FIPS 204 pkEncode for
// ML-DSA-65, and ML-DSA-65 || Ed25519 (1984 bytes) for the hybrid.
type PublicKey struct {
	Alg Alg    `cbor:"1,keyasint"`
	Key []byte `cbor:"2,keyasint"`
}

// KeyID is the first KeyIDSize bytes of SHA-256(alg || key). Signatures name
// the key they were made with by this ID (the COSE kid). The algorithm is part
// of the ID, so the same bytes declared under two algorithms are two keys.
func (k PublicKey) KeyID() []byte {
	h := sha256.New()
	h.Write([]byte{byte(k.Alg)})
	h.Write(k.Key)
	return h.Sum(nil)[:KeyIDSize]
}

// publicKeySize is the exact length of a public key of alg, or 0.
func publicKeySize(alg Alg) int {
	switch alg {
	case AlgEd25519:
		return ed25519.PublicKeySize
	case AlgMLDSA65:
		return mldsa65.PublicKeySize
	case AlgHybrid:
		return hybridPublicKeySize
	}
	return 0
}

// signatureSize is the exact length of a signature of alg, or 0.
func signatureSize(alg Alg) int {
	switch alg {
	case AlgEd25519:
		return ed25519.SignatureSize
	case AlgMLDSA65:
		return mldsa65.SignatureSize
	case AlgHybrid:
		return hybridSignatureSize
	}
	return 0
}

// validate checks that k is a well-formed key of a supported algorithm. Any
// byte string of the right length is a valid ML-DSA public key (FIPS 204
// pkDecode cannot fail), so length is the whole check, as for Ed25519.
// Validate checks that k is a key of a supported algorithm, of its size.
func (k PublicKey) Validate() error {
	if err := k.validate(); err != nil {
		return fmt.Errorf("authority: %w", err)
	}
	return nil
}

func (k PublicKey) validate() error {
	want := publicKeySize(k.Alg)
	if want == 0 {
		return fmt.Errorf("public key: unsupported algorithm %v", k.Alg)
	}
	if len(k.Key) != want {
		return fmt.Errorf("%v public key: want %d bytes, got %d", k.Alg, want, len(k.Key))
	}
	return nil
}

// verify checks sig over msg with k. It is a pure function of its
// arguments: unpacked ML-DSA keys and decoded Ed25519 keys are cached (see
// keyCache and edVerify), which changes its cost, never its answer. Safe for concurrent use.
func (k PublicKey) verify(msg, sig []byte) bool { return k.verifyCached(msg, sig, &mldsaKeys) }

// verifyCached is verify with the cache of decoded keys given; nil decodes
// the key every time, with crypto/ed25519 for Ed25519 (benchmarks compare the two).
func (k PublicKey) verifyCached(msg, sig []byte, c *keyCache) bool {
	if len(k.Key) != publicKeySize(k.Alg) || len(sig) != signatureSize(k.Alg) {
		return false
	}
	switch k.Alg {
	case AlgEd25519:
		return c.edVerify(k.Key, msg, sig)
	case AlgMLDSA65:
		return c.verify(k.Key, msg, nil, sig)
	case AlgHybrid:
		return hybridVerify(k.Key, msg, sig, c)
	}
	return false
}

// PrivateKey is a signing key. Its bytes are secret: they are written to key
// files with mode 0600 and never logged. A PrivateKey is immutable and safe
// for concurrent use.
//
// Invariant: ed is set for AlgEd25519 and AlgHybrid, ml and mlSeed for
// AlgMLDSA65 and AlgHybrid; pub is the public half.
type PrivateKey struct {
	alg    Alg
	ed     ed25519.PrivateKey
	ml     *mldsa65.PrivateKey
	mlSeed []byte
	pub    PublicKey
}

// seedSize is the length of the key-file seed of alg: the Ed25519 seed
// (RFC 8032), the FIPS 204 key-generation seed ξ, or both (ML-DSA first, as
// the composite draft serialises them).
func seedSize(alg Alg) int {
	switch alg {
	case AlgEd25519:
		return ed25519.SeedSize
	case AlgMLDSA65:
		return mldsa65.SeedSize
	case AlgHybrid:
		return mldsa65.SeedSize + ed25519.SeedSize
	}
	return 0
}

// newPrivateKey expands seed (of seedSize(alg) bytes) into a key of alg.
func newPrivateKey(alg Alg, seed []byte) *PrivateKey {
	k := &PrivateKey{alg: alg}
	var edSeed []byte
	switch alg {
	case AlgEd25519:
		edSeed = seed
	case AlgMLDSA65:
		k.mlSeed = seed
	case AlgHybrid:
		k.mlSeed, edSeed = seed[:mldsa65.SeedSize], seed[mldsa65.SeedSize:]
	}
	var pub []byte
	if k.mlSeed != nil {
		k.mlSeed = append([]byte(nil), k.mlSeed...)
		var ξ [mldsa65.SeedSize]byte
		copy(ξ[:], k.mlSeed)
		mlPub, mlPriv := mldsa65.NewKeyFromSeed(&ξ)
		clearUpper() // see vzeroupper_amd64.go
		k.ml = mlPriv
		pub = mlPub.Bytes()
	}
	if edSeed != nil {
		k.ed = ed25519.NewKeyFromSeed(edSeed)
		pub = append(pub, k.ed.Public().(ed25519.PublicKey)...)
	}
	k.pub = PublicKey{Alg: alg, Key: pub}
	return k
}

// GenerateKey makes a new key of alg from rand. It reads exactly the key
// file's seed from rand (32 bytes, or 64 for the hybrid: ML-DSA's first), so
// GenerateKey from a fixed reader equals ParsePrivateKey of that seed.
func GenerateKey(alg Alg, rand io.Reader) (*PrivateKey, error) {
	n := seedSize(alg)
	if n == 0 {
		return nil, fmt.Errorf("authority: generate key: unsupported algorithm %v", alg)
	}
	seed := make([]byte, n)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("authority: generate %v key: %w", alg, err)
	}
	k := newPrivateKey(alg, seed)
	clear(seed)
	return k, nil
}

// Alg returns the key's algorithm.
func (k *PrivateKey) Alg() Alg { return k.alg }

// Public returns the public half of k. The caller owns the returned bytes.
func (k *PrivateKey) Public() PublicKey {
	return PublicKey{Alg: k.pub.Alg, Key: append([]byte(nil), k.pub.Key...)}
}

// sign signs msg. Every algorithm here signs deterministically: ML-DSA uses
// FIPS 204's deterministic variant (rnd = 0^32) rather than the hedged one.
// That keeps the property Ed25519 gave this package: signing the same
// declaration with the same key yields the same envelope and ID, so an
// honest signer that retries after a crash cannot appear to equivocate, and
// fixtures are reproducible.
//
// WARNING: deterministic ML-DSA gives up the hedged variant's extra margin
// against fault-injection and some side-channel attacks on the signer. Keep
// signing keys on hosts where those are not in the threat model.
func (k *PrivateKey) sign(msg []byte) ([]byte, error) {
	switch k.alg {
	case AlgEd25519:
		return ed25519.Sign(k.ed, msg), nil
	case AlgMLDSA65:
		sig := make([]byte, mldsa65.SignatureSize)
		err := mldsa65.SignTo(k.ml, msg, nil, false, sig)
		clearUpper()
		if err != nil {
			return nil, fmt.Errorf("authority: sign: %v: %w", k.alg, err)
		}
		return sig, nil
	case AlgHybrid:
		return hybridSign(k, msg)
	}
	return nil, fmt.Errorf("authority: sign: unsupported algorithm %v", k.alg)
}

// privateKeyFile is the key-file format {1: alg, 2: seed}; see seedSize.
type privateKeyFile struct {
	Alg  Alg    `cbor:"1,keyasint"`
	Seed []byte `cbor:"2,keyasint"`
}

// MarshalPrivateKey encodes k for a key file. The result is secret.
func MarshalPrivateKey(k *PrivateKey) ([]byte, error) {
	var seed []byte
	switch k.alg {
	case AlgEd25519:
		seed = k.ed.Seed()
	case AlgMLDSA65:
		seed = append([]byte(nil), k.mlSeed...)
	case AlgHybrid:
		seed = append(append([]byte(nil), k.mlSeed...), k.ed.Seed()...)
	default:
		return nil, fmt.Errorf("authority: marshal key: unsupported algorithm %v", k.alg)
	}
	defer clear(seed)
	return marshal(privateKeyFile{Alg: k.alg, Seed: seed})
}

// ParsePrivateKey decodes a key file written by MarshalPrivateKey. Errors never
// include the key bytes.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	var f privateKeyFile
	if err := unmarshalStrict(b, &f); err != nil {
		return nil, errors.New("authority: private key: not a fednode key file (CBOR does not decode)")
	}
	defer clear(f.Seed)
	n := seedSize(f.Alg)
	if n == 0 {
		return nil, fmt.Errorf("authority: private key: unsupported algorithm %v", f.Alg)
	}
	if len(f.Seed) != n {
		return nil, fmt.Errorf("authority: private key: %v seed must be %d bytes, got %d", f.Alg, n, len(f.Seed))
	}
	return newPrivateKey(f.Alg, f.Seed), nil
}
