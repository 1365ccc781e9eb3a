package authority

import (
	"errors"
	"fmt"
	"slices"
)

// Anchors is the body of a KindAnchors: the authority's external trust
// anchors from this position on (external.go). It REPLACES the anchors in
// effect — the genesis's, or the previous Anchors declaration's — as a
// whole: an anchor it leaves out is withdrawn, and an Anchors with no anchor
// at all withdraws every one. It needs the root threshold, or an
// operational key whose delegation names KindAnchors (opkeys.go): changing
// whom an authority vouches for is as grave as a rule.
//
// An Anchors declaration cannot be revoked (ErrNotRevocable): "undo" would
// have to mean restoring some earlier set, and which one would depend on the
// order revocations arrive in. To change the anchors again, declare new
// ones. The same bounds and checks apply as to a genesis's anchors.
type Anchors struct {
	OIDC      *OIDCAnchor   `cbor:"1,keyasint,omitempty"`
	X509Roots [][]byte      `cbor:"2,keyasint,omitempty"`
	SPIFFE    *SPIFFEAnchor `cbor:"3,keyasint,omitempty"`
}

// ErrNotRevocable: a revocation names a declaration that cannot be revoked
// (an Anchors declaration: declare new anchors instead). Returned wrapped by
// Graph.Check and Graph.Apply.
var ErrNotRevocable = errors.New("not revocable")

func (a *Anchors) validate() error { return validAnchors(a.OIDC, a.X509Roots, a.SPIFFE) }

// checkRevocable refuses a revocation of one of a's Anchors declarations.
func (g *Graph) checkRevocable(a *AuthorityInfo, s *Signed) error {
	t := s.Decl.Revocation.Target
	if m, ok := g.meta[t]; ok && m.kind == KindAnchors {
		return fmt.Errorf("authority: revocation %s of %s: %w: %s is an anchors declaration; declare new anchors to replace it", s.ID.Short(), a.Name, ErrNotRevocable, t.Short())
	}
	return nil
}

// replaceAnchors makes n a's anchors in effect and re-indexes a. The index
// slices are replaced, never modified in place, so a reader may keep one.
func (g *Graph) replaceAnchors(a *AuthorityInfo, n *Anchors) {
	g.anchors.remove(a)
	a.OIDC, a.X509Roots, a.SPIFFE = n.OIDC, n.X509Roots, n.SPIFFE
	g.anchors.add(a)
}

// remove drops a from the lists of its anchors in effect. An authority
// that declares new anchors is indexed after the others under them: the
// order is of indexing, which the chain order fixes on every node.
func (x *anchorIndex) remove(a *AuthorityInfo) {
	drop := func(m map[string][]ID, k string) {
		out := slices.DeleteFunc(slices.Clone(m[k]), func(id ID) bool { return id == a.ID })
		if len(out) == 0 {
			delete(m, k)
		} else {
			m[k] = out
		}
	}
	issuers, subjects := anchorKeys(a)
	for _, iss := range issuers {
		drop(x.byIssuer, iss)
	}
	for _, s := range subjects {
		drop(x.bySubject, s)
	}
}
