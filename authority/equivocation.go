package authority

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// Equivocation: an authority that signs two different declarations at one
// position of its chain shows different histories to different parties
// (tailscale tka and transparency logs call it a fork). The agreed graph
// holds only the first at that position; the pair is proof of misbehaviour,
// transferable because both halves are signed:
//
//   - Graph.Apply keeps the pair when a validly signed declaration conflicts
//     with the one at its position, and Graph.ApplyEvidence when a pair
//     arrives by gossip. Evidence is accepted only for positions up to the
//     head + 1 (ErrGap beyond: hold it), each position once.
//   - The authority is marked equivocating from the lowest such position
//     (AuthorityInfo.EquivocatedAt). Verify then denies, with reason
//     equivocation, every credential it issued, and every rule it declared
//     at or after that position; its earlier rules, which everyone agreed on
//     before the fork, still count.
//   - Recovery: a rotation by the root threshold at a later position clears
//     the mark. The rotation links back through the chain to the position
//     the graph holds, so the threshold vouches for that history; rotating
//     to the very same set is enough when an operational key, not the root,
//     equivocated (revoke that key's delegation too). Evidence at a position
//     before the latest rotation is kept but marks nothing: that is why a
//     thief with retired keys cannot make a rotated authority untrusted by
//     forging a fork of its old history.
//
// WARNING: evidence is graph state but not a declaration: Version does not
// count it, and a store that rebuilds the graph by replaying its
// declarations must also replay the evidence it was given (ApplyEvidence),
// in the same order relative to them, for replicas to keep deciding alike.

// MaxEvidence bounds the proofs of equivocation a graph keeps per authority.
// Every position with evidence marks the authority whether or not its proof
// is kept; only the first MaxEvidence are kept for Equivocations.
const MaxEvidence = 16

// ErrNotEvidence: ApplyEvidence was given a pair that proves no
// equivocation: not two declarations of one authority at one position, or
// the same declaration twice (possibly with other signatures).
var ErrNotEvidence = errors.New("not evidence of equivocation")

// Evidence is proof that an authority signed two different declarations at
// one position of its chain. Both verify with the keys in effect at that
// position. A is the one the chain holds there, if it holds either.
type Evidence struct {
	A, B *Signed
}

// EquivocationError is Check's and Apply's answer to a validly signed
// declaration that conflicts with the one at its position. It is both an
// ErrConflict and an ErrEquivocation.
type EquivocationError struct {
	// Name is the authority's name, for the message.
	Name     string
	Evidence Evidence
}

func (e *EquivocationError) Error() string {
	a, b := e.Evidence.A, e.Evidence.B
	return fmt.Sprintf("authority: %v %s at %s seq %d: %v: %v: %s, validly signed too, holds that position",
		b.Decl.Kind, b.ID.Short(), e.Name, b.Decl.Seq, ErrConflict, ErrEquivocation, a.ID.Short())
}

// Unwrap makes errors.Is find both ErrConflict and ErrEquivocation.
func (e *EquivocationError) Unwrap() []error { return []error{ErrConflict, ErrEquivocation} }

// conflict judges s, validly signed, against held, the declaration at its
// position: the same declaration with other signatures is a duplicate, not
// a fork (a relay can always drop one of several signatures); a different
// one is equivocation.
func (g *Graph) conflict(a *AuthorityInfo, held position, s *Signed) error {
	h, err := Parse(held.raw)
	if err != nil {
		panic(fmt.Sprintf("authority: declaration %s held at %s seq %d no longer parses: %v", held.id.Short(), a.Name, s.Decl.Seq, err))
	}
	if bytes.Equal(h.payload, s.payload) {
		return fmt.Errorf("authority: %v %s: %w: the same declaration, with other signatures, is %s", s.Decl.Kind, s.ID.Short(), ErrDuplicate, held.id.Short())
	}
	return &EquivocationError{Name: a.Name, Evidence: Evidence{A: h, B: s}}
}

// recordEvidence keeps ev, a verified proof about a at a position up to its
// head + 1, and marks a. It reports false if that position already has
// evidence.
func (g *Graph) recordEvidence(a *AuthorityInfo, ev Evidence) bool {
	seq := ev.A.Decl.Seq
	k := seqKey(a.ID, seq)
	if _, ok := g.evidenceAt[k]; ok {
		return false
	}
	g.evidenceAt[k] = struct{}{}
	if len(g.evidence[a.ID]) < MaxEvidence {
		g.evidence[a.ID] = append(g.evidence[a.ID], ev)
	}
	if !a.rotatedAfter(seq) && (a.EquivocatedAt == 0 || seq < a.EquivocatedAt) {
		a.EquivocatedAt = seq
	}
	return true
}

// rotate makes rotation s's set the root of a and clears a's mark if the
// rotation comes after it. Every position with evidence is at most the head
// + 1 when recorded, and s is at the head + 1, so only evidence at s's own
// position can outlive it.
func (g *Graph) rotate(a *AuthorityInfo, s *Signed) {
	d := &s.Decl
	rs := newRootSet(d.Rotation.RootKeys, int(d.Rotation.Threshold), d.Seq, s.ID, d.IssuedAt)
	a.Roots = append(slices.Clip(a.Roots), rs)
	a.RootKeys, a.Threshold = rs.Keys, rs.Threshold
	if a.EquivocatedAt != 0 && a.EquivocatedAt < d.Seq {
		a.EquivocatedAt = 0
		if _, ok := g.evidenceAt[seqKey(a.ID, d.Seq)]; ok {
			a.EquivocatedAt = d.Seq
		}
	}
}

// Equivocations returns the evidence kept against authority, in the order it
// was recorded. The caller owns the slice, not the Signed values.
func (g *Graph) Equivocations(authority ID) []Evidence { return slices.Clone(g.evidence[authority]) }

// ApplyEvidence records that the authority of envelopes a and b equivocated,
// after checking that they prove it: both parse, are on-chain declarations
// (not geneses) of one known authority at one seq no further than its head +
// 1, differ as declarations, and are each validly signed for that position
// (by the root set then in effect, or an operational key then authorised).
// It is how a node records evidence received by gossip. One proof per
// position is kept: a second gets ErrDuplicate.
//
// Errors, wrapped: ErrMalformed, ErrNotEvidence, ErrUnknownAuthority,
// ErrGap (the chain has not reached the position yet: hold and retry),
// ErrDuplicate, and the signature errors of Check.
func (g *Graph) ApplyEvidence(a, b []byte) error {
	auth, ev, err := g.checkEvidence(a, b)
	if err != nil {
		return err
	}
	if !g.recordEvidence(auth, ev) {
		return fmt.Errorf("authority: evidence at %s seq %d: %w: that position already has evidence", auth.Name, ev.A.Decl.Seq, ErrDuplicate)
	}
	return nil
}

// CheckEvidence reports whether ApplyEvidence would accept the pair, without
// changing the graph, and returns it as Evidence (A the one the chain holds,
// if it holds either). A gossip validator uses it: nothing is recorded
// before the whole proof verifies. Its errors are ApplyEvidence's.
func (g *Graph) CheckEvidence(a, b []byte) (Evidence, error) {
	auth, ev, err := g.checkEvidence(a, b)
	if err != nil {
		return Evidence{}, err
	}
	if _, ok := g.evidenceAt[seqKey(auth.ID, ev.A.Decl.Seq)]; ok {
		return ev, fmt.Errorf("authority: evidence at %s seq %d: %w: that position already has evidence", auth.Name, ev.A.Decl.Seq, ErrDuplicate)
	}
	return ev, nil
}

// checkEvidence is ApplyEvidence's check of a pair.
func (g *Graph) checkEvidence(a, b []byte) (*AuthorityInfo, Evidence, error) {
	sa, err := Parse(a)
	if err != nil {
		return nil, Evidence{}, err
	}
	sb, err := Parse(b)
	if err != nil {
		return nil, Evidence{}, err
	}
	da, db := &sa.Decl, &sb.Decl
	for _, d := range []*Declaration{da, db} {
		if !d.Kind.OnChain() || d.Kind == KindGenesis {
			return nil, Evidence{}, fmt.Errorf("authority: %w: a %v has no position to equivocate at", ErrNotEvidence, d.Kind)
		}
	}
	if da.Authority != db.Authority || da.Seq != db.Seq {
		return nil, Evidence{}, fmt.Errorf("authority: %w: %s seq %d and %s seq %d are not one position", ErrNotEvidence, da.Authority.Short(), da.Seq, db.Authority.Short(), db.Seq)
	}
	if bytes.Equal(sa.payload, sb.payload) {
		return nil, Evidence{}, fmt.Errorf("authority: %w: %s and %s are the same declaration", ErrNotEvidence, sa.ID.Short(), sb.ID.Short())
	}
	auth, ok := g.authorities[da.Authority]
	if !ok {
		return nil, Evidence{}, fmt.Errorf("authority: evidence: %w %s", ErrUnknownAuthority, da.Authority.Short())
	}
	if da.Seq > auth.Head+1 {
		return nil, Evidence{}, fmt.Errorf("authority: evidence at %s seq %d: %w: head is %d", auth.Name, da.Seq, ErrGap, auth.Head)
	}
	st := g.stateAt(auth, da.Seq)
	for _, s := range []*Signed{sa, sb} {
		if err := st.authorise(s); err != nil {
			return nil, Evidence{}, err
		}
	}
	if held, ok := g.positions[seqKey(auth.ID, da.Seq)]; ok && held.id == sb.ID {
		sa, sb = sb, sa
	}
	return auth, Evidence{A: sa, B: sb}, nil
}
