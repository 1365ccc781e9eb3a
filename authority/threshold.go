package authority

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// Key governance, after TUF's root role and tailscale tka's chain of
// authority updates:
//
//   - An authority's root is a set of n keys and a threshold k (Genesis,
//     then Rotation). A declaration that needs the root carries signatures by
//     at least k distinct keys of the set in effect at its chain position:
//     one signature in a COSE_Sign1, several in a COSE_Sign (envelope.go).
//   - The root can delegate to operational keys (KeyDelegation, opkeys.go)
//     so that it stays offline: a delegated key signs alone, only the kinds
//     in its scope, within its window, until its delegation is revoked.
//   - A rotation, signed by the current threshold, replaces the set; the
//     keys it retires sign nothing new (rotation.go).
//   - Two validly signed declarations at one chain position are proof of
//     equivocation; the graph keeps the proof and Verify distrusts the
//     authority until a later rotation (equivocation.go).
//
// Root keys and operational keys of one authority are disjoint forever (a
// delegation of a key that is or was a root key, and a rotation to a key that
// was ever delegated, are refused with ErrKeyReuse), so every kid names one
// role and a signature's meaning never depends on which lookup ran first.

// Errors of key governance, returned wrapped by Graph.Check, Graph.Apply,
// Graph.ApplyEvidence, VerifySigners and Signed.VerifyThreshold. The texts of
// the first three are the reason codes Verify gives for the same defects.
var (
	// ErrThresholdNotMet: fewer distinct keys of the root set in effect
	// signed than its threshold asks.
	ErrThresholdNotMet = errors.New("threshold-not-met")
	// ErrKeyRotated: a signature by a root key that a rotation retired
	// before this declaration's position (or, for a credential, whose
	// window outlives the rotation).
	ErrKeyRotated = errors.New("key-rotated")
	// ErrEquivocation: two validly signed declarations of one authority
	// at one chain position. Returned together with ErrConflict.
	ErrEquivocation = errors.New("equivocation")
	// ErrKeyNotAuthorised: an operational key signed something its
	// delegation does not allow: a kind out of its scope, an IssuedAt out
	// of its window or before the chain's latest, a revocation of its
	// authority's genesis or of a delegation; or its delegation is revoked.
	ErrKeyNotAuthorised = errors.New("key not authorised")
	// ErrKeyReuse: a key would be both a root key and an operational key
	// of one authority.
	ErrKeyReuse = errors.New("key reused across roles")
)

// MaxSignatures bounds the signatures of one envelope: a threshold never
// needs more than the largest root set.
const MaxSignatures = MaxRootKeys

// validRootSet checks a root key set and its threshold: 1 to MaxRootKeys
// well-formed keys, no key material twice, 1 <= threshold <= len(keys).
//
// "No key material twice" is more than "no kid twice": a hybrid key holds an
// Ed25519 and an ML-DSA-65 public key, and a set listing a hybrid key and its
// own Ed25519 half would let the one holder of the hybrid's private key make
// two signatures that count as two distinct keys.
func validRootSet(keys []PublicKey, threshold uint8) error {
	if len(keys) == 0 || len(keys) > MaxRootKeys {
		return fmt.Errorf("root key set must have 1 to %d keys, got %d", MaxRootKeys, len(keys))
	}
	seen := map[string]int{}
	for i, k := range keys {
		if err := k.validate(); err != nil {
			return fmt.Errorf("root key %d: %w", i, err)
		}
		if j, ok := seen[string(k.KeyID())]; ok {
			return fmt.Errorf("root key %d is listed twice (as key %d too)", i, j)
		}
		seen[string(k.KeyID())] = i
	}
	parts := map[string]int{}
	for i, k := range keys {
		for _, p := range keyParts(k) {
			if j, ok := parts[string(p)]; ok {
				return fmt.Errorf("root keys %d and %d share key material: one holder could sign as both", j, i)
			}
			parts[string(p)] = i
		}
	}
	if threshold < 1 || int(threshold) > len(keys) {
		return fmt.Errorf("root threshold %d: want 1 to %d (the number of root keys)", threshold, len(keys))
	}
	return nil
}

// keyParts returns the component public keys of k: itself, or for a hybrid
// its ML-DSA-65 and Ed25519 halves. Only for validated keys.
func keyParts(k PublicKey) [][]byte {
	if k.Alg == AlgHybrid && len(k.Key) == mldsa65.PublicKeySize+ed25519.PublicKeySize {
		return [][]byte{k.Key[:mldsa65.PublicKeySize], k.Key[mldsa65.PublicKeySize:]}
	}
	return [][]byte{k.Key}
}

// hasKey reports whether keys holds a key with ID kid.
func hasKey(keys []PublicKey, kid []byte) (PublicKey, bool) {
	for _, k := range keys {
		if bytes.Equal(k.KeyID(), kid) {
			return k, true
		}
	}
	return PublicKey{}, false
}

// signerState is what deciding who may sign a declaration needs of its
// issuer, at one position of its chain. Graph.Check builds it from the chain
// as it was before that position; VerifySigners from a View's current state.
type signerState struct {
	name string
	// roots is the root set in effect; past are the sets before it.
	roots RootSet
	past  []RootSet
	// op finds a delegated operational key by kid (the latest delegation
	// of that key), revoked says whether and by what its delegation was
	// revoked; either may be nil.
	op      func(kid []byte) (*OpKeyInfo, bool)
	revoked func(o *OpKeyInfo) (ID, bool)
	// view and id, when view is set, answer for op and revoked from a
	// View's current state (viewState): no closures, so a decision's
	// signer state allocates nothing.
	view View
	id   ID
	// ownDelegation reports whether id is a delegation of this authority;
	// nil when the caller cannot tell (a View).
	ownDelegation func(id ID) bool
	// maxIssuedAt is the latest IssuedAt in the chain before the position.
	maxIssuedAt int64
}

// authorise decides whether s's signatures make it a declaration of the
// authority at this position: k distinct keys of the root set in effect, or
// one operational key whose delegation allows it. Every signature must
// verify; nothing is said about s's issuer before its signatures verified.
func (st *signerState) authorise(s *Signed) error {
	if len(s.Signatures) == 1 {
		if o, ok := st.opKey(s.KeyID); ok {
			return st.authoriseOp(s, o)
		}
	}
	what := s.what()
	cls, err := st.classify(s, sigMemo{})
	if err != nil {
		return err
	}
	if cls.operational != nil {
		return fmt.Errorf("authority: %w: %s: operational key %x signed together with others: an operational key signs alone", ErrBadSignature, what, cls.operational)
	}
	if cls.retired != nil {
		return fmt.Errorf("authority: %w: %s is signed with root key %x of %s, which a rotation retired: it signs nothing new", ErrKeyRotated, what, cls.retired, st.name)
	}
	if len(cls.keys) < st.roots.Threshold {
		return fmt.Errorf("authority: %w: %s has %d valid signature(s) by distinct root keys of %s; its threshold is %d of %d",
			ErrThresholdNotMet, what, len(cls.keys), st.name, st.roots.Threshold, len(st.roots.Keys))
	}
	return nil
}

// signerClass is who signed an envelope whose every signature verified.
type signerClass struct {
	// keys are the distinct keys that signed.
	keys []PublicKey
	// retired is the kid of a signer that is a root key only of a set
	// before the one in effect; operational that of a delegated key.
	retired, operational []byte
}

// classify verifies every signature of s against the keys st knows (the
// root set in effect, then earlier ones, then operational keys) and says
// who signed.
func (st *signerState) classify(s *Signed, m sigMemo) (signerClass, error) {
	var c signerClass
	keys, err := s.verifySignatures("", func(kid []byte) (PublicKey, bool) {
		if k, ok := st.roots.find(kid); ok {
			return k, true
		}
		for i := len(st.past) - 1; i >= 0; i-- {
			if k, ok := st.past[i].find(kid); ok {
				c.retired = kid
				return k, true
			}
		}
		if o, ok := st.opKey(kid); ok {
			c.operational = kid
			return o.Key, true
		}
		return PublicKey{}, false
	}, m)
	c.keys = keys
	return c, err
}

// authoriseOp is authorise for a declaration signed by operational key o
// alone. Its window is judged at the declaration's own IssuedAt: Graph.Check
// has no clock. That IssuedAt is the signer's claim, so it must also be no
// earlier than the chain's latest: a stolen key past its window cannot
// backdate a declaration to before anything the chain already holds.
func (st *signerState) authoriseOp(s *Signed, o *OpKeyInfo) error {
	d := &s.Decl
	what := s.what()
	okid := o.Key.KeyID()
	if _, err := s.verifySignatures(what, func(kid []byte) (PublicKey, bool) { return o.Key, bytes.Equal(kid, okid) }, sigMemo{}); err != nil {
		return err
	}
	deny := func(format string, args ...any) error {
		return fmt.Errorf("authority: %w: %s signed by operational key %x of %s: %s", ErrKeyNotAuthorised, what, okid, st.name, fmt.Sprintf(format, args...))
	}
	if rid, ok := st.opRevoked(o); ok {
		return deny("its delegation %s was revoked by %s", o.ID.Short(), rid.Short())
	}
	if !o.Allows(d.Kind) {
		return deny("its delegation %s allows only %v", o.ID.Short(), o.Kinds)
	}
	if !inWindow(o.NotBefore, o.NotAfter, d.IssuedAt) {
		return deny("issued at %s, outside the key's window [%s, %s)", fmtUnix(d.IssuedAt), fmtUnix(o.NotBefore), fmtUnix(o.NotAfter))
	}
	if d.IssuedAt < st.maxIssuedAt {
		return deny("issued at %s, before the chain's latest declaration (%s)", fmtUnix(d.IssuedAt), fmtUnix(st.maxIssuedAt))
	}
	if d.Kind == KindRevocation {
		t := d.Revocation.Target
		if t == d.Authority {
			return deny("revoking the authority itself needs the root threshold")
		}
		if st.ownDelegation != nil && st.ownDelegation(t) {
			return deny("revoking a delegation (%s) needs the root threshold", t.Short())
		}
	}
	return nil
}

// inWindow reports whether u is in [nbf, naf), zero bounds open.
func inWindow(nbf, naf, u int64) bool {
	return (nbf == 0 || u >= nbf) && (naf == 0 || u < naf)
}

// viewState is the signer state of authority a now, as View shows it.
//
// It returns a value, not a pointer, so that a decision's signer state can
// live on the stack.
func viewState(v View, a *AuthorityInfo) signerState {
	st := signerState{name: a.Name, maxIssuedAt: a.MaxIssuedAt}
	if n := len(a.Roots); n > 0 {
		st.roots, st.past = a.Roots[n-1], a.Roots[:n-1]
	} else {
		st.roots = RootSet{Keys: a.RootKeys, Threshold: a.Threshold}
	}
	st.view, st.id = v, a.ID
	return st
}

// opKey finds a delegated operational key by kid (op, or the view).
func (st *signerState) opKey(kid []byte) (*OpKeyInfo, bool) {
	switch {
	case st.view != nil:
		return st.view.OperationalKey(st.id, kid)
	case st.op != nil:
		return st.op(kid)
	}
	return nil, false
}

// opRevoked says whether and by what o's delegation was revoked (revoked,
// or the view).
func (st *signerState) opRevoked(o *OpKeyInfo) (ID, bool) {
	switch {
	case st.view != nil:
		return st.view.RevokedBy(o.ID, st.id)
	case st.revoked != nil:
		return st.revoked(o)
	}
	return ID{}, false
}

// VerifySigners checks that s's signatures make it a declaration of its
// issuer as v stands now, without any chain-position check: a genesis by the
// threshold of its own keys; anything else by the threshold of the issuer's
// current root set or by one operational key whose delegation allows it at
// s's IssuedAt. It is the check to run on a declaration before it is
// ordered (a node admitting a submission); Graph.Check repeats it at the
// declaration's position, and is the authority.
//
// It cannot tell from a View whether an operational key's revocation names a
// delegation (Graph.Check refuses that); it refuses the rest as Check does.
func VerifySigners(v View, s *Signed) error {
	if s.Decl.Kind == KindGenesis {
		return genesisState(s).authorise(s)
	}
	a, ok := v.Authority(s.Decl.Authority)
	if !ok {
		return fmt.Errorf("authority: %w %s", ErrUnknownAuthority, s.Decl.Authority.Short())
	}
	st := viewState(v, a)
	return st.authorise(s)
}

// genesisState is the signer state of a genesis: its own keys.
func genesisState(s *Signed) *signerState {
	g := s.Decl.Genesis
	return &signerState{name: g.Name, roots: newRootSet(g.RootKeys, int(g.Threshold), 0, s.ID, s.Decl.IssuedAt)}
}
