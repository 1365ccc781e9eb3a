package authority

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Bounds on a proof of possession.
const (
	// MaxProofSize bounds an encoded proof: room for a hybrid signature
	// (3,373 bytes) and the largest challenge.
	MaxProofSize = 8 << 10
	// MaxChallengeLen bounds the verifier's challenge (a nonce).
	MaxChallengeLen = 256
)

// ProofContext is the first field of every proof: the domain separation
// between a proof and anything else a holder key signs. A proof payload is a
// map whose key 1 holds text, a declaration's holds a kind number, so
// neither can ever parse as the other.
const ProofContext = "fednode-pop-v1"

// Proof is the payload of a proof of possession: a COSE_Sign1 (Seal) made
// with a credential's holder key, binding the credential, the authority the
// request is addressed to and the verifier's challenge. Field numbers are the
// wire format.
type Proof struct {
	Context    string `cbor:"1,keyasint"` // Invariant: ProofContext
	Credential ID     `cbor:"2,keyasint"`
	// Audience is the target authority of the request: a proof made for one
	// authority's verifier is worthless at another's.
	Audience  ID     `cbor:"3,keyasint"`
	Challenge []byte `cbor:"4,keyasint"`
	// IssuedAt (Unix seconds) is informative: freshness comes from the
	// challenge, which the verifier chose.
	IssuedAt int64 `cbor:"5,keyasint"`
}

// MakeProof makes the proof of possession of cred's holder key for a request
// to target, answering the verifier's challenge. holder must be the private
// half of cred's HolderKey.
func MakeProof(cred *Signed, target ID, challenge []byte, at time.Time, holder *PrivateKey) ([]byte, error) {
	if cred == nil || cred.Decl.Kind != KindCredential {
		return nil, errors.New("authority: make proof: not a credential")
	}
	hk := cred.Decl.Credential.HolderKey
	if hk == nil {
		return nil, fmt.Errorf("authority: make proof: credential %s has no holder key: it is a bearer credential and needs no proof", cred.ID.Short())
	}
	if pub := holder.Public(); pub.Alg != hk.Alg || !bytes.Equal(pub.Key, hk.Key) {
		return nil, fmt.Errorf("authority: make proof: the key given is not credential %s's holder key %x", cred.ID.Short(), hk.KeyID())
	}
	if len(challenge) > MaxChallengeLen {
		return nil, fmt.Errorf("authority: make proof: challenge is %d bytes, over %d", len(challenge), MaxChallengeLen)
	}
	if at.Unix() < 0 {
		return nil, errors.New("authority: make proof: time before 1970")
	}
	payload, err := marshal(&Proof{Context: ProofContext, Credential: cred.ID, Audience: target, Challenge: append([]byte{}, challenge...), IssuedAt: at.Unix()})
	if err != nil {
		return nil, fmt.Errorf("authority: make proof: %w", err)
	}
	b, err := Seal(payload, holder)
	if err != nil {
		return nil, fmt.Errorf("authority: make proof: %w", err)
	}
	if len(b) > MaxProofSize {
		return nil, fmt.Errorf("authority: make proof: %d bytes, over %d", len(b), MaxProofSize)
	}
	return b, nil
}

// checkProof verifies raw as the proof of possession of holder for cred,
// audience and challenge. Its error says what is wrong, for the decision's
// message.
func checkProof(raw []byte, holder PublicKey, cred, audience ID, challenge []byte) error {
	if len(raw) == 0 {
		return errors.New("the request carries no proof of possession")
	}
	s, err := ParseSealed(raw, MaxProofSize)
	if err != nil {
		return fmt.Errorf("the proof of possession is not a valid envelope: %w", err)
	}
	if err := s.VerifyWith([]PublicKey{holder}); err != nil {
		return fmt.Errorf("the proof of possession is not signed by the credential's holder key %x: %w", holder.KeyID(), err)
	}
	var p Proof
	if err := unmarshalStrict(s.Payload, &p); err != nil {
		return fmt.Errorf("the proof of possession's payload is not a proof: %v", err)
	}
	switch {
	case p.Context != ProofContext:
		return fmt.Errorf("the signed payload is not a proof of possession (context %q)", abbrev(p.Context))
	case p.Credential != cred:
		return fmt.Errorf("the proof of possession is for credential %s, not %s", p.Credential.Short(), cred.Short())
	case p.Audience != audience:
		return fmt.Errorf("the proof of possession is addressed to %s, not to the target %s", p.Audience.Short(), audience.Short())
	case !bytes.Equal(p.Challenge, challenge):
		return errors.New("the proof of possession answers another challenge than this verifier's")
	}
	return nil
}
