package authority

import "bytes"

// Rotation is the body of a KindRotation: a new root key set and threshold
// for the declaring authority, as TUF rotates a root. It is accepted only if
// signed by the threshold of the set in effect before it (never by an
// operational key); from the next position on, the new set is the root and
// the keys it drops are retired:
//
//   - On the chain, a declaration after the rotation signed by a retired key
//     is refused (ErrKeyRotated), even alongside a threshold of current
//     keys. Declarations before it keep their force: their position, fixed by
//     the agreed chain, proves they were signed while their keys were the
//     root. So a thief holding retired keys can neither extend nor roll back
//     the chain: anything new needs the current threshold.
//   - A credential has no position, and its IssuedAt is what its signer
//     says, so a thief could backdate it. Verify therefore accepts a
//     credential signed by a retired set only if its whole window closes no
//     later than the IssuedAt of the rotation that retired the set
//     (NotAfter != 0 and NotAfter <= that IssuedAt, which the threshold
//     signed). Judged at or after the rotation, such a credential is expired
//     anyway: in practice, a rotation ends every credential the old root
//     signed directly (reason key-rotated for those it would have let live
//     on), while credentials signed by operational keys live on, since
//     delegations stay valid across a rotation. Issue credentials with
//     operational keys, and a routine rotation disturbs nobody.
//   - Delegations made before a rotation stay in force. After a compromise,
//     revoke them as well as rotating.
//
// A rotation may keep keys, or all of them: rotating to the same set is how
// the root threshold re-affirms the chain after an equivocation
// (equivocation.go). It may not make a key root that the authority ever
// delegated as an operational key (ErrKeyReuse).
type Rotation struct {
	RootKeys []PublicKey `cbor:"1,keyasint"`
	// Threshold: Invariant: 1 <= Threshold <= len(RootKeys).
	Threshold uint8 `cbor:"2,keyasint"`
}

func (r *Rotation) validate() error { return validRootSet(r.RootKeys, r.Threshold) }

// RootSet is one root key set of an authority, with where it took effect.
type RootSet struct {
	Keys      []PublicKey
	Threshold int
	// Since is the seq of the declaration that made this set the root: 0
	// for the genesis, else a rotation's. The set signs positions after
	// Since, up to and including the next rotation (which it signs to
	// retire itself).
	Since uint64
	// ID is that declaration's ID; IssuedAt its IssuedAt.
	ID       ID
	IssuedAt int64

	// kids caches Keys' key IDs (a hash of up to 2 KB each for PQ keys);
	// nil in a RootSet made elsewhere, when find computes them.
	kids [][]byte
}

// newRootSet makes a RootSet with its key IDs cached.
func newRootSet(keys []PublicKey, threshold int, since uint64, id ID, issuedAt int64) RootSet {
	rs := RootSet{Keys: keys, Threshold: threshold, Since: since, ID: id, IssuedAt: issuedAt}
	rs.kids = make([][]byte, len(keys))
	for i, k := range keys {
		rs.kids[i] = k.KeyID()
	}
	return rs
}

// find returns the key of rs whose ID is kid.
func (rs *RootSet) find(kid []byte) (PublicKey, bool) {
	if len(rs.kids) != len(rs.Keys) {
		return hasKey(rs.Keys, kid)
	}
	for i, k := range rs.kids {
		if bytes.Equal(k, kid) {
			return rs.Keys[i], true
		}
	}
	return PublicKey{}, false
}

// rootsAt returns the index in a.Roots of the set in effect at position p:
// the last one made before p.
func (a *AuthorityInfo) rootsAt(p uint64) int {
	i := len(a.Roots) - 1
	for i > 0 && a.Roots[i].Since >= p {
		i--
	}
	return i
}

// everRoot reports whether the key with ID kid is or was a root key of a.
func (a *AuthorityInfo) everRoot(kid []byte) bool {
	for _, rs := range a.Roots {
		if _, ok := rs.find(kid); ok {
			return true
		}
	}
	return false
}

// rotatedAfter reports whether a rotation of a sits at a seq after p.
func (a *AuthorityInfo) rotatedAfter(p uint64) bool {
	return len(a.Roots) > 0 && a.Roots[len(a.Roots)-1].Since > p
}
