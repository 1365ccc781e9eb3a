package authority

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/veraison/go-cose"
)

// Alg names a signature algorithm. It is a field of every key and every
// signature rather than an assumption, so that ML-DSA-65 and hybrid keys can be
// added without changing the declaration format.
type Alg uint8

const (
	// AlgEd25519 is Ed25519 (RFC 8032), COSE alg EdDSA (-8).
	AlgEd25519 Alg = 1
)

// String returns the name used in config files and the CLI.
func (a Alg) String() string {
	switch a {
	case AlgEd25519:
		return "ed25519"
	default:
		return fmt.Sprintf("alg(%d)", uint8(a))
	}
}

// ParseAlg parses an algorithm name as String prints it.
func ParseAlg(s string) (Alg, error) {
	switch s {
	case "ed25519", "":
		return AlgEd25519, nil
	}
	return 0, fmt.Errorf("authority: unknown algorithm %q (supported: ed25519)", s)
}

// coseAlg is the COSE algorithm identifier carried in the protected header.
func (a Alg) coseAlg() (cose.Algorithm, error) {
	switch a {
	case AlgEd25519:
		return cose.AlgorithmEdDSA, nil
	}
	return 0, fmt.Errorf("authority: %v has no COSE algorithm", a)
}

func algFromCOSE(c cose.Algorithm) (Alg, error) {
	switch c {
	case cose.AlgorithmEdDSA:
		return AlgEd25519, nil
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

// PublicKey is a declared public key.
type PublicKey struct {
	Alg Alg    `cbor:"1,keyasint"`
	Key []byte `cbor:"2,keyasint"`
}

// KeyID is the first KeyIDSize bytes of SHA-256(alg || key). Signatures name
// the key they were made with by this ID (the COSE kid).
func (k PublicKey) KeyID() []byte {
	h := sha256.New()
	h.Write([]byte{byte(k.Alg)})
	h.Write(k.Key)
	return h.Sum(nil)[:KeyIDSize]
}

// validate checks that k is a well-formed key of a supported algorithm.
func (k PublicKey) validate() error {
	switch k.Alg {
	case AlgEd25519:
		if len(k.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("ed25519 public key: want %d bytes, got %d", ed25519.PublicKeySize, len(k.Key))
		}
		return nil
	}
	return fmt.Errorf("public key: unsupported algorithm %v", k.Alg)
}

// verify checks sig over msg with k.
func (k PublicKey) verify(msg, sig []byte) bool {
	switch k.Alg {
	case AlgEd25519:
		return len(k.Key) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(k.Key), msg, sig)
	}
	return false
}

// PrivateKey is a signing key. Its bytes are secret: they are written to key
// files with mode 0600 and never logged.
type PrivateKey struct {
	alg Alg
	ed  ed25519.PrivateKey
}

// GenerateKey makes a new key of alg from rand.
func GenerateKey(alg Alg, rand io.Reader) (*PrivateKey, error) {
	switch alg {
	case AlgEd25519:
		_, priv, err := ed25519.GenerateKey(rand)
		if err != nil {
			return nil, fmt.Errorf("authority: generate ed25519 key: %w", err)
		}
		return &PrivateKey{alg: alg, ed: priv}, nil
	}
	return nil, fmt.Errorf("authority: generate key: unsupported algorithm %v", alg)
}

// Alg returns the key's algorithm.
func (k *PrivateKey) Alg() Alg { return k.alg }

// Public returns the public half of k.
func (k *PrivateKey) Public() PublicKey {
	switch k.alg {
	case AlgEd25519:
		return PublicKey{Alg: k.alg, Key: append([]byte(nil), k.ed.Public().(ed25519.PublicKey)...)}
	}
	return PublicKey{}
}

// sign signs msg.
func (k *PrivateKey) sign(msg []byte) ([]byte, error) {
	switch k.alg {
	case AlgEd25519:
		return ed25519.Sign(k.ed, msg), nil
	}
	return nil, fmt.Errorf("authority: sign: unsupported algorithm %v", k.alg)
}

type privateKeyFile struct {
	Alg  Alg    `cbor:"1,keyasint"`
	Seed []byte `cbor:"2,keyasint"`
}

// MarshalPrivateKey encodes k for a key file. The result is secret.
func MarshalPrivateKey(k *PrivateKey) ([]byte, error) {
	switch k.alg {
	case AlgEd25519:
		return marshal(privateKeyFile{Alg: k.alg, Seed: k.ed.Seed()})
	}
	return nil, fmt.Errorf("authority: marshal key: unsupported algorithm %v", k.alg)
}

// ParsePrivateKey decodes a key file written by MarshalPrivateKey. Errors never
// include the key bytes.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	var f privateKeyFile
	if err := unmarshalStrict(b, &f); err != nil {
		return nil, errors.New("authority: private key: not a fednode key file (CBOR does not decode)")
	}
	switch f.Alg {
	case AlgEd25519:
		if len(f.Seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("authority: private key: ed25519 seed must be %d bytes, got %d", ed25519.SeedSize, len(f.Seed))
		}
		return &PrivateKey{alg: f.Alg, ed: ed25519.NewKeyFromSeed(f.Seed)}, nil
	}
	return nil, fmt.Errorf("authority: private key: unsupported algorithm %v", f.Alg)
}
