package authority

import (
	"errors"
	"fmt"
	"slices"
)

// KeyDelegation is the body of a KindDelegation: the root threshold lets an
// operational key sign declarations of the kinds in Kinds, within
// [NotBefore, NotAfter), so that the root keys can stay offline (TUF's
// delegated roles; the root signs rarely, the operational key daily).
//
// A delegated key signs alone (a COSE_Sign1). What it signed is judged:
//   - credentials, by Verify at the request's time: the key must be
//     delegated, its delegation unrevoked, the time in its window and
//     KindCredential in its scope;
//   - on-chain declarations (rules, revocations), by Graph.Check, which has
//     no clock: the window is judged at the declaration's own IssuedAt, which
//     must also be no earlier than the latest IssuedAt already in the chain
//     (so a key cannot backdate past what the chain holds), and the
//     delegation must be unrevoked at that position.
//
// Revoking the delegation (a revocation of its ID, by the root threshold)
// disables the key from that position on: credentials it signed stop
// verifying; on-chain declarations it signed before stay, because their
// position proves they were signed while it was authorised. A later
// delegation of the same key supersedes the earlier one (that is how a
// window is extended or a scope changed).
//
// WARNING: an operational key's expiry alone does not stop a thief from
// putting it to use on the chain: Graph.Check believes the IssuedAt it is
// given, bounded only by the chain's latest. Revoke a key you lose; a node
// with a clock should also refuse, at admission, declarations whose IssuedAt
// is far from its own time.
type KeyDelegation struct {
	Key PublicKey `cbor:"1,keyasint"`
	// Kinds is the scope. Invariant: 1 to 4 of KindRule, KindCredential,
	// KindRevocation, KindAnchors, strictly ascending: genesis, delegation
	// and rotation always need the root threshold.
	Kinds     []Kind `cbor:"2,keyasint"`
	NotBefore int64  `cbor:"3,keyasint,omitzero"`
	// NotAfter is required: an operational key is online, so it expires.
	NotAfter int64 `cbor:"4,keyasint"`
}

// Delegable reports whether an operational key may be given kind k.
//
// KindAnchors is delegable only by name: a delegation that does not list it
// cannot change the authority's external trust anchors.
func (k Kind) Delegable() bool {
	return k == KindRule || k == KindCredential || k == KindRevocation || k == KindAnchors
}

func (d *KeyDelegation) validate() error {
	if err := d.Key.validate(); err != nil {
		return fmt.Errorf("delegated key: %w", err)
	}
	if len(d.Kinds) == 0 {
		return errors.New("delegation with an empty scope")
	}
	for i, k := range d.Kinds {
		if !k.Delegable() {
			return fmt.Errorf("delegation scope: a %v always needs the root threshold", k)
		}
		if i > 0 && d.Kinds[i-1] >= k {
			return errors.New("delegation scope: kinds must be strictly ascending (one encoding per scope)")
		}
	}
	if d.NotAfter == 0 {
		return errors.New("delegation without not-after: an operational key must expire")
	}
	return validWindow(d.NotBefore, d.NotAfter)
}

// OpKeyInfo is an operational key as the graph knows it: its latest
// delegation.
type OpKeyInfo struct {
	// ID is the delegation's ID: revoking it disables the key.
	ID        ID
	Authority ID
	// Seq is the delegation's position in its authority's chain.
	Seq       uint64
	Key       PublicKey
	Kinds     []Kind
	NotBefore int64
	NotAfter  int64
}

// Allows reports whether the delegation's scope includes kind k.
func (o *OpKeyInfo) Allows(k Kind) bool { return slices.Contains(o.Kinds, k) }

// opRef keys operational keys by authority and kid.
type opRef struct {
	authority ID
	kid       [KeyIDSize]byte
}

func makeOpRef(authority ID, kid []byte) (opRef, bool) {
	r := opRef{authority: authority}
	if len(kid) != KeyIDSize {
		return r, false
	}
	copy(r.kid[:], kid)
	return r, true
}

// OperationalKey implements View: the latest delegation by authority of the
// key with ID kid. Whether that delegation is revoked is RevokedBy's answer.
func (g *Graph) OperationalKey(authority ID, kid []byte) (*OpKeyInfo, bool) {
	r, ok := makeOpRef(authority, kid)
	if !ok {
		return nil, false
	}
	list := g.opKeys[r]
	if len(list) == 0 {
		return nil, false
	}
	return list[len(list)-1], true
}

// opKeyAt is the latest delegation of kid by a before position p.
func (g *Graph) opKeyAt(a ID, kid []byte, p uint64) (*OpKeyInfo, bool) {
	r, ok := makeOpRef(a, kid)
	if !ok {
		return nil, false
	}
	list := g.opKeys[r]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Seq < p {
			return list[i], true
		}
	}
	return nil, false
}

// everDelegated reports whether a ever delegated the key with ID kid.
func (g *Graph) everDelegated(a ID, kid []byte) bool {
	r, ok := makeOpRef(a, kid)
	return ok && len(g.opKeys[r]) > 0
}
