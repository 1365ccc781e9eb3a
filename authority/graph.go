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
	ID        ID
	Name      string
	Kind      string
	RootKeys  []PublicKey
	Threshold int
	// Head is the seq of the authority's latest declaration in the graph,
	// HeadID its ID. Invariant: Head == 0 iff HeadID == ID (the genesis).
	Head   uint64
	HeadID ID
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
	// AuthoritiesNamed returns the IDs of authorities whose genesis carries
	// name, in acceptance order.
	AuthoritiesNamed(name string) []ID
	// RulesFor returns the rules declared by target, in chain order.
	RulesFor(target ID) []*RuleInfo
	// RevokedBy reports whether issuer has revoked its declaration target, and
	// by which revocation.
	RevokedBy(target, issuer ID) (ID, bool)
}

type revKey struct{ target, issuer ID }

// Graph is the federation graph in memory: authorities, their chain heads,
// rules and revocations, in acceptance order. It is the one implementation of
// the graph's semantics; the badger store persists what it accepts and a
// bundle reader rebuilds one from a bundle.
//
// A Graph is not safe for concurrent use: callers serialise Apply against
// readers (chainstore holds a RWMutex).
type Graph struct {
	order       []ID
	ids         map[ID]struct{}
	authorities map[ID]*AuthorityInfo
	byName      map[string][]ID
	rules       map[ID][]*RuleInfo
	revoked     map[revKey]ID
	// positions maps (authority, seq) to the declaration there, for
	// conflict detection.
	positions map[revKey]ID
}

// NewGraph returns an empty graph.
func NewGraph() *Graph {
	return &Graph{
		ids:         map[ID]struct{}{},
		authorities: map[ID]*AuthorityInfo{},
		byName:      map[string][]ID{},
		rules:       map[ID][]*RuleInfo{},
		revoked:     map[revKey]ID{},
		positions:   map[revKey]ID{},
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
	_, ok := g.ids[id]
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

// VerifySignature checks s's signature against its issuer's root keys in the
// graph (a genesis against its own keys), without any chain-position check.
// Gossip uses it to act on a revocation before it is ordered.
func (g *Graph) VerifySignature(s *Signed) error {
	if s.Decl.Kind == KindGenesis {
		return s.VerifyWith(s.Decl.Genesis.RootKeys)
	}
	a, ok := g.authorities[s.Decl.Authority]
	if !ok {
		return fmt.Errorf("authority: %w %s", ErrUnknownAuthority, s.Decl.Authority.Short())
	}
	return s.VerifyWith(a.RootKeys)
}

// Check reports whether Apply would accept s, without changing the graph. It
// is deterministic: the same graph and bytes give the same answer on every
// node (it reads no clock: validity windows are the verifier's business).
func (g *Graph) Check(s *Signed) error {
	if !s.Decl.Kind.OnChain() {
		return fmt.Errorf("authority: %w: a %v is not stored in the graph", ErrOffChain, s.Decl.Kind)
	}
	if s.Decl.Kind == KindGenesis {
		if _, ok := g.authorities[s.ID]; ok {
			return fmt.Errorf("authority: genesis %s: %w", s.ID.Short(), ErrDuplicate)
		}
		return s.VerifyWith(s.Decl.Genesis.RootKeys)
	}
	a, ok := g.authorities[s.Decl.Authority]
	if !ok {
		return fmt.Errorf("authority: %v %s: %w %s", s.Decl.Kind, s.ID.Short(), ErrUnknownAuthority, s.Decl.Authority.Short())
	}
	if held, ok := g.positions[seqKey(a.ID, s.Decl.Seq)]; ok {
		if held == s.ID {
			return fmt.Errorf("authority: %v %s: %w", s.Decl.Kind, s.ID.Short(), ErrDuplicate)
		}
		// Verify before calling it a conflict: an unsigned claim proves nothing.
		if err := s.VerifyWith(a.RootKeys); err != nil {
			return err
		}
		return fmt.Errorf("authority: %v %s at %s seq %d: %w: %s holds that position", s.Decl.Kind, s.ID.Short(), a.Name, s.Decl.Seq, ErrConflict, held.Short())
	}
	if s.Decl.Seq > a.Head+1 {
		return fmt.Errorf("authority: %v %s at %s seq %d: %w: head is %d", s.Decl.Kind, s.ID.Short(), a.Name, s.Decl.Seq, ErrGap, a.Head)
	}
	// Verify before calling a wrong prev a conflict, as above.
	if err := s.VerifyWith(a.RootKeys); err != nil {
		return err
	}
	if s.Decl.Prev != a.HeadID {
		return fmt.Errorf("authority: %v %s at %s seq %d: %w: prev %s is not the head %s", s.Decl.Kind, s.ID.Short(), a.Name, s.Decl.Seq, ErrConflict, s.Decl.Prev.Short(), a.HeadID.Short())
	}
	return nil
}

// Apply checks s and, if it is accepted, adds it to the graph.
func (g *Graph) Apply(s *Signed) error {
	if err := g.Check(s); err != nil {
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
	g.ids[s.ID] = struct{}{}
	switch d.Kind {
	case KindGenesis:
		a := &AuthorityInfo{
			ID:        s.ID,
			Name:      d.Genesis.Name,
			Kind:      d.Genesis.Kind,
			RootKeys:  d.Genesis.RootKeys,
			Threshold: int(d.Genesis.Threshold),
			HeadID:    s.ID,
		}
		g.authorities[s.ID] = a
		g.byName[a.Name] = append(g.byName[a.Name], s.ID)
		g.positions[seqKey(s.ID, 0)] = s.ID
		return
	case KindRule:
		g.rules[d.Authority] = append(g.rules[d.Authority], &RuleInfo{ID: s.ID, Target: d.Authority, Seq: d.Seq, Rule: *d.Rule})
	case KindRevocation:
		k := revKey{d.Revocation.Target, d.Authority}
		if _, ok := g.revoked[k]; !ok {
			g.revoked[k] = s.ID
		}
	}
	a := g.authorities[d.Authority]
	a.Head, a.HeadID = d.Seq, s.ID
	g.positions[seqKey(a.ID, d.Seq)] = s.ID
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
