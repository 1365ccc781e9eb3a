package authority

import (
	"bytes"
	"errors"
	"fmt"
	"io"

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

// Signed is a parsed declaration envelope: a COSE_Sign1 (RFC 9052) whose
// payload is the deterministic CBOR of a Declaration.
//
// Invariant: ID == IDOf(Raw), and Raw is the canonical encoding of the rest.
// Signed values are immutable once made; they may be shared between goroutines.
type Signed struct {
	Raw   []byte
	ID    ID
	Decl  Declaration
	Alg   Alg
	KeyID []byte

	msg cose.Sign1Message
}

// Sign makes a signed envelope of d with k. The declaration is validated
// first. Ed25519 signatures are deterministic, so signing the same
// declaration with the same key always yields the same ID.
func Sign(d Declaration, k *PrivateKey) (*Signed, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("authority: sign %v: %w", d.Kind, err)
	}
	payload, err := marshal(&d)
	if err != nil {
		return nil, fmt.Errorf("authority: encode %v: %w", d.Kind, err)
	}
	raw, err := signEnvelope(payload, k)
	if err != nil {
		return nil, fmt.Errorf("authority: sign %v: %w", d.Kind, err)
	}
	if len(raw) > MaxDeclarationSize {
		return nil, fmt.Errorf("authority: sign %v: envelope is %d bytes, over the %d-byte limit", d.Kind, len(raw), MaxDeclarationSize)
	}
	// Parse what we made, so that a signed value is exactly what a receiver sees.
	return Parse(raw)
}

// Parse decodes an envelope without checking its signature (that needs the
// issuer's keys: see Graph.Apply and Verify). It refuses anything that is not
// the one canonical encoding, so that no relay can change a declaration's ID.
func Parse(b []byte) (*Signed, error) {
	if len(b) > MaxDeclarationSize {
		return nil, fmt.Errorf("authority: %w: %d bytes, over the %d-byte limit", ErrMalformed, len(b), MaxDeclarationSize)
	}
	// Signed is immutable: neither Raw nor the decoded payload may alias the
	// caller's buffer.
	b = bytes.Clone(b)
	env, err := parseEnvelope(b, MaxDeclarationSize)
	if err != nil {
		return nil, err
	}
	s := &Signed{Raw: b, ID: IDOf(b), Alg: env.alg, KeyID: env.kid, msg: env.msg}
	if err := unmarshalStrict(env.msg.Payload, &s.Decl); err != nil {
		return nil, fmt.Errorf("authority: %w: payload: %v", ErrMalformed, err)
	}
	if err := s.Decl.validate(); err != nil {
		return nil, fmt.Errorf("authority: %w: %v: %v", ErrMalformed, s.Decl.Kind, err)
	}
	return s, nil
}

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

// VerifyWith checks the signature against the key among keys whose ID the
// envelope names. The key's algorithm must be the envelope's: an envelope can
// never choose another algorithm than its key was declared with.
func (s *Signed) VerifyWith(keys []PublicKey) error {
	return verifyEnvelope(&s.msg, s.Alg, s.KeyID, keys, s.Decl.Kind.String()+" "+s.ID.Short())
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
