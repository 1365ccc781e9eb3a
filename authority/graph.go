package authority

import (
	"errors"
	"fmt"
)

// Errors of appending a declaration to the graph. Each is returned wrapped.
var (
	// ErrUnknownAuthority: the declaration's issuer has no genesis in the graph.
	ErrUnknownAuthority = errors.New("unknown authority")
	// ErrDuplicate: the declaration is already in the graph. Harmless.
	ErrDuplicate = errors.New("already in the graph")
	// ErrGap: the declaration's seq is ahead of its issuer's chain head: an
	// earlier declaration is missing. Hold it and retry.
	ErrGap = errors.New("chain gap")
	// ErrConflict: another declaration already holds this position of the
	// issuer's chain, or prev does not name the head. Two signed declarations
	// at one position are equivocation.
	ErrConflict = errors.New("chain conflict")
	// ErrOffChain: the declaration's kind is not stored in the graph (a
	// credential is presented, not published).
	ErrOffChain = errors.New("off-chain declaration")
)

// AuthorityInfo is what the graph knows of one authority.
type AuthorityInfo struct {
	ID   ID
	Name string
	Kind string
	// RootKeys and Threshold are the current root set: the genesis's, or
	// the latest rotation's. Invariant: they are Roots[len(Roots)-1]'s.
	RootKeys  []PublicKey
	Threshold int
	// Head is the seq of the authority's latest declaration in the graph,
	// HeadID its ID. Invariant: Head == 0 iff HeadID == ID (the genesis).
	Head   uint64
	HeadID ID
	// Roots is every root set the authority has had, oldest first.
	// Invariant: len(Roots) >= 1, Roots[0].Since == 0, Since strictly
	// ascending. The graph replaces the slice on a rotation, never
	// modifies it in place, so a reader may keep it.
	Roots []RootSet
	// MaxIssuedAt is the latest IssuedAt among the chain's declarations.
	MaxIssuedAt int64
	// EquivocatedAt is the lowest seq at which the graph holds evidence
	// that the authority signed two declarations, and after which no
	// rotation came; 0 when there is none (equivocation.go).
	EquivocatedAt uint64
	// OIDC, X509Roots and SPIFFE are the external trust anchors in
	// effect (external.go): the genesis's, or the latest Anchors
	// declaration's (anchors.go), validated when it was.
	OIDC      *OIDCAnchor
	X509Roots [][]byte
	SPIFFE    *SPIFFEAnchor
}

// RuleInfo is a federation rule in the graph.
type RuleInfo struct {
	ID     ID
	Target ID // the declaring authority
	Seq    uint64
	Rule   Rule
}

// View is a read-only view of the federation graph: what the verifier needs.
// Implementations must give a consistent answer for the duration of one
// Verify call; returned values must not be modified by the caller.
type View interface {
	// Version is the number of declarations accepted into the graph.
	Version() uint64
	Authority(id ID) (*AuthorityInfo, bool)
	// Authorities returns every authority, in acceptance order.
	Authorities() []*AuthorityInfo
	// AuthoritiesNamed returns the IDs of authorities whose genesis carries
	// name, in acceptance order.
	AuthoritiesNamed(name string) []ID
	// RulesFor returns the rules declared by target, in chain order.
	RulesFor(target ID) []*RuleInfo
	// RevokedBy reports whether issuer has revoked its declaration target, and
	// by which revocation.
	RevokedBy(target, issuer ID) (ID, bool)
	// OperationalKey returns the latest delegation by authority of the
	// operational key whose key ID is kid. It says nothing of revocation:
	// ask RevokedBy(info.ID, authority).
	OperationalKey(authority ID, kid []byte) (*OpKeyInfo, bool)
	// Consortium is the membership state, nil before any charter
	// (consortium.go); IsMember is true for every authority until a charter
	// is active.
	Consortium() *Consortium
	IsMember(id ID) bool
	// PeerAuthority returns the authority that declared a libp2p peer as
	// its node; Nodes an authority's declared nodes.
	PeerAuthority(peerID string) (ID, bool)
	Nodes(authority ID) []NodeRef
}

type revKey struct{ target, issuer ID }

// declMeta is what the graph keeps of every declaration it accepted.
type declMeta struct {
	kind Kind
	seq  uint64
}

// position is one occupied position of an authority's chain.
type position struct {
	id ID
	// raw is the envelope, kept so that a conflicting declaration can be
	// answered with evidence holding both (equivocation.go). It is the
	// graph's main memory cost beyond the indexes.
	raw []byte
	// maxIssuedAt is the latest IssuedAt of the chain up to here.
	maxIssuedAt int64
}

// Graph is the federation graph in memory: authorities, their chain heads,
// root sets, operational keys, rules, revocations and evidence of
// equivocation, in acceptance order. It is the one implementation of the
// graph's semantics; the badger store persists what it accepts and a bundle
// reader rebuilds one from a bundle.
//
// A Graph is not safe for concurrent use: callers serialise Apply against
// readers (chainstore holds a RWMutex).
type Graph struct {
	order       []ID
	meta        map[ID]declMeta
	authorities map[ID]*AuthorityInfo
	byName      map[string][]ID
	rules       map[ID][]*RuleInfo
	revoked     map[revKey]ID
	// positions maps (authority, seq) to the declaration there, for
	// conflict detection.
	positions map[revKey]position
	// opKeys lists each operational key's delegations in chain order;
	// delegations indexes them by the delegation's ID.
	opKeys      map[opRef][]*OpKeyInfo
	delegations map[ID]*OpKeyInfo
	// evidence holds, per authority, the first MaxEvidence proofs of
	// equivocation; evidenceAt marks every position (authority, seq) with
	// evidence, whether kept or not. Invariant: at most one proof per
	// position.
	evidence   map[ID][]Evidence
	evidenceAt map[revKey]struct{}
	// anchors indexes the geneses' external trust anchors (external.go).
	anchors anchorIndex
	// cons is the consortium's membership and the declared nodes
	// (consortium.go).
	cons consortiumState
}

// NewGraph returns an empty graph.
func NewGraph() *Graph {
	return &Graph{
		meta:        map[ID]declMeta{},
		authorities: map[ID]*AuthorityInfo{},
		byName:      map[string][]ID{},
		rules:       map[ID][]*RuleInfo{},
		revoked:     map[revKey]ID{},
		positions:   map[revKey]position{},
		opKeys:      map[opRef][]*OpKeyInfo{},
		delegations: map[ID]*OpKeyInfo{},
		evidence:    map[ID][]Evidence{},
		evidenceAt:  map[revKey]struct{}{},
		cons:        newConsortiumState(),
	}
}

func seqKey(authority ID, seq uint64) revKey {
	var k revKey
	k.target = authority
	for i := 0; i < 8; i++ {
		k.issuer[i] = byte(seq >> (56 - 8*i))
	}
	return k
}

// Version implements View.
func (g *Graph) Version() uint64 { return uint64(len(g.order)) }

// Order returns the IDs of accepted declarations in acceptance order. The
// caller must not modify it.
func (g *Graph) Order() []ID { return g.order }

// Has reports whether the declaration id is in the graph.
func (g *Graph) Has(id ID) bool {
	_, ok := g.meta[id]
	return ok
}

// Authority implements View.
func (g *Graph) Authority(id ID) (*AuthorityInfo, bool) {
	a, ok := g.authorities[id]
	return a, ok
}

// Authorities returns every authority, in acceptance order of their genesis.
func (g *Graph) Authorities() []*AuthorityInfo {
	out := make([]*AuthorityInfo, 0, len(g.authorities))
	for _, id := range g.order {
		if a, ok := g.authorities[id]; ok {
			out = append(out, a)
		}
	}
	return out
}

// AuthoritiesNamed implements View.
func (g *Graph) AuthoritiesNamed(name string) []ID { return g.byName[name] }

// RulesFor implements View.
func (g *Graph) RulesFor(target ID) []*RuleInfo { return g.rules[target] }

// RevokedBy implements View.
func (g *Graph) RevokedBy(target, issuer ID) (ID, bool) {
	id, ok := g.revoked[revKey{target, issuer}]
	return id, ok
}

// stateAt is the signer state of a at position p: the root set, the
// operational keys and the revocations the chain held before p. Only for
// 1 <= p <= a.Head+1.
func (g *Graph) stateAt(a *AuthorityInfo, p uint64) *signerState {
	i := a.rootsAt(p)
	st := &signerState{name: a.Name, roots: a.Roots[i], past: a.Roots[:i], maxIssuedAt: a.MaxIssuedAt}
	if pos, ok := g.positions[seqKey(a.ID, p-1)]; ok {
		st.maxIssuedAt = pos.maxIssuedAt
	}
	st.op = func(kid []byte) (*OpKeyInfo, bool) { return g.opKeyAt(a.ID, kid, p) }
	st.revoked = func(o *OpKeyInfo) (ID, bool) {
		rid, ok := g.revoked[revKey{o.ID, a.ID}]
		// The first revocation is the earliest: if it is not before p,
		// none is.
		if ok && g.meta[rid].seq < p {
			return rid, true
		}
		return ID{}, false
	}
	st.ownDelegation = func(id ID) bool {
		o, ok := g.delegations[id]
		return ok && o.Authority == a.ID && o.Seq < p
	}
	return st
}

// VerifySignature checks that s's signatures make it a declaration of its
// issuer at its position (or, past the head, as the chain stands now): a
// genesis by the threshold of its own keys, anything else by the threshold
// of the root set then in effect or by an operational key its delegation
// allows (threshold.go). It makes no other chain-position check. Gossip uses
// it to act on a revocation before it is ordered.
func (g *Graph) VerifySignature(s *Signed) error {
	if s.Decl.Kind == KindGenesis {
		if err := genesisState(s).authorise(s); err != nil {
			return err
		}
		return g.checkAdmission(s)
	}
	a, ok := g.authorities[s.Decl.Authority]
	if !ok {
		return fmt.Errorf("authority: %w %s", ErrUnknownAuthority, s.Decl.Authority.Short())
	}
	p := a.Head + 1
	if s.Decl.Kind.OnChain() && s.Decl.Seq < p {
		p = s.Decl.Seq
	}
	return g.stateAt(a, p).authorise(s)
}

// Check reports whether Apply would accept s, without changing the graph. It
// is deterministic: the same graph and bytes give the same answer on every
// node. It reads no clock: validity windows are the verifier's business,
// except an operational key's, which Check judges at the declaration's own
// IssuedAt (see KeyDelegation).
//
// Errors, wrapped: ErrOffChain, ErrDuplicate, ErrUnknownAuthority, ErrGap,
// ErrConflict; the signature errors ErrBadSignature, ErrThresholdNotMet,
// ErrKeyRotated, ErrKeyNotAuthorised; ErrKeyReuse; and, for a validly
// signed declaration other than the one at its position, an
// *EquivocationError (both ErrConflict and ErrEquivocation). Nothing is
// called a conflict before its signatures verify: an unsigned claim proves
// nothing.
func (g *Graph) Check(s *Signed) error {
	if !s.Decl.Kind.OnChain() {
		return fmt.Errorf("authority: %w: a %v is not stored in the graph", ErrOffChain, s.Decl.Kind)
	}
	if s.Decl.Kind == KindGenesis {
		if _, ok := g.authorities[s.ID]; ok {
			return fmt.Errorf("authority: genesis %s: %w", s.ID.Short(), ErrDuplicate)
		}
		if err := genesisState(s).authorise(s); err != nil {
			return err
		}
		return g.checkAdmission(s)
	}
	a, ok := g.authorities[s.Decl.Authority]
	if !ok {
		return fmt.Errorf("authority: %v %s: %w %s", s.Decl.Kind, s.ID.Short(), ErrUnknownAuthority, s.Decl.Authority.Short())
	}
	if held, ok := g.positions[seqKey(a.ID, s.Decl.Seq)]; ok {
		if held.id == s.ID {
			return fmt.Errorf("authority: %v %s: %w", s.Decl.Kind, s.ID.Short(), ErrDuplicate)
		}
		// Verify before calling it a conflict: an unsigned claim proves nothing.
		if err := g.stateAt(a, s.Decl.Seq).authorise(s); err != nil {
			return err
		}
		return g.conflict(a, held, s)
	}
	if s.Decl.Seq > a.Head+1 {
		return fmt.Errorf("authority: %v %s at %s seq %d: %w: head is %d", s.Decl.Kind, s.ID.Short(), a.Name, s.Decl.Seq, ErrGap, a.Head)
	}
	// Verify before calling a wrong prev a conflict, as above.
	if err := g.stateAt(a, s.Decl.Seq).authorise(s); err != nil {
		return err
	}
	if s.Decl.Prev != a.HeadID {
		return fmt.Errorf("authority: %v %s at %s seq %d: %w: prev %s is not the head %s", s.Decl.Kind, s.ID.Short(), a.Name, s.Decl.Seq, ErrConflict, s.Decl.Prev.Short(), a.HeadID.Short())
	}
	if err := g.checkKeyRoles(a, s); err != nil {
		return err
	}
	return g.checkConsortium(a, s)
}

// checkKeyRoles keeps root keys and operational keys apart (threshold.go).
func (g *Graph) checkKeyRoles(a *AuthorityInfo, s *Signed) error {
	switch d := &s.Decl; d.Kind {
	case KindDelegation:
		if kid := d.Delegation.Key.KeyID(); a.everRoot(kid) {
			return fmt.Errorf("authority: delegation %s: %w: key %x is or was a root key of %s; delegate a key of its own", s.ID.Short(), ErrKeyReuse, kid, a.Name)
		}
	case KindRevocation:
		return g.checkRevocable(a, s)
	case KindRotation:
		for _, k := range d.Rotation.RootKeys {
			if kid := k.KeyID(); g.everDelegated(a.ID, kid) {
				return fmt.Errorf("authority: rotation %s: %w: key %x was delegated by %s as an operational key; it cannot become a root key", s.ID.Short(), ErrKeyReuse, kid, a.Name)
			}
		}
	}
	return nil
}

// Apply checks s and, if it is accepted, adds it to the graph. A validly
// signed declaration that conflicts with the one at its position is not
// added, but the pair is kept as evidence of equivocation (Equivocations)
// and Apply returns the *EquivocationError.
func (g *Graph) Apply(s *Signed) error {
	if err := g.Check(s); err != nil {
		var eq *EquivocationError
		if errors.As(err, &eq) {
			g.recordEvidence(g.authorities[s.Decl.Authority], eq.Evidence)
		}
		return err
	}
	g.ApplyVerified(s)
	return nil
}

// ApplyVerified adds s to the graph without checking it.
//
// WARNING: only for declarations that passed Check against this very state,
// such as a store replaying what it accepted earlier in the same order.
func (g *Graph) ApplyVerified(s *Signed) {
	d := &s.Decl
	g.order = append(g.order, s.ID)
	g.meta[s.ID] = declMeta{kind: d.Kind, seq: d.Seq}
	switch d.Kind {
	case KindGenesis:
		a := &AuthorityInfo{
			ID:          s.ID,
			Name:        d.Genesis.Name,
			Kind:        d.Genesis.Kind,
			RootKeys:    d.Genesis.RootKeys,
			Threshold:   int(d.Genesis.Threshold),
			HeadID:      s.ID,
			Roots:       []RootSet{newRootSet(d.Genesis.RootKeys, int(d.Genesis.Threshold), 0, s.ID, d.IssuedAt)},
			MaxIssuedAt: d.IssuedAt,
			OIDC:        d.Genesis.OIDC,
			X509Roots:   d.Genesis.X509Roots,
			SPIFFE:      d.Genesis.SPIFFE,
		}
		g.anchors.add(a)
		g.authorities[s.ID] = a
		g.byName[a.Name] = append(g.byName[a.Name], s.ID)
		g.positions[seqKey(s.ID, 0)] = position{id: s.ID, raw: s.Raw, maxIssuedAt: d.IssuedAt}
		g.applyConsortium(s)
		return
	case KindRule:
		g.rules[d.Authority] = append(g.rules[d.Authority], &RuleInfo{ID: s.ID, Target: d.Authority, Seq: d.Seq, Rule: *d.Rule})
	case KindRevocation:
		k := revKey{d.Revocation.Target, d.Authority}
		if _, ok := g.revoked[k]; !ok {
			g.revoked[k] = s.ID
		}
	case KindDelegation:
		o := &OpKeyInfo{ID: s.ID, Authority: d.Authority, Seq: d.Seq, Key: d.Delegation.Key,
			Kinds: d.Delegation.Kinds, NotBefore: d.Delegation.NotBefore, NotAfter: d.Delegation.NotAfter}
		r, _ := makeOpRef(d.Authority, o.Key.KeyID())
		g.opKeys[r] = append(g.opKeys[r], o)
		g.delegations[s.ID] = o
	case KindRotation:
		g.rotate(g.authorities[d.Authority], s)
	case KindAnchors:
		g.replaceAnchors(g.authorities[d.Authority], d.Anchors)
	case KindCharter, KindMembership, KindNodes:
		g.applyConsortium(s)
	}
	a := g.authorities[d.Authority]
	a.Head, a.HeadID = d.Seq, s.ID
	a.MaxIssuedAt = max(a.MaxIssuedAt, d.IssuedAt)
	g.positions[seqKey(a.ID, d.Seq)] = position{id: s.ID, raw: s.Raw, maxIssuedAt: a.MaxIssuedAt}
}

// ResolveAuthority finds an authority by ID (hex) or by name. A name must be
// unique in the graph: anyone can found an authority called "aws-prod", so an
// ambiguous name is an error that lists the candidates.
func ResolveAuthority(v View, nameOrID string) (ID, error) {
	if id, err := ParseID(nameOrID); err == nil {
		if _, ok := v.Authority(id); ok {
			return id, nil
		}
		return id, fmt.Errorf("authority: %w: no authority with id %s in the graph", ErrUnknownAuthority, id)
	}
	ids := v.AuthoritiesNamed(nameOrID)
	switch len(ids) {
	case 0:
		return ID{}, fmt.Errorf("authority: %w: no authority named %q in the graph at version %d", ErrUnknownAuthority, nameOrID, v.Version())
	case 1:
		return ids[0], nil
	}
	return ID{}, fmt.Errorf("authority: name %q is ambiguous: %d authorities carry it (%s, ...): use an id", nameOrID, len(ids), ids[0])
}
