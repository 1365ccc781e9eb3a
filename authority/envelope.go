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

	payload []byte
	sign1   *cose.Sign1Message // set for a COSE_Sign1
	multi   *cose.SignMessage  // set for a COSE_Sign
	// good remembers which of these signatures verified with which key
	// (sigmemo.go); nil for a Signed not made by Parse.
	good *sigMemo
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
	// Signed is immutable: neither Raw nor the decoded payload may alias the
	// caller's buffer.
	b = bytes.Clone(b)
	s := &Signed{Raw: b, ID: IDOf(b), good: &sigMemo{}}
	if bytes.HasPrefix(b, coseSignPrefix) {
		m, sigs, err := parseMultiEnvelope(b)
		if err != nil {
			return nil, err
		}
		s.multi, s.payload, s.Signatures = m, m.Payload, sigs
	} else {
		env, err := parseEnvelope(b, MaxDeclarationSize)
		if err != nil {
			return nil, err
		}
		s.sign1, s.payload = &env.msg, env.msg.Payload
		s.Signatures = []Signature{{Alg: env.alg, KeyID: env.kid}}
	}
	s.Alg, s.KeyID = s.Signatures[0].Alg, s.Signatures[0].KeyID
	if err := unmarshalStrict(s.payload, &s.Decl); err != nil {
		return nil, fmt.Errorf("authority: %w: payload: %v", ErrMalformed, err)
	}
	if err := s.Decl.validate(); err != nil {
		return nil, fmt.Errorf("authority: %w: %v: %v", ErrMalformed, s.Decl.Kind, err)
	}
	return s, nil
}

// coseSignPrefix starts every COSE_Sign_Tagged: tag 98, an array of four.
var coseSignPrefix = []byte{0xd8, 0x62, 0x84}

// emptyProtected is the encoding of an empty protected header (a zero-length
// bstr), the only body header a COSE_Sign of ours has: everything a
// signature says of itself is in its own protected header.
var emptyProtected = []byte{0x40}

// parseMultiEnvelope decodes a canonical COSE_Sign: empty body headers, and
// 2 to MaxSignatures signatures, each with exactly {alg, kid} protected and
// nothing unprotected, in strictly ascending kid order.
func parseMultiEnvelope(b []byte) (*cose.SignMessage, []Signature, error) {
	var m cose.SignMessage
	if err := m.UnmarshalCBOR(b); err != nil {
		return nil, nil, fmt.Errorf("authority: %w: not a COSE_Sign envelope: %v", ErrMalformed, err)
	}
	if len(m.Headers.Protected) != 0 || len(m.Headers.Unprotected) != 0 {
		return nil, nil, fmt.Errorf("authority: %w: a COSE_Sign's body headers must be empty: each signature carries its own {alg, kid}", ErrMalformed)
	}
	if len(m.Signatures) < 2 || len(m.Signatures) > MaxSignatures {
		return nil, nil, fmt.Errorf("authority: %w: a COSE_Sign carries 2 to %d signatures, got %d (one signature is a COSE_Sign1)", ErrMalformed, MaxSignatures, len(m.Signatures))
	}
	canon := cose.SignMessage{
		Headers: cose.Headers{Protected: cose.ProtectedHeader{}, Unprotected: cose.UnprotectedHeader{}},
		Payload: m.Payload,
	}
	sigs := make([]Signature, len(m.Signatures))
	for i, sig := range m.Signatures {
		alg, calg, kid, err := signatureHeader(sig.Headers)
		if err != nil {
			return nil, nil, fmt.Errorf("authority: %w: signature %d: %v", ErrMalformed, i, err)
		}
		if i > 0 && bytes.Compare(sigs[i-1].KeyID, kid) >= 0 {
			return nil, nil, fmt.Errorf("authority: %w: signature %d: kids must be in strictly ascending order (no key signs twice)", ErrMalformed, i)
		}
		sigs[i] = Signature{Alg: alg, KeyID: kid}
		canon.Signatures = append(canon.Signatures, &cose.Signature{
			Headers:   cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: calg, cose.HeaderLabelKeyID: kid}, Unprotected: cose.UnprotectedHeader{}},
			Signature: sig.Signature,
		})
	}
	again, err := canon.MarshalCBOR()
	if err != nil || !bytes.Equal(again, b) {
		return nil, nil, fmt.Errorf("authority: %w: envelope %v", ErrMalformed, errNonCanonical)
	}
	return &m, sigs, nil
}

// signatureHeader reads the {alg, kid} of a signature's headers and refuses
// anything else in them.
func signatureHeader(h cose.Headers) (Alg, cose.Algorithm, []byte, error) {
	calg, err := h.Protected.Algorithm()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("protected header: %v", err)
	}
	alg, err := algFromCOSE(calg)
	if err != nil {
		return 0, 0, nil, err
	}
	kid, ok := h.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok || len(kid) != KeyIDSize {
		return 0, 0, nil, fmt.Errorf("protected header needs a %d-byte kid", KeyIDSize)
	}
	if len(h.Protected) != 2 || len(h.Unprotected) != 0 {
		return 0, 0, nil, errors.New("headers must be exactly {alg, kid} protected and nothing unprotected")
	}
	return alg, calg, kid, nil
}

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
// signature is good.
func (s *Signed) verifySignatures(what string, lookup func(kid []byte) (PublicKey, bool)) ([]PublicKey, error) {
	var keys []PublicKey
	for i, sig := range s.Signatures {
		k, ok := lookup(sig.KeyID)
		if !ok {
			return nil, fmt.Errorf("authority: %w: %s is signed with key %x, which its issuer never declared", ErrBadSignature, what, sig.KeyID)
		}
		if k.Alg != sig.Alg {
			return nil, fmt.Errorf("authority: %w: envelope says %v but key %x is %v", ErrBadSignature, sig.Alg, sig.KeyID, k.Alg)
		}
		var err error
		switch {
		case s.good.has(i, k):
			// These bytes verified with this key before: the answer is
			// the same (sigmemo.go); only the cost differs.
		case s.multi != nil:
			err = s.multi.Signatures[i].Verify(verifier{k}, emptyProtected, s.payload, nil)
		default:
			err = s.sign1.Verify(nil, verifier{k})
		}
		if err == nil {
			s.good.add(i, k)
		}
		if err != nil {
			return nil, fmt.Errorf("authority: %w: %v signature of %s by key %x does not verify", ErrBadSignature, sig.Alg, what, sig.KeyID)
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
	_, err := s.verifySignatures(s.what(), rs.find)
	return err
}

// VerifyThreshold is VerifyWith plus a count: at least threshold distinct
// keys among keys must have signed, else ErrThresholdNotMet.
func (s *Signed) VerifyThreshold(keys []PublicKey, threshold int) error {
	rs := newRootSet(keys, threshold, 0, ID{}, 0)
	signers, err := s.verifySignatures(s.what(), rs.find)
	if err != nil {
		return err
	}
	if len(signers) < threshold {
		return fmt.Errorf("authority: %w: %s has %d valid signature(s) by distinct keys; %d are needed", ErrThresholdNotMet, s.what(), len(signers), threshold)
	}
	return nil
}

func (s *Signed) what() string { return s.Decl.Kind.String() + " " + s.ID.Short() }

type envelope struct {
	msg cose.Sign1Message
	alg Alg
	kid []byte
}

// parseEnvelope decodes a canonical COSE_Sign1 with exactly {alg, kid} in its
// protected header and nothing unprotected.
func parseEnvelope(b []byte, max int) (envelope, error) {
	var e envelope
	if len(b) == 0 {
		return e, fmt.Errorf("authority: %w: empty input", ErrMalformed)
	}
	if len(b) > max {
		return e, fmt.Errorf("authority: %w: %d bytes, over the %d-byte limit", ErrMalformed, len(b), max)
	}
	if err := e.msg.UnmarshalCBOR(b); err != nil {
		return e, fmt.Errorf("authority: %w: not a COSE_Sign1 envelope: %v", ErrMalformed, err)
	}
	calg, err := e.msg.Headers.Protected.Algorithm()
	if err != nil {
		return e, fmt.Errorf("authority: %w: protected header: %v", ErrMalformed, err)
	}
	if e.alg, err = algFromCOSE(calg); err != nil {
		return e, fmt.Errorf("authority: %w: %v", ErrMalformed, err)
	}
	kid, ok := e.msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok || len(kid) != KeyIDSize {
		return e, fmt.Errorf("authority: %w: protected header needs a %d-byte kid", ErrMalformed, KeyIDSize)
	}
	e.kid = kid
	if len(e.msg.Headers.Protected) != 2 || len(e.msg.Headers.Unprotected) != 0 {
		return e, fmt.Errorf("authority: %w: headers must be exactly {alg, kid} protected and nothing unprotected", ErrMalformed)
	}
	// The canonical re-encoding must give back the input exactly.
	canon := cose.Sign1Message{
		Headers: cose.Headers{
			Protected:   cose.ProtectedHeader{cose.HeaderLabelAlgorithm: calg, cose.HeaderLabelKeyID: kid},
			Unprotected: cose.UnprotectedHeader{},
		},
		Payload:   e.msg.Payload,
		Signature: e.msg.Signature,
	}
	again, err := canon.MarshalCBOR()
	if err != nil || !bytes.Equal(again, b) {
		return e, fmt.Errorf("authority: %w: envelope %v", ErrMalformed, errNonCanonical)
	}
	return e, nil
}

// verifyEnvelope checks msg's signature against the key among keys named kid.
func verifyEnvelope(msg *cose.Sign1Message, alg Alg, kid []byte, keys []PublicKey, what string) error {
	for _, k := range keys {
		if !bytes.Equal(k.KeyID(), kid) {
			continue
		}
		if k.Alg != alg {
			return fmt.Errorf("authority: %w: envelope says %v but key %x is %v", ErrBadSignature, alg, kid, k.Alg)
		}
		if err := msg.Verify(nil, verifier{k}); err != nil {
			return fmt.Errorf("authority: %w: %v signature of %s does not verify", ErrBadSignature, alg, what)
		}
		return nil
	}
	return fmt.Errorf("authority: %w: %s is signed with key %x, which its issuer never declared", ErrBadSignature, what, kid)
}

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

	msg cose.Sign1Message
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
	b = bytes.Clone(b)
	e, err := parseEnvelope(b, max)
	if err != nil {
		return nil, err
	}
	return &Sealed{Raw: b, Payload: e.msg.Payload, Alg: e.alg, KeyID: e.kid, msg: e.msg}, nil
}

// VerifyWith checks the seal against the key among keys that it names.
func (s *Sealed) VerifyWith(keys []PublicKey) error {
	return verifyEnvelope(&s.msg, s.Alg, s.KeyID, keys, "sealed payload")
}

// signer adapts PrivateKey to cose.Signer.
type signer struct{ k *PrivateKey }

func (s signer) Algorithm() cose.Algorithm {
	a, _ := s.k.alg.coseAlg()
	return a
}

func (s signer) Sign(_ io.Reader, content []byte) ([]byte, error) { return s.k.sign(content) }

// verifier adapts PublicKey to cose.Verifier.
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
