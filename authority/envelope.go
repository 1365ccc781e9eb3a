package authority

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/veraison/go-cose"
)

// Errors of parsing and signature checking. Each is returned wrapped, with the
// detail of what was wrong; use errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed, canonical fednode
	// declaration envelope.
	ErrMalformed = errors.New("malformed declaration")
	// ErrBadSignature: the signature does not verify with the key the
	// envelope names, or names no key of its issuer.
	ErrBadSignature = errors.New("bad signature")

	errNonCanonical = errors.New("not in deterministic (canonical) CBOR encoding")
)

// Signed is a parsed declaration envelope whose payload is the deterministic
// CBOR of a Declaration: a COSE_Sign1 (RFC 9052 §4.2) when one key signed it,
// a COSE_Sign (RFC 9052 §4.1, tag 98) when several did (threshold.go). One
// signer always gives a COSE_Sign1, so the IDs of single-signature
// declarations are what they were before COSE_Sign existed.
//
// Invariant: ID == IDOf(Raw), and Raw is the canonical encoding of the rest.
// Invariant: len(Signatures) >= 1; Alg and KeyID are Signatures[0]'s; a
// COSE_Sign has 2 to MaxSignatures signatures in strictly ascending KeyID
// order (so no key signs twice and no reordering changes the ID).
// Signed values are immutable once made; they may be shared between goroutines.
type Signed struct {
	Raw   []byte
	ID    ID
	Decl  Declaration
	Alg   Alg
	KeyID []byte
	// Signatures describes every signature, in envelope order.
	Signatures []Signature

	payload      []byte // the payload's content, a slice of Raw
	payloadWhole []byte // the payload's bstr, head included, a slice of Raw
	// raws holds each signature's protected header and bytes, in
	// envelope order, as slices of Raw. Invariant: len(raws) ==
	// len(Signatures).
	raws  []rawSig
	multi bool // a COSE_Sign, else a COSE_Sign1

	// one1 and raw1 back Signatures and raws of a COSE_Sign1, so that
	// parsing one allocates two slices fewer.
	one1 [1]Signature
	raw1 [1]rawSig
	// cred and holder back Decl.Credential and its HolderKey when Parse's
	// fast path decoded them (credfast.go): two allocations fewer.
	cred   Credential
	holder PublicKey
	// good remembers which of these signatures verified with which key
	// (sigmemo.go, and PreVerify); nil for a Signed not made by Parse.
	good *envMemo
}

// Signature is what an envelope says of one of its signatures: the
// algorithm and key ID in its protected header. Whether it verifies is
// decided against the issuer's keys (VerifyWith, Graph.Check, Verify).
type Signature struct {
	Alg   Alg
	KeyID []byte
}

// Sign makes a signed envelope of d with k. The declaration is validated
// first. Ed25519 signatures are deterministic, so signing the same
// declaration with the same key always yields the same ID.
func Sign(d Declaration, k *PrivateKey) (*Signed, error) { return SignMulti(d, k) }

// SignMulti makes a signed envelope of d with every key given: a COSE_Sign1
// for one distinct key (exactly what Sign makes), else a COSE_Sign with one
// signature per distinct key, in ascending key-ID order. A key given twice
// signs once: a threshold counts keys, not signatures.
func SignMulti(d Declaration, keys ...*PrivateKey) (*Signed, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("authority: sign %v: %w", d.Kind, err)
	}
	keys = distinctKeys(keys)
	if len(keys) == 0 {
		return nil, fmt.Errorf("authority: sign %v: no signing key", d.Kind)
	}
	if len(keys) > MaxSignatures {
		return nil, fmt.Errorf("authority: sign %v: %d keys, over the %d signatures an envelope may carry", d.Kind, len(keys), MaxSignatures)
	}
	payload, err := marshal(&d)
	if err != nil {
		return nil, fmt.Errorf("authority: encode %v: %w", d.Kind, err)
	}
	var raw []byte
	if len(keys) == 1 {
		raw, err = signEnvelope(payload, keys[0])
	} else {
		raw, err = signMultiEnvelope(payload, keys)
	}
	if err != nil {
		return nil, fmt.Errorf("authority: sign %v: %w", d.Kind, err)
	}
	if len(raw) > MaxDeclarationSize {
		return nil, fmt.Errorf("authority: sign %v: envelope is %d bytes, over the %d-byte limit", d.Kind, len(raw), MaxDeclarationSize)
	}
	// Parse what we made, so that a signed value is exactly what a receiver sees.
	return Parse(raw)
}

// distinctKeys drops nil keys and repeats of a key ID and sorts the rest by
// key ID, the order a COSE_Sign must have.
func distinctKeys(keys []*PrivateKey) []*PrivateKey {
	out := make([]*PrivateKey, 0, len(keys))
	for _, k := range keys {
		if k == nil || slices.ContainsFunc(out, func(o *PrivateKey) bool { return bytes.Equal(o.pub.KeyID(), k.pub.KeyID()) }) {
			continue
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *PrivateKey) int { return bytes.Compare(a.pub.KeyID(), b.pub.KeyID()) })
	return out
}

// Parse decodes an envelope without checking its signatures (that needs the
// issuer's keys: see Graph.Apply and Verify). It refuses anything that is not
// the one canonical encoding, so that no relay can change a declaration's ID.
func Parse(b []byte) (*Signed, error) {
	if len(b) > MaxDeclarationSize {
		return nil, fmt.Errorf("authority: %w: %d bytes, over the %d-byte limit", ErrMalformed, len(b), MaxDeclarationSize)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("authority: %w: empty input", ErrMalformed)
	}
	// Signed is immutable: neither Raw nor the decoded payload may alias the
	// caller's buffer.
	b = bytes.Clone(b)
	// The Signed and its memo are one allocation (they live and die
	// together).
	sm := &signedWithMemo{}
	s := &sm.s
	s.Raw, s.good = b, &sm.m
	var err error
	if bytes.HasPrefix(b, coseSignPrefix) {
		s.multi = true
		s.payload, s.payloadWhole, s.raws, s.Signatures, err = decodeSign(b)
		if err != nil {
			return nil, fmt.Errorf("authority: %w: not a canonical COSE_Sign envelope: %v", ErrMalformed, err)
		}
	} else {
		s.payload, s.payloadWhole, s.raw1[0], s.one1[0], err = decodeSign1(b)
		if err != nil {
			return nil, fmt.Errorf("authority: %w: not a canonical COSE_Sign1 envelope: %v", ErrMalformed, err)
		}
		s.Signatures, s.raws = s.one1[:], s.raw1[:]
	}
	s.Alg, s.KeyID = s.Signatures[0].Alg, s.Signatures[0].KeyID
	if !decodeCredentialFast(s.payload, &s.Decl, &s.cred, &s.holder) {
		if err := unmarshalStrict(s.payload, &s.Decl); err != nil {
			return nil, fmt.Errorf("authority: %w: payload: %v", ErrMalformed, err)
		}
	}
	if err := s.Decl.validate(); err != nil {
		return nil, fmt.Errorf("authority: %w: %v: %v", ErrMalformed, s.Decl.Kind, err)
	}
	s.ID = IDOf(b)
	return s, nil
}

// coseSignPrefix starts every COSE_Sign_Tagged: tag 98, an array of four.
var coseSignPrefix = []byte{0xd8, 0x62, 0x84}

// emptyProtected is the encoding of an empty protected header (a zero-length
// bstr), the only body header a COSE_Sign of ours has: everything a
// signature says of itself is in its own protected header.
var emptyProtected = []byte{0x40}

// signMultiEnvelope makes a canonical COSE_Sign of payload with keys, which
// must be distinct and in ascending key-ID order (distinctKeys).
func signMultiEnvelope(payload []byte, keys []*PrivateKey) ([]byte, error) {
	msg := cose.SignMessage{
		Headers: cose.Headers{Protected: cose.ProtectedHeader{}, Unprotected: cose.UnprotectedHeader{}},
		Payload: payload,
	}
	signers := make([]cose.Signer, len(keys))
	for i, k := range keys {
		calg, err := k.alg.coseAlg()
		if err != nil {
			return nil, err
		}
		msg.Signatures = append(msg.Signatures, &cose.Signature{Headers: cose.Headers{
			Protected:   cose.ProtectedHeader{cose.HeaderLabelAlgorithm: calg, cose.HeaderLabelKeyID: k.pub.KeyID()},
			Unprotected: cose.UnprotectedHeader{},
		}})
		signers[i] = signer{k}
	}
	if err := msg.Sign(nil, nil, signers...); err != nil {
		return nil, err
	}
	return msg.MarshalCBOR()
}

// verifySignatures checks every signature of s against the key lookup finds
// for its kid, and returns the distinct keys that signed. A kid lookup does
// not know, a key whose algorithm is not the one the signature's header
// names (no algorithm substitution), or a signature that does not verify
// fails the whole envelope: a threshold counts only envelopes whose every
// signature is good. m, when not empty, remembers signatures that verified
// (cache.go): it changes the cost, never the answer. what names s in
// errors; "" names it by kind and ID (only formatted on an error: a decision
// that passes builds no message it does not show).
func (s *Signed) verifySignatures(what string, lookup func(kid []byte) (PublicKey, bool), m sigMemo) ([]PublicKey, error) {
	name := func() string {
		if what == "" {
			return s.what()
		}
		return what
	}
	var keys []PublicKey
	for i, sig := range s.Signatures {
		k, ok := lookup(sig.KeyID)
		if !ok {
			return nil, fmt.Errorf("authority: %w: %s is signed with key %x, which its issuer never declared", ErrBadSignature, name(), sig.KeyID)
		}
		if k.Alg != sig.Alg {
			return nil, fmt.Errorf("authority: %w: envelope says %v but key %x is %v", ErrBadSignature, sig.Alg, sig.KeyID, k.Alg)
		}
		switch {
		case s.good.has(i, k):
			// These bytes verified with this key before: the answer is
			// the same (sigmemo.go); only the cost differs.
			if m.record {
				m.keys[i] = k
			}
		case m.verify(s, i, k):
			s.good.add(i, k)
		default:
			return nil, fmt.Errorf("authority: %w: %v signature of %s by key %x does not verify", ErrBadSignature, sig.Alg, name(), sig.KeyID)
		}
		// Parse admits no kid twice; count distinct keys all the same, so
		// that the count never rests on that alone.
		if !slices.ContainsFunc(s.Signatures[:i], func(o Signature) bool { return bytes.Equal(o.KeyID, sig.KeyID) }) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// VerifyWith checks every signature against the key among keys whose ID it
// names. The key's algorithm must be the signature's: an envelope can never
// choose another algorithm than its key was declared with. It counts
// nothing: see VerifyThreshold, and Graph.Check and Verify, which decide
// which keys may sign what.
func (s *Signed) VerifyWith(keys []PublicKey) error {
	rs := newRootSet(keys, 0, 0, ID{}, 0)
	_, err := s.verifySignatures("", rs.find, sigMemo{})
	return err
}

// VerifyThreshold is VerifyWith plus a count: at least threshold distinct
// keys among keys must have signed, else ErrThresholdNotMet.
func (s *Signed) VerifyThreshold(keys []PublicKey, threshold int) error {
	rs := newRootSet(keys, threshold, 0, ID{}, 0)
	signers, err := s.verifySignatures("", rs.find, sigMemo{})
	if err != nil {
		return err
	}
	if len(signers) < threshold {
		return fmt.Errorf("authority: %w: %s has %d valid signature(s) by distinct keys; %d are needed", ErrThresholdNotMet, s.what(), len(signers), threshold)
	}
	return nil
}

func (s *Signed) what() string { return s.Decl.Kind.String() + " " + s.ID.Short() }

// toBeSigned returns the Sig_structure signature i of s covers.
func (s *Signed) toBeSigned(i int) []byte {
	r := s.raws[i]
	return toBeSigned(make([]byte, 0, len(sigStructureN)+1+len(r.prot)+1+len(s.payloadWhole)), s.multi, r.prot, s.payloadWhole)
}

// ToBeSigned returns the bytes signature i of s covers: its COSE
// Sig_structure (RFC 9052 §4.4). The caller owns the result. It panics if i
// is out of range. For tools and benchmarks that check a signature by hand
// (PublicKey.VerifyUncached); Verify and the graph need nothing of it.
func (s *Signed) ToBeSigned(i int) []byte { return s.toBeSigned(i) }

// SignatureBytes returns signature i's bytes. The caller must not modify
// them. It panics if i is out of range.
func (s *Signed) SignatureBytes(i int) []byte { return s.raws[i].sig }

// signEnvelope makes a canonical COSE_Sign1 of payload with k.
func signEnvelope(payload []byte, k *PrivateKey) ([]byte, error) {
	calg, err := k.alg.coseAlg()
	if err != nil {
		return nil, err
	}
	msg := cose.Sign1Message{
		Headers: cose.Headers{
			Protected: cose.ProtectedHeader{
				cose.HeaderLabelAlgorithm: calg,
				cose.HeaderLabelKeyID:     k.Public().KeyID(),
			},
			Unprotected: cose.UnprotectedHeader{},
		},
		Payload: payload,
	}
	if err := msg.Sign(nil, nil, signer{k}); err != nil {
		return nil, err
	}
	return msg.MarshalCBOR()
}

// Sealed is a signed blob that is not a declaration (a bundle, a receipt):
// the same canonical COSE_Sign1 envelope around an opaque payload.
type Sealed struct {
	Raw     []byte
	Payload []byte
	Alg     Alg
	KeyID   []byte

	payloadWhole []byte
	raw          rawSig
}

// Seal signs payload with k.
func Seal(payload []byte, k *PrivateKey) ([]byte, error) {
	b, err := signEnvelope(payload, k)
	if err != nil {
		return nil, fmt.Errorf("authority: seal: %w", err)
	}
	return b, nil
}

// ParseSealed decodes a sealed blob of at most max bytes without checking its
// signature.
func ParseSealed(b []byte, max int) (*Sealed, error) {
	if len(b) > max {
		return nil, fmt.Errorf("authority: %w: %d bytes, over the %d-byte limit", ErrMalformed, len(b), max)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("authority: %w: empty input", ErrMalformed)
	}
	b = bytes.Clone(b)
	s := &Sealed{Raw: b}
	var sig Signature
	var err error
	s.Payload, s.payloadWhole, s.raw, sig, err = decodeSign1(b)
	if err != nil {
		return nil, fmt.Errorf("authority: %w: not a canonical COSE_Sign1 envelope: %v", ErrMalformed, err)
	}
	s.Alg, s.KeyID = sig.Alg, sig.KeyID
	return s, nil
}

// VerifyWith checks the seal against the key among keys that it names.
func (s *Sealed) VerifyWith(keys []PublicKey) error {
	for _, k := range keys {
		if !bytes.Equal(k.KeyID(), s.KeyID) {
			continue
		}
		if k.Alg != s.Alg {
			return fmt.Errorf("authority: %w: envelope says %v but key %x is %v", ErrBadSignature, s.Alg, s.KeyID, k.Alg)
		}
		tbs := toBeSigned(nil, false, s.raw.prot, s.payloadWhole)
		if !k.verify(tbs, s.raw.sig) {
			return fmt.Errorf("authority: %w: %v signature of sealed payload does not verify", ErrBadSignature, s.Alg)
		}
		return nil
	}
	return fmt.Errorf("authority: %w: sealed payload is signed with key %x, which its issuer never declared", ErrBadSignature, s.KeyID)
}

// signer adapts PrivateKey to cose.Signer.
type signer struct{ k *PrivateKey }

func (s signer) Algorithm() cose.Algorithm {
	a, _ := s.k.alg.coseAlg()
	return a
}

func (s signer) Sign(_ io.Reader, content []byte) ([]byte, error) { return s.k.sign(content) }

// verifier adapts PublicKey to cose.Verifier, for checking messages go-cose
// decoded (the external COSE examples in the tests); Parse and Verify check
// signatures over the Sig_structure directly (toBeSigned).
type verifier struct{ k PublicKey }

func (v verifier) Algorithm() cose.Algorithm {
	a, _ := v.k.Alg.coseAlg()
	return a
}

func (v verifier) Verify(content, sig []byte) error {
	if !v.k.verify(content, sig) {
		return cose.ErrVerification
	}
	return nil
}
