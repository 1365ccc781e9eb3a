package authority

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The consortium: which authorities are members of the mesh, which of them
// vote in Raft, and how a member is admitted or removed. Like CCF's member
// governance, every change is a signed declaration in the agreed graph, so
// the log shows who admitted whom:
//
//   - A Charter, declared by one founder, names the founding members (itself
//     among them), the voters and the admission threshold k. It is active
//     once every other founder has declared a Membership{ActionRatify} of
//     it. Until then the graph is in bootstrap: every authority may declare
//     anything (as without a charter at all).
//   - Once active, a Membership{ActionAdmit, X} by k distinct current members
//     admits X (its genesis is accepted only from then on); k
//     Membership{ActionRemove, X} remove member X; Membership{ActionLeave}
//     of a member by itself removes it at once. A removal or leave that
//     would leave fewer than k members is refused: the consortium could
//     never admit again.
//   - A non-member (an applicant, a removed member) can get nothing stored:
//     Check refuses its declarations with ErrNotMember, and Verify denies
//     with not-member what would rest on it (its credentials, its rules).
//
// Nodes: an authority declares the libp2p peers that run it (Genesis.Nodes,
// replaced by a later Nodes declaration). A peer ID belongs to at most one
// authority. The node binds the Raft transport to the peers of members.

// Errors of the consortium rules, returned wrapped by Check.
var (
	// ErrNotMember: the consortium's charter is active and the declaration's
	// issuer is not a member (not admitted yet, removed, or left). A node
	// holds such declarations as pending requests; they are never stored.
	ErrNotMember = errors.New("not a member of the consortium")
	// ErrMembership: a charter, membership or nodes declaration that breaks
	// the consortium's rules (a second charter, approving twice, removing
	// a non-member, a peer another authority declared, ...).
	ErrMembership = errors.New("membership rule broken")
)

// Bounds on consortium declarations.
const (
	MaxMembers     = 64
	MaxNodes       = 16
	MaxNodeAddrs   = 8
	MaxAddrLen     = 256
	MaxPeerIDLen   = 128
	maxMemberCount = MaxMembers
)

// Charter founds the consortium (see above). Invariant (validate): Members
// sorted ascending and distinct, 1..MaxMembers; Voters a sorted subset of
// Members; 1 <= Threshold <= len(Members).
type Charter struct {
	Members []ID `cbor:"1,keyasint"`
	// Voters vote in Raft; empty means every member does.
	Voters    []ID  `cbor:"2,keyasint,omitempty"`
	Threshold uint8 `cbor:"3,keyasint"`
	// AdmitVoters makes admitted members Raft voters too.
	AdmitVoters bool `cbor:"4,keyasint,omitempty"`
}

// MemberAction is what a Membership declaration does. The numbers are part
// of the wire format.
type MemberAction uint8

const (
	// ActionRatify: a founder agrees to the charter named by Subject.
	ActionRatify MemberAction = 1
	// ActionAdmit: a member approves admitting the authority Subject.
	ActionAdmit MemberAction = 2
	// ActionRemove: a member approves removing the member Subject.
	ActionRemove MemberAction = 3
	// ActionLeave: the member Subject (the declarer itself) leaves.
	ActionLeave MemberAction = 4
)

// String names the action.
func (a MemberAction) String() string {
	switch a {
	case ActionRatify:
		return "ratify"
	case ActionAdmit:
		return "admit"
	case ActionRemove:
		return "remove"
	case ActionLeave:
		return "leave"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Membership is one member's act on the consortium.
type Membership struct {
	Action  MemberAction `cbor:"1,keyasint"`
	Subject ID           `cbor:"2,keyasint"`
}

// NodeRef is one node (libp2p peer) of an authority.
type NodeRef struct {
	// PeerID is the libp2p peer ID in its text form (base58 or CID).
	PeerID string `cbor:"1,keyasint"`
	// Addrs are multiaddrs the peer listens on, for discovery; optional.
	Addrs []string `cbor:"2,keyasint,omitempty"`
}

// Nodes replaces the declaring authority's list of nodes.
type Nodes struct {
	Peers []NodeRef `cbor:"1,keyasint"`
}

// Consortium is the graph's membership state. The graph replaces it on every
// change and never modifies one in place, so a reader may keep it.
type Consortium struct {
	// Charter is the charter declaration's ID.
	Charter ID
	// Founders are the charter's members; Ratified those that ratified it
	// (the declarer first).
	Founders []ID
	Ratified []ID
	// Active: every founder ratified.
	Active      bool
	Threshold   int
	AdmitVoters bool
	// Members are the current members in admission order (founders in
	// charter order first); Voters the members that vote, in that order.
	// Invariant: both empty until Active; Voters a subset of Members.
	Members []ID
	Voters  []ID
	// Removed are authorities that were members and are no longer
	// (removed or left), in that order; one that is admitted again leaves
	// this list.
	Removed []ID
	// charterVoters is the charter's voter list (nil: all founders).
	charterVoters []ID
}

// IsMember reports whether id is a current member. Before the charter is
// active every authority counts as one (bootstrap).
func (c *Consortium) IsMember(id ID) bool {
	return c == nil || !c.Active || slices.Contains(c.Members, id)
}

// IsVoter reports whether id votes in Raft (every authority in bootstrap).
func (c *Consortium) IsVoter(id ID) bool {
	return c == nil || !c.Active || slices.Contains(c.Voters, id)
}

func (c *Consortium) clone() *Consortium {
	n := *c
	n.Founders = slices.Clone(c.Founders)
	n.Ratified = slices.Clone(c.Ratified)
	n.Members = slices.Clone(c.Members)
	n.Voters = slices.Clone(c.Voters)
	n.Removed = slices.Clone(c.Removed)
	return &n
}

// approvalKey counts approvals of one action on one subject.
type approvalKey struct {
	subject ID
	action  MemberAction
}

// consortiumState is the graph's membership bookkeeping.
type consortiumState struct {
	c *Consortium
	// approvals holds the approvers of the current round per subject and
	// action, in order; a round ends when the change is made.
	approvals map[approvalKey][]ID
	// nodes is each authority's declared nodes; peers maps a peer ID to
	// the authority that declared it. Invariant: peers[p] == a iff some
	// nodes[a][i].PeerID == p.
	nodes map[ID][]NodeRef
	peers map[string]ID
}

func newConsortiumState() consortiumState {
	return consortiumState{approvals: map[approvalKey][]ID{}, nodes: map[ID][]NodeRef{}, peers: map[string]ID{}}
}

func (c *Charter) validate() error {
	if len(c.Members) == 0 || len(c.Members) > MaxMembers {
		return fmt.Errorf("charter must name 1 to %d members, got %d", MaxMembers, len(c.Members))
	}
	if err := sortedIDs("charter members", c.Members); err != nil {
		return err
	}
	if err := sortedIDs("charter voters", c.Voters); err != nil {
		return err
	}
	for _, v := range c.Voters {
		if _, ok := slices.BinarySearchFunc(c.Members, v, compareID); !ok {
			return fmt.Errorf("charter voter %s is not one of its members", v.Short())
		}
	}
	if c.Threshold < 1 || int(c.Threshold) > len(c.Members) {
		return fmt.Errorf("charter threshold %d: want 1 to %d (its members)", c.Threshold, len(c.Members))
	}
	return nil
}

func compareID(a, b ID) int { return bytes.Compare(a[:], b[:]) }

func sortedIDs(what string, ids []ID) error {
	for i, id := range ids {
		if id.IsZero() {
			return fmt.Errorf("%s: the zero id", what)
		}
		if i > 0 && compareID(ids[i-1], id) >= 0 {
			return fmt.Errorf("%s must be sorted ascending and distinct (%s after %s)", what, id.Short(), ids[i-1].Short())
		}
	}
	return nil
}

func (m *Membership) validate() error {
	if m.Action < ActionRatify || m.Action > ActionLeave {
		return fmt.Errorf("membership action %d: want 1 (ratify) to 4 (leave)", uint8(m.Action))
	}
	if m.Subject.IsZero() {
		return fmt.Errorf("membership %v of the zero id", m.Action)
	}
	return nil
}

func validNodes(nodes []NodeRef) error {
	if len(nodes) > MaxNodes {
		return fmt.Errorf("%d nodes declared, at most %d", len(nodes), MaxNodes)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if n.PeerID == "" || len(n.PeerID) > MaxPeerIDLen || !isAlnum(n.PeerID) {
			return fmt.Errorf("node peer ID %q: want 1 to %d letters and digits", abbrev(n.PeerID), MaxPeerIDLen)
		}
		if seen[n.PeerID] {
			return fmt.Errorf("node peer ID %s declared twice", n.PeerID)
		}
		seen[n.PeerID] = true
		if len(n.Addrs) > MaxNodeAddrs {
			return fmt.Errorf("node %s has %d addresses, at most %d", n.PeerID, len(n.Addrs), MaxNodeAddrs)
		}
		for _, a := range n.Addrs {
			if !strings.HasPrefix(a, "/") || len(a) > MaxAddrLen || !utf8.ValidString(a) || strings.ContainsAny(a, " \t\r\n") {
				return fmt.Errorf("node %s address %q: want a multiaddr (starting with /) of at most %d bytes", n.PeerID, abbrev(a), MaxAddrLen)
			}
		}
	}
	return nil
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// Consortium returns the membership state: nil before any charter. The
// caller must not modify it.
func (g *Graph) Consortium() *Consortium { return g.cons.c }

// IsMember reports whether id is a current member; every authority is one
// while no charter is active.
func (g *Graph) IsMember(id ID) bool { return g.cons.c.IsMember(id) }

// IsVoter reports whether id votes in Raft; every authority does while no
// charter is active.
func (g *Graph) IsVoter(id ID) bool { return g.cons.c.IsVoter(id) }

// Approvals returns the members whose approval of action on subject counts
// in the current round, in order.
func (g *Graph) Approvals(subject ID, action MemberAction) []ID {
	return g.countable(approvalKey{subject, action})
}

// Nodes returns the nodes authority declared (its genesis's, or its latest
// Nodes declaration's). The caller must not modify them.
func (g *Graph) Nodes(authority ID) []NodeRef { return g.cons.nodes[authority] }

// PeerAuthority returns the authority that declared peerID as its node.
func (g *Graph) PeerAuthority(peerID string) (ID, bool) {
	id, ok := g.cons.peers[peerID]
	return id, ok
}

// countable is the approvers of k that are still members.
func (g *Graph) countable(k approvalKey) []ID {
	var out []ID
	for _, id := range g.cons.approvals[k] {
		if g.cons.c.IsMember(id) {
			out = append(out, id)
		}
	}
	return out
}

// checkAdmission is Check's consortium rule for a genesis, after its
// signatures verified.
func (g *Graph) checkAdmission(s *Signed) error {
	c := g.cons.c
	if c != nil && c.Active && !c.IsMember(s.ID) {
		n := len(g.countable(approvalKey{s.ID, ActionAdmit}))
		return fmt.Errorf("authority: genesis %s of %q: %w: %d of %d approvals to admit it are agreed", s.ID.Short(), s.Decl.Genesis.Name, ErrNotMember, n, c.Threshold)
	}
	return g.checkPeers(s.ID, s.Decl.Genesis.Nodes)
}

// checkPeers refuses nodes that another authority declared.
func (g *Graph) checkPeers(a ID, nodes []NodeRef) error {
	for _, n := range nodes {
		if owner, ok := g.cons.peers[n.PeerID]; ok && owner != a {
			return fmt.Errorf("authority: %w: peer %s is already declared by %s", ErrMembership, n.PeerID, authorityName(g, owner))
		}
	}
	return nil
}

// checkConsortium is Check's consortium rule for an on-chain declaration of
// a, after its signatures verified and its position was found free.
func (g *Graph) checkConsortium(a *AuthorityInfo, s *Signed) error {
	c := g.cons.c
	d := &s.Decl
	what := fmt.Sprintf("%v %s of %s", d.Kind, s.ID.Short(), a.Name)
	if c != nil && c.Active && !c.IsMember(a.ID) {
		return fmt.Errorf("authority: %s: %w", what, ErrNotMember)
	}
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("authority: %s: %w: %s", what, ErrMembership, fmt.Sprintf(format, args...))
	}
	switch d.Kind {
	case KindCharter:
		if c != nil && c.Active {
			return refuse("the consortium already has the active charter %s", c.Charter.Short())
		}
		ch := d.Charter
		if _, ok := slices.BinarySearchFunc(ch.Members, a.ID, compareID); !ok {
			return refuse("a charter must name its declarer among its members")
		}
		for _, m := range ch.Members {
			if _, ok := g.authorities[m]; !ok {
				return refuse("member %s has no genesis in the graph", m.Short())
			}
		}
	case KindMembership:
		return g.checkMembership(a, d.Membership, refuse)
	case KindNodes:
		return g.checkPeers(a.ID, d.Nodes.Peers)
	}
	return nil
}

func (g *Graph) checkMembership(a *AuthorityInfo, m *Membership, refuse func(string, ...any) error) error {
	c := g.cons.c
	if m.Action == ActionRatify {
		switch {
		case c == nil || c.Charter != m.Subject:
			return refuse("%s is not the consortium's charter", m.Subject.Short())
		case c.Active:
			return refuse("the charter is already active")
		case !slices.Contains(c.Founders, a.ID):
			return refuse("only a founder named by the charter ratifies it")
		case slices.Contains(c.Ratified, a.ID):
			return refuse("%s ratified the charter already", a.Name)
		}
		return nil
	}
	if c == nil || !c.Active {
		return refuse("no charter is active: there is no consortium to %v in yet", m.Action)
	}
	subj := authorityName(g, m.Subject)
	switch m.Action {
	case ActionAdmit:
		if c.IsMember(m.Subject) {
			return refuse("%s is a member already", subj)
		}
	case ActionRemove:
		if m.Subject == a.ID {
			return refuse("a member leaves (action leave) rather than approving its own removal")
		}
		if !c.IsMember(m.Subject) {
			return refuse("%s is not a member", subj)
		}
		if len(c.Members)-1 < c.Threshold {
			return refuse("removing %s would leave %d members, fewer than the threshold %d", subj, len(c.Members)-1, c.Threshold)
		}
	case ActionLeave:
		if m.Subject != a.ID {
			return refuse("only a member itself declares that it leaves")
		}
		if len(c.Members)-1 < c.Threshold {
			return refuse("%s leaving would leave %d members, fewer than the threshold %d", a.Name, len(c.Members)-1, c.Threshold)
		}
		return nil
	}
	if slices.Contains(g.countable(approvalKey{m.Subject, m.Action}), a.ID) {
		return refuse("%s approved to %v %s already", a.Name, m.Action, subj)
	}
	return nil
}

// applyConsortium updates the membership state for an accepted declaration
// (ApplyVerified calls it for every kind; most change nothing).
func (g *Graph) applyConsortium(s *Signed) {
	d := &s.Decl
	switch d.Kind {
	case KindGenesis:
		g.setNodes(s.ID, d.Genesis.Nodes)
	case KindNodes:
		g.setNodes(d.Authority, d.Nodes.Peers)
	case KindCharter:
		ch := d.Charter
		c := &Consortium{Charter: s.ID, Founders: slices.Clone(ch.Members), Ratified: []ID{d.Authority},
			Threshold: int(ch.Threshold), AdmitVoters: ch.AdmitVoters, charterVoters: slices.Clone(ch.Voters)}
		g.cons.c = c
		g.maybeActivate()
	case KindMembership:
		g.applyMembership(d.Authority, d.Membership)
	}
}

func (g *Graph) setNodes(a ID, nodes []NodeRef) {
	for _, n := range g.cons.nodes[a] {
		delete(g.cons.peers, n.PeerID)
	}
	if len(nodes) == 0 {
		delete(g.cons.nodes, a)
		return
	}
	g.cons.nodes[a] = nodes
	for _, n := range nodes {
		g.cons.peers[n.PeerID] = a
	}
}

// maybeActivate activates the charter once every founder ratified it.
func (g *Graph) maybeActivate() {
	c := g.cons.c
	if c.Active || len(c.Ratified) < len(c.Founders) {
		return
	}
	c.Active = true
	// Founders in charter order (ascending ID): every replica agrees.
	c.Members = slices.Clone(c.Founders)
	if len(c.charterVoters) == 0 {
		c.Voters = slices.Clone(c.Founders)
	} else {
		c.Voters = slices.Clone(c.charterVoters)
	}
}

func (g *Graph) applyMembership(by ID, m *Membership) {
	c := g.cons.c.clone()
	defer func() { g.cons.c = c }()
	switch m.Action {
	case ActionRatify:
		c.Ratified = append(c.Ratified, by)
		g.cons.c = c
		g.maybeActivate()
		return
	case ActionLeave:
		removeMember(c, by)
		return
	}
	k := approvalKey{m.Subject, m.Action}
	g.cons.approvals[k] = append(g.countable(k), by)
	if len(g.cons.approvals[k]) < c.Threshold {
		return
	}
	delete(g.cons.approvals, k)
	switch m.Action {
	case ActionAdmit:
		c.Members = append(c.Members, m.Subject)
		if c.AdmitVoters {
			c.Voters = append(c.Voters, m.Subject)
		}
		c.Removed = slices.DeleteFunc(c.Removed, func(id ID) bool { return id == m.Subject })
		// A new round for any later removal.
		delete(g.cons.approvals, approvalKey{m.Subject, ActionRemove})
	case ActionRemove:
		removeMember(c, m.Subject)
	}
}

func removeMember(c *Consortium, id ID) {
	c.Members = slices.DeleteFunc(c.Members, func(x ID) bool { return x == id })
	c.Voters = slices.DeleteFunc(c.Voters, func(x ID) bool { return x == id })
	c.Removed = append(c.Removed, id)
}
