package authority

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/veraison/go-cose"
)

// A lean decoder for the two envelope shapes fednode makes, and nothing else:
//
//	COSE_Sign1_Tagged  18([bstr .cbor {1: alg, 4: kid}, {}, bstr payload, bstr signature])
//	COSE_Sign_Tagged   98([h'', {}, bstr payload, [2*16 [bstr .cbor {1: alg, 4: kid}, {}, bstr signature]]])
//
// Why not go-cose's decoder: it accepts many encodings of one message, so
// canonical form was checked by re-encoding and comparing, which cost more
// than the rest of a verification besides the signature (6–8 µs of a
// credential's ~55 µs). These shapes are fixed, so one pass over the bytes
// can both decode and check that every item is in its shortest form (RFC
// 8949 §4.2.1: preferred-length heads, no indefinite lengths), that the
// header map is exactly {1: alg, 4: kid} in Core Deterministic key order,
// and that nothing follows. Whatever go-cose's encoder makes for these
// shapes is accepted and nothing else is (FuzzLeanDecoder checks this
// against the old decode-and-re-encode parser).
//
// It decodes nothing it does not check, aliases its input (Parse clones
// first), and allocates only the Signature list.

// errLean is the detail of every refusal of the lean decoder; the caller
// wraps it with ErrMalformed and the shape it expected.
var errLean = errors.New("not in the canonical envelope encoding")

// rawSig is one signature of an envelope, as slices of Signed.Raw.
type rawSig struct {
	// prot is the protected header's bstr, head included: exactly what
	// the Sig_structure carries.
	prot []byte
	sig  []byte
}

// cborReader reads canonical CBOR items from b.
type cborReader struct {
	b   []byte
	off int
	err error
}

func (r *cborReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format+" at byte %d", append([]any{errLean}, append(args, r.off)...)...)
	}
}

// expect reads one byte that must be want.
func (r *cborReader) expect(want byte, what string) {
	if r.err != nil {
		return
	}
	if r.off >= len(r.b) || r.b[r.off] != want {
		r.fail("want %s (0x%02x)", what, want)
		return
	}
	r.off++
}

// head reads an item head, refusing indefinite lengths and any argument not
// in its shortest form.
func (r *cborReader) head() (major byte, arg uint64) {
	if r.err != nil {
		return 0, 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0, 0
	}
	ib := r.b[r.off]
	r.off++
	major, ai := ib>>5, ib&0x1f
	var n int
	switch {
	case ai < 24:
		return major, uint64(ai)
	case ai == 24:
		n = 1
	case ai == 25:
		n = 2
	case ai == 26:
		n = 4
	case ai == 27:
		n = 8
	default:
		r.fail("reserved or indefinite-length head 0x%02x", ib)
		return 0, 0
	}
	if len(r.b)-r.off < n {
		r.fail("truncated head")
		return 0, 0
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	var min uint64
	switch n {
	case 1:
		arg, min = uint64(p[0]), 24
	case 2:
		arg, min = uint64(binary.BigEndian.Uint16(p)), 1<<8
	case 4:
		arg, min = uint64(binary.BigEndian.Uint32(p)), 1<<16
	case 8:
		arg, min = binary.BigEndian.Uint64(p), 1<<32
	}
	if arg < min {
		r.fail("argument %d not in its shortest form", arg)
		return 0, 0
	}
	return major, arg
}

// bstr reads a byte string; whole includes its head.
func (r *cborReader) bstr(what string) (content, whole []byte) {
	start := r.off
	major, n := r.head()
	if r.err != nil {
		return nil, nil
	}
	if major != 2 {
		r.fail("%s: want a byte string", what)
		return nil, nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("%s: truncated", what)
		return nil, nil
	}
	content = r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return content, r.b[start:r.off]
}

// header reads a protected header bstr holding exactly {1: alg, 4: kid}.
func (r *cborReader) header() (alg Alg, kid, whole []byte) {
	content, whole := r.bstr("protected header")
	if r.err != nil {
		return 0, nil, nil
	}
	h := cborReader{b: content}
	h.expect(0xa2, "a protected header of exactly {alg, kid}")
	h.expect(0x01, "label 1 (alg) first")
	major, arg := h.head()
	var calg int64
	switch {
	case h.err != nil:
	case major == 0 && arg <= 1<<62:
		calg = int64(arg)
	case major == 1 && arg < 1<<62:
		calg = -1 - int64(arg)
	default:
		h.fail("alg: want an integer")
	}
	h.expect(0x04, "label 4 (kid) second")
	kid, _ = h.bstr("kid")
	if h.err == nil && len(kid) != KeyIDSize {
		h.fail("protected header needs a %d-byte kid", KeyIDSize)
	}
	if h.err == nil && h.off != len(content) {
		h.fail("protected header: bytes after {alg, kid}")
	}
	if h.err != nil {
		r.err = fmt.Errorf("protected header: %w", h.err)
		return 0, nil, nil
	}
	a, err := algFromCOSE(cose.Algorithm(calg))
	if err != nil {
		r.err = err
		return 0, nil, nil
	}
	return a, kid, whole
}

// decodeSign1 decodes a canonical COSE_Sign1_Tagged of ours.
func decodeSign1(b []byte) (payload, payloadWhole []byte, sig rawSig, s Signature, err error) {
	r := cborReader{b: b}
	r.expect(0xd2, "tag 18 (COSE_Sign1_Tagged)")
	r.expect(0x84, "an array of 4")
	s.Alg, s.KeyID, sig.prot = r.header()
	r.expect(0xa0, "an empty unprotected header")
	payload, payloadWhole = r.bstr("payload")
	sig.sig, _ = r.bstr("signature")
	if r.err == nil && len(sig.sig) == 0 {
		r.fail("empty signature")
	}
	if r.err == nil && r.off != len(b) {
		r.fail("bytes after the envelope")
	}
	return payload, payloadWhole, sig, s, r.err
}

// decodeSign decodes a canonical COSE_Sign_Tagged of ours: empty body
// headers and 2 to MaxSignatures signatures in strictly ascending kid order.
func decodeSign(b []byte) (payload, payloadWhole []byte, raws []rawSig, sigs []Signature, err error) {
	r := cborReader{b: b}
	r.expect(0xd8, "tag 98 (COSE_Sign_Tagged)")
	r.expect(0x62, "tag 98 (COSE_Sign_Tagged)")
	r.expect(0x84, "an array of 4")
	r.expect(0x40, "empty body headers: each signature carries its own {alg, kid}")
	r.expect(0xa0, "empty body headers: each signature carries its own {alg, kid}")
	payload, payloadWhole = r.bstr("payload")
	major, n := r.head()
	if r.err == nil && major != 4 {
		r.fail("want the array of signatures")
	}
	if r.err == nil && (n < 2 || n > MaxSignatures) {
		return nil, nil, nil, nil, fmt.Errorf("a COSE_Sign carries 2 to %d signatures, got %d (one signature is a COSE_Sign1)", MaxSignatures, n)
	}
	if r.err != nil {
		return nil, nil, nil, nil, r.err
	}
	raws, sigs = make([]rawSig, n), make([]Signature, n)
	for i := range raws {
		r.expect(0x83, "a COSE_Signature (an array of 3)")
		sigs[i].Alg, sigs[i].KeyID, raws[i].prot = r.header()
		r.expect(0xa0, "an empty unprotected header")
		raws[i].sig, _ = r.bstr("signature")
		if r.err == nil && len(raws[i].sig) == 0 {
			r.fail("empty signature")
		}
		if r.err != nil {
			return nil, nil, nil, nil, fmt.Errorf("signature %d: %w", i, r.err)
		}
		if i > 0 && bytes.Compare(sigs[i-1].KeyID, sigs[i].KeyID) >= 0 {
			return nil, nil, nil, nil, fmt.Errorf("signature %d: kids must be in strictly ascending order (no key signs twice)", i)
		}
	}
	if r.off != len(b) {
		r.fail("bytes after the envelope")
	}
	return payload, payloadWhole, raws, sigs, r.err
}

// Sig_structure prefixes (RFC 9052 §4.4): the array head and context string.
var (
	sigStructure1 = []byte{0x84, 0x6a, 'S', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', '1'}
	sigStructureN = []byte{0x85, 0x69, 'S', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e'}
)

// toBeSigned appends to dst the Sig_structure a signature with protected
// header prot covers: ["Signature1", prot, h”, payload] for a COSE_Sign1,
// ["Signature", h” (body), prot, h”, payload] for a COSE_Sign. External
// AAD is always empty. prot and payload are encoded bstrs, heads included.
func toBeSigned(dst []byte, multi bool, prot, payloadWhole []byte) []byte {
	if multi {
		dst = append(dst, sigStructureN...)
		dst = append(dst, emptyProtected...)
	} else {
		dst = append(dst, sigStructure1...)
	}
	dst = append(dst, prot...)
	dst = append(dst, 0x40)
	return append(dst, payloadWhole...)
}
