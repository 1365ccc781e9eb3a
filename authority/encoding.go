package authority

import (
	"github.com/fxamacker/cbor/v2"
)

// Why CBOR and not JSON: signed bytes need exactly one encoding. CBOR Core
// Deterministic Encoding (RFC 8949 §4.2) gives that, with integer map keys
// (`keyasint`) that stay stable when a field is renamed, and COSE (RFC 9052),
// the envelope every declaration travels in, is CBOR already. A decoder that
// accepted several encodings of one declaration would let a relay change a
// declaration's ID without changing its meaning, which would defeat
// content addressing and equivocation detection; so decoding is strict:
// the envelope is read by a decoder of its one canonical shape (cosedec.go),
// and the payload either by the credential fast path (credfast.go), which
// takes only the canonical encoding, or by unmarshalStrict, which decodes,
// re-encodes and compares.
var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

// Bounds on decoding untrusted bytes.
const (
	// MaxDeclarationSize bounds one encoded envelope.
	MaxDeclarationSize = 64 << 10
	maxNested          = 8
	maxArrayElements   = 256
	maxMapPairs        = 64
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   maxNested,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxMapPairs,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// marshal encodes v deterministically.
func marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// unmarshalStrict decodes b into v and requires b to be the deterministic
// encoding of what it decoded to.
func unmarshalStrict(b []byte, v any) error {
	if err := decMode.Unmarshal(b, v); err != nil {
		return err
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return err
	}
	if string(again) != string(b) {
		return errNonCanonical
	}
	return nil
}
