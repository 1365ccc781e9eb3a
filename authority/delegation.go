package authority

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Delegation (attenuation) within an authority.
//
// A credential with Parent set is a delegated credential: its holder got it
// from the holder of the parent, and it is signed by the parent's HolderKey,
// not by any key of the authority. The request presents the chain
// (Request.Delegation, nearest parent first) up to a root credential, which
// has no Parent and is signed by a root key of its authority. As in UCAN and
// Biscuit, each link can only narrow the one above it:
//
//   - same Authority and same Subject throughout: delegation lets a
//     principal hand on part of what it may do; it never makes another
//     principal;
//   - the child's window lies within the parent's (zero bounds are open,
//     so an open child bound under a closed parent bound widens);
//   - the child's Resources is a GlobSubset of the parent's and its Actions
//     a subset of the parent's, empty meaning "any" in both;
//   - the child's Attributes are a subset of the parent's: attributes can
//     be dropped, never added or changed.
//
// A link that widens is denied with scope-widening, whatever the request.
// Revocation of any link by the authority denies with revoked. The
// authority revokes delegated credentials as it revokes its own: by ID.

// MaxDelegationDepth bounds a credential chain: the presented credential and
// its parents together, so len(Request.Delegation) < MaxDelegationDepth.
// Each delegated link costs one signature check (see Verify).
const MaxDelegationDepth = 8

// parseChain parses the presented credential and its delegation chain and
// checks that they link up. It returns the chain root first: links[0] is the
// root credential, links[len(links)-1] the presented one.
func parseChain(req *Request) ([]*Signed, Reason, string) {
	leaf, err := Parse(req.Credential)
	if err != nil {
		return nil, ReasonMalformed, fmt.Sprintf("the credential is not a valid declaration: %v", err)
	}
	if leaf.Decl.Kind != KindCredential {
		return nil, ReasonMalformed, fmt.Sprintf("the presented declaration is a %v, not a credential", leaf.Decl.Kind)
	}
	if len(req.Delegation) == 0 && leaf.Decl.Credential.Parent.IsZero() {
		return []*Signed{leaf}, "", ""
	}
	if n := len(req.Delegation) + 1; n > MaxDelegationDepth {
		return []*Signed{leaf}, ReasonMalformed, fmt.Sprintf("the credential chain has %d credentials, over the limit of %d (MaxDelegationDepth)", n, MaxDelegationDepth)
	}
	links := make([]*Signed, 0, len(req.Delegation)+1)
	links = append(links, leaf)
	for i, raw := range req.Delegation {
		child := links[len(links)-1]
		want := child.Decl.Credential.Parent
		if want.IsZero() {
			return []*Signed{leaf}, ReasonMalformed, fmt.Sprintf("credential %s has no parent, yet %d more delegation links were presented", child.ID.Short(), len(req.Delegation)-i)
		}
		p, err := Parse(raw)
		if err != nil {
			return []*Signed{leaf}, ReasonMalformed, fmt.Sprintf("delegation link %d is not a valid declaration: %v", i+1, err)
		}
		switch {
		case p.Decl.Kind != KindCredential:
			return []*Signed{leaf}, ReasonMalformed, fmt.Sprintf("delegation link %d is a %v, not a credential", i+1, p.Decl.Kind)
		case p.ID != want:
			return []*Signed{leaf}, ReasonMalformed, fmt.Sprintf("delegation link %d is %s, but credential %s names parent %s", i+1, p.ID.Short(), child.ID.Short(), want.Short())
		case p.Decl.Authority != leaf.Decl.Authority:
			return []*Signed{leaf}, ReasonMalformed, fmt.Sprintf("delegation link %d is a credential of %s, not of the credential's authority %s", i+1, p.Decl.Authority.Short(), leaf.Decl.Authority.Short())
		}
		links = append(links, p)
	}
	if top := links[len(links)-1]; !top.Decl.Credential.Parent.IsZero() {
		return []*Signed{leaf}, ReasonMalformed, fmt.Sprintf("credential %s names parent %s, which the request does not present (Request.Delegation)", top.ID.Short(), top.Decl.Credential.Parent.Short())
	}
	slices.Reverse(links)
	return links, "", ""
}

// linkName names link i of a chain (root first) in messages.
func linkName(links []*Signed, i int) string {
	if i == len(links)-1 {
		return "the credential"
	}
	return fmt.Sprintf("the delegating credential %s", links[i].ID.Short())
}

// checkChain verifies the credential chain, root first: each link's
// signature (the root's against the authority's root keys, every other
// against its parent's holder key), revocation, window and narrowing. It
// appends each link to d.Chain once its signature verifies, and a revocation
// after the link it revokes. m, when not nil, remembers the chain's verified
// signatures (cache.go).
func checkChain(v View, issuer *AuthorityInfo, links []*Signed, at time.Time, d *Decision, m *chainMemo) (Reason, string) {
	for i, s := range links {
		c := s.Decl.Credential
		name := func() string { return linkName(links, i) } // only for messages
		if i == 0 {
			if r, msg := verifyRootCredential(v, issuer, s, name, at, m.link(0)); r != "" {
				return r, msg
			}
		} else {
			hk := links[i-1].Decl.Credential.HolderKey
			if hk == nil {
				return ReasonBadSignature, fmt.Sprintf("%s names parent %s, which has no holder key: a credential without one cannot delegate", name(), links[i-1].ID.Short())
			}
			if err := verifyHolderSigned(s, *hk, m.holderKID(i-1, hk), m.link(i)); err != nil {
				return sigReason(err), fmt.Sprintf("%s's signature does not verify against its parent's holder key %x: %v", name(), hk.KeyID(), err)
			}
		}
		d.Chain = append(d.Chain, s.ID)
		if i == 0 {
			if rid, ok := v.RevokedBy(issuer.ID, issuer.ID); ok {
				d.Chain = append(d.Chain, rid)
				return ReasonRevoked, fmt.Sprintf("authority %s has revoked itself (revocation %s)", issuer.Name, rid.Short())
			}
		}
		if rid, ok := v.RevokedBy(s.ID, issuer.ID); ok {
			d.Chain = append(d.Chain, rid)
			if i == len(links)-1 {
				return ReasonRevoked, fmt.Sprintf("%s revoked this credential (revocation %s)", issuer.Name, rid.Short())
			}
			return ReasonRevoked, fmt.Sprintf("%s revoked %s, a parent of the credential (revocation %s)", issuer.Name, name(), rid.Short())
		}
		if r, msg := window(c.NotBefore, c.NotAfter, at); r != "" {
			return r, fmt.Sprintf("%s for %q %s", name(), c.Subject, msg)
		}
		if i > 0 {
			if msg := widens(c, links[i-1].Decl.Credential); msg != "" {
				return ReasonScopeWidening, fmt.Sprintf("%s widens its parent %s: %s", name(), links[i-1].ID.Short(), msg)
			}
		}
	}
	return "", ""
}

// verifyRootCredential judges the signatures of a root credential (one
// without Parent) against its authority's keys: the one place that decides
// which keys of an authority may sign credentials (root keys to their
// threshold, delegated operational keys, rotations, equivocation: see
// judgeCredentialSigners in judge.go).
func verifyRootCredential(v View, issuer *AuthorityInfo, s *Signed, name func() string, at time.Time, m sigMemo) (Reason, string) {
	return judgeCredentialSigners(v, s, issuer, name, at, m)
}

// verifyHolderSigned is s.VerifyWith([]PublicKey{hk}) for a delegated link,
// with hk's KeyID hkid given (so a cached chain does not hash the key
// again), its signatures remembered in m, and hk's unpacked form not kept
// (see sigMemo.presented).
func verifyHolderSigned(s *Signed, hk PublicKey, hkid []byte, m sigMemo) error {
	m.presented = true
	_, err := s.verifySignatures("", func(kid []byte) (PublicKey, bool) { return hk, bytes.Equal(kid, hkid) }, m)
	return err
}

// widens says how child is wider than parent, or "" when it narrows it.
func widens(child, parent *Credential) string {
	switch {
	case child.Subject != parent.Subject:
		return fmt.Sprintf("subject %q is not the parent's %q", child.Subject, parent.Subject)
	case !windowWithin(child.NotBefore, child.NotAfter, parent.NotBefore, parent.NotAfter):
		return fmt.Sprintf("validity %s extends beyond the parent's %s", fmtWindow(child.NotBefore, child.NotAfter), fmtWindow(parent.NotBefore, parent.NotAfter))
	case !resourcesSubset(child.Resources, parent.Resources):
		return fmt.Sprintf("resources %s are not provably within the parent's %s", fmtScope(child.Resources), fmtScope(parent.Resources))
	case !actionsSubset(child.Actions, parent.Actions):
		return fmt.Sprintf("actions %s are not within the parent's %s", fmtActions(child.Actions), fmtActions(parent.Actions))
	case !attrsSubset(child.Attributes, parent.Attributes):
		return fmt.Sprintf("attributes %v add to or change the parent's %v", child.Attributes, parent.Attributes)
	}
	return ""
}

// checkCredentialScope checks the request against every link's own
// Resources and Actions. Narrowing makes the leaf's enough; checking every
// link keeps a mistake in GlobSubset from ever widening a decision.
func checkCredentialScope(links []*Signed, resource, action string) (Reason, string) {
	matched := "" // the last pattern resource matched: links often repeat it
	for i := len(links) - 1; i >= 0; i-- {
		c := links[i].Decl.Credential
		if c.Resources != "" && c.Resources != matched {
			if !Match(c.Resources, resource) {
				return ReasonResourceNotAllowed, fmt.Sprintf("%s is limited to resources %q, not %q", linkName(links, i), c.Resources, resource)
			}
			matched = c.Resources
		}
		if len(c.Actions) > 0 && !slices.Contains(c.Actions, action) {
			return ReasonActionNotAllowed, fmt.Sprintf("%s is limited to actions %v, not %q", linkName(links, i), c.Actions, action)
		}
	}
	return "", ""
}

func sigReason(err error) Reason {
	if errors.Is(err, ErrMalformed) {
		return ReasonMalformed
	}
	return ReasonBadSignature
}

func fmtWindow(nbf, naf int64) string {
	from, to := "-∞", "∞"
	if nbf != 0 {
		from = fmtUnix(nbf)
	}
	if naf != 0 {
		to = fmtUnix(naf)
	}
	return "[" + from + ", " + to + ")"
}

func fmtScope(p string) string {
	if p == "" {
		return "(any)"
	}
	return fmt.Sprintf("%q", p)
}

func fmtActions(a []string) string {
	if len(a) == 0 {
		return "(any)"
	}
	return fmt.Sprint(a)
}
