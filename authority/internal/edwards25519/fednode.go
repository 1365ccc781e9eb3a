// fednode's additions to this copy of crypto/internal/fips140/edwards25519
// (Go 1.26, BSD licence: see LICENSE). The rest of the package is the
// standard library's code unchanged but for imports (crypto/subtle and
// encoding/binary for the FIPS module's internal helpers) and the split of
// VarTimeDoubleScalarBaseMult in scalarmult.go.

package edwards25519

import (
	"bytes"
	"crypto/sha512"
	"errors"
)

// PublicKey is a decoded Ed25519 public key: its encoding and the table of
// multiples of -A that verification looks up, so that a key checked many
// times is decompressed (a square root) and tabulated once. Immutable once
// made; safe for concurrent use.
type PublicKey struct {
	aBytes      [32]byte
	minusATable nafLookupTable5
}

// Sizes of Ed25519 keys and signatures.
const (
	PublicKeySize = 32
	SignatureSize = 64
)

// ErrPublicKey: the bytes are not an Ed25519 public key (wrong length, or
// not the encoding of a point of the curve).
var ErrPublicKey = errors.New("edwards25519: bad public key")

// NewPublicKey decodes an Ed25519 public key exactly as crypto/ed25519's
// verification does (SetBytes: a point of the curve, non-canonical
// encodings of y accepted as the standard library accepts them).
func NewPublicKey(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, ErrPublicKey
	}
	var a Point
	if _, err := a.SetBytes(b); err != nil {
		return nil, ErrPublicKey
	}
	k := new(PublicKey)
	copy(k.aBytes[:], b)
	var minusA Point
	minusA.Negate(&a)
	k.minusATable.FromP3(&minusA)
	return k, nil
}

// Bytes returns the key's encoding.
func (k *PublicKey) Bytes() []byte { return bytes.Clone(k.aBytes[:]) }

// Verify reports whether sig is a valid pure Ed25519 signature of msg under
// k: the very checks of crypto/ed25519.Verify (RFC 8032 §5.1.7,
// cofactorless: S canonical, and R == [S]B - [k]A compared as encodings,
// k = SHA-512(R || A || M) mod L), the computation of
// crypto/internal/fips140/ed25519.verifyWithDom for the pure variant.
func (k *PublicKey) Verify(msg, sig []byte) bool {
	if len(sig) != SignatureSize || sig[63]&224 != 0 {
		return false
	}
	kh := sha512.New()
	kh.Write(sig[:32])
	kh.Write(k.aBytes[:])
	kh.Write(msg)
	var digest [sha512.Size]byte
	kh.Sum(digest[:0])
	var h, s Scalar
	if _, err := h.SetUniformBytes(digest[:]); err != nil {
		panic("edwards25519: internal error: setting scalar failed")
	}
	if _, err := s.SetCanonicalBytes(sig[32:]); err != nil {
		return false
	}
	// [S]B = R + [k]A --> [k](-A) + [S]B = R
	var r Point
	r.varTimeDoubleScalarBaseMultTable(&h, &k.minusATable, &s)
	var enc [32]byte
	return bytes.Equal(sig[:32], r.bytes(&enc))
}
