package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fednode/fednode/authority"
)

// The consortium in the node (authority/consortium.go holds the rules):
//
//   - Admission requests. Once the charter is active, a non-member's
//     declarations (an applicant's genesis and whatever it signs next) are
//     held in the pending pool as admission requests: never proposed, so
//     never stored, and listed by GET /v1/admissions. As soon as the
//     approvals that admit the applicant are committed, the proposer
//     carries its genesis (and its chain after it) to Raft like any other.
//   - Raft membership follows the graph. After each committed change (and
//     on a timer) the leader reconciles the Raft configuration: the nodes
//     declared by voters are voters, other members' nodes non-voters, every
//     other server is removed. No operator decides it alone; once a charter
//     is active the join protocol adds no voter.
//   - Peer identity. Once a charter is active the Raft transport admits only
//     peers that a member authority declared (Genesis.Nodes, Nodes).

// Bounds and timing of admission requests and reconciliation.
const (
	// maxApplicants bounds the distinct non-members whose declarations the
	// pool holds, and maxApplicantDecls each one's declarations: anyone
	// can mint a genesis, so requests must not crowd out the pool.
	maxApplicants     = 256
	maxApplicantDecls = 64
	// admissionTTL is how long an admission request is held (a joining
	// node re-sends its genesis every admissionResend while it waits).
	admissionTTL    = time.Hour
	admissionResend = 5 * time.Second
	// reconcileInterval is how often every node re-checks the Raft
	// configuration and transport against the graph (besides after each
	// committed change).
	reconcileInterval = time.Second
	// removalGrace is how long the leader keeps a server the graph no
	// longer wants before removing it, so that the node sees the committed
	// change that removed it (its commit index reaches it with the next
	// heartbeats) before it is cut off from the log.
	removalGrace = 1500 * time.Millisecond
	// reconcileTimeout bounds one round of configuration changes.
	reconcileTimeout = 20 * time.Second
)

// Errors of Submit for the consortium.
var (
	// ErrTooManyApplicants: the pool already holds the admission requests
	// of maxApplicants non-members (or maxApplicantDecls of this one).
	ErrTooManyApplicants = errors.New("node: too many pending admission requests")
	// ErrRefused: a membership act the agreed graph refuses as it stands
	// (authority.ErrMembership: approving twice, removing a non-member,
	// leaving below the threshold, ...), said at once rather than accepted
	// and dropped when Raft orders it.
	ErrRefused = errors.New("node: refused by the consortium's rules")
)

// precheckMembership judges a membership act that extends its issuer's
// agreed head directly (nothing of the issuer pending before it) as the
// graph will, and refuses it now if the graph would.
func (n *Node) precheckMembership(sd *authority.Signed) error {
	if sd.Decl.Kind != authority.KindMembership {
		return nil
	}
	var err error
	n.store.View(func(v authority.View) {
		g, ok := v.(interface{ Check(*authority.Signed) error })
		a, known := v.Authority(sd.Decl.Authority)
		if !ok || !known || sd.Decl.Seq != a.Head+1 {
			return
		}
		if e := g.Check(sd); errors.Is(e, authority.ErrMembership) {
			err = fmt.Errorf("%w: %w", ErrRefused, e)
		}
	})
	return err
}

// issuerOf is the authority a declaration speaks for: a genesis is its own.
func issuerOf(sd *authority.Signed) authority.ID {
	if sd.Decl.Kind == authority.KindGenesis {
		return sd.ID
	}
	return sd.Decl.Authority
}

// activeCharter reports whether v's consortium has an active charter.
func activeCharter(v authority.View) bool {
	c := v.Consortium()
	return c != nil && c.Active
}

// heldIn reports whether sd is an admission request in v: the charter is
// active and its issuer is not a member.
func heldIn(v authority.View, sd *authority.Signed) bool {
	return activeCharter(v) && !v.IsMember(issuerOf(sd))
}

// isHeld is heldIn against the agreed graph now.
func (n *Node) isHeld(sd *authority.Signed) bool {
	var held bool
	n.store.View(func(v authority.View) { held = heldIn(v, sd) })
	return held
}

// heldAdmissions returns the IDs of the items that are admission requests
// now (one view for all).
func (n *Node) heldAdmissions(items []*pendingDecl) map[authority.ID]bool {
	held := map[authority.ID]bool{}
	n.store.View(func(v authority.View) {
		if !activeCharter(v) {
			return
		}
		for _, p := range items {
			if !v.IsMember(issuerOf(p.sd)) {
				held[p.sd.ID] = true
			}
		}
	})
	return held
}

// admissionRoom refuses sd, a non-member's declaration, when the pool holds
// enough admission requests already. Members' declarations always pass.
func (n *Node) admissionRoom(sd *authority.Signed) error {
	if !n.isHeld(sd) || n.pool.get(sd.ID) != nil {
		return nil
	}
	issuer := issuerOf(sd)
	applicants := map[authority.ID]int{}
	items := n.pool.list()
	held := n.heldAdmissions(items)
	for _, p := range items {
		if held[p.sd.ID] {
			applicants[issuerOf(p.sd)]++
		}
	}
	if _, known := applicants[issuer]; !known && len(applicants) >= maxApplicants {
		return fmt.Errorf("%w: %d applicants wait already (at most %d); retry later", ErrTooManyApplicants, len(applicants), maxApplicants)
	}
	if applicants[issuer] >= maxApplicantDecls {
		return fmt.Errorf("%w: %s has %d declarations waiting already (at most %d)", ErrTooManyApplicants, issuer.Short(), applicants[issuer], maxApplicantDecls)
	}
	return nil
}

// keepNotMember decides what the proposer does with a declaration the
// agreed graph refused with ErrNotMember: keep it as an admission request
// when its issuer is a non-member (it may be admitted later), drop it when
// the issuer is a member (the refusal is about something else it names).
func (n *Node) keepNotMember(sd *authority.Signed) bool { return n.isHeld(sd) }

// raftPeerAllowed admits a peer to the Raft transport: any peer while no
// charter is active (bootstrap), afterwards only a peer declared by a
// member authority, or one still in the Raft configuration: a removed
// member's node keeps the log until the leader takes it out of the
// configuration (removalGrace), so that it sees its own removal.
func (n *Node) raftPeerAllowed(peer string) bool {
	ok := true
	n.store.View(func(v authority.View) {
		if !activeCharter(v) {
			return
		}
		a, found := v.PeerAuthority(peer)
		ok = found && v.IsMember(a)
	})
	if ok {
		return true
	}
	n.cons.mu.Lock()
	defer n.cons.mu.Unlock()
	return n.cons.servers[peer]
}

// pokeMembership asks the membership loop to reconcile now.
func (n *Node) pokeMembership() {
	select {
	case n.cons.kick <- struct{}{}:
	default:
	}
}

// consortiumState is the node's memory for the membership loop.
type consortiumState struct {
	kick chan struct{}
	mu   sync.Mutex
	// unwanted is when the leader first saw each server the graph does
	// not want (see removalGrace).
	unwanted map[string]time.Time
	// lastErr is the last reconciliation error, for status.
	lastErr string
	// servers is the Raft configuration as last read (see raftPeerAllowed).
	servers map[string]bool
}

func newConsortiumState() consortiumState {
	return consortiumState{kick: make(chan struct{}, 1), unwanted: map[string]time.Time{}, servers: map[string]bool{}}
}

// membershipLoop keeps Raft's configuration and transport in line with the
// agreed graph's consortium.
func (n *Node) membershipLoop() {
	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.cons.kick:
		}
		n.reconcileOnce()
	}
}

// wantedServers is the Raft configuration the graph asks for: peer ID ->
// voter. ok is false while no charter is active (the configuration is then
// the join protocol's).
func (n *Node) wantedServers() (want map[string]bool, ok bool) {
	n.store.View(func(v authority.View) {
		c := v.Consortium()
		if c == nil || !c.Active {
			return
		}
		ok = true
		want = map[string]bool{}
		for _, m := range c.Members {
			voter := slices.Contains(c.Voters, m)
			for _, ref := range v.Nodes(m) {
				want[ref.PeerID] = want[ref.PeerID] || voter
			}
		}
	})
	return want, ok
}

func (n *Node) reconcileOnce() {
	servers, err := n.raft.Servers()
	if err != nil {
		return
	}
	in := make(map[string]bool, len(servers))
	for _, s := range servers {
		in[s.ID] = true
	}
	n.cons.mu.Lock()
	n.cons.servers = in
	n.cons.mu.Unlock()
	if dropped := n.raft.DropRefused(); dropped > 0 {
		n.log.Info("closed raft connections of peers no member declares", "n", dropped)
	}
	if !n.raft.IsLeader() {
		return
	}
	want, ok := n.wantedServers()
	if !ok {
		return
	}
	now := time.Now()
	n.cons.mu.Lock()
	for _, s := range servers {
		if _, wanted := want[s.ID]; wanted {
			delete(n.cons.unwanted, s.ID)
			continue
		}
		first, seen := n.cons.unwanted[s.ID]
		if !seen {
			n.cons.unwanted[s.ID] = now
			first = now
		}
		if now.Sub(first) < removalGrace {
			want[s.ID] = s.Voter // not yet: let it see its removal first
		}
	}
	n.cons.mu.Unlock()
	connected := n.host.ConnectedPeers()
	ready := func(id string) bool { return id == n.host.PeerID() || slices.Contains(connected, id) }
	ctx, cancel := context.WithTimeout(n.ctx, reconcileTimeout)
	defer cancel()
	changes, err := n.raft.Reconcile(ctx, want, ready)
	for _, c := range changes {
		n.log.Info("raft configuration follows the consortium", "op", c.Op, "peer", c.ID)
	}
	n.cons.mu.Lock()
	defer n.cons.mu.Unlock()
	if err != nil && n.ctx.Err() == nil {
		n.cons.lastErr = err.Error()
		n.log.Warn("reconcile the raft configuration with the consortium", "err", err)
		return
	}
	n.cons.lastErr = ""
}

// discoverMembers remembers the declared addresses of members' nodes and
// dials those this node is not connected to: peers learnt from the graph.
func (n *Node) discoverMembers(connected []string) {
	type target struct {
		peer  string
		addrs []string
	}
	var dial []target
	n.store.View(func(v authority.View) {
		c := v.Consortium()
		if c == nil || !c.Active {
			return
		}
		for _, m := range c.Members {
			for _, ref := range v.Nodes(m) {
				if ref.PeerID == n.host.PeerID() || len(ref.Addrs) == 0 {
					continue
				}
				dial = append(dial, target{ref.PeerID, ref.Addrs})
			}
		}
	})
	for _, t := range dial {
		if err := n.host.AddPeer(t.peer, t.addrs); err != nil {
			continue
		}
		if slices.Contains(connected, t.peer) {
			continue
		}
		for _, addr := range n.host.PeerAddrs(t.peer) {
			ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
			_, err := n.host.Connect(ctx, addr)
			cancel()
			if err == nil {
				break
			}
		}
	}
}

// declaredAddrs strips /p2p/ID from full addresses and drops port-0 ones
// (an address that names no port is nowhere to dial).
func declaredAddrs(full []string) []string {
	var out []string
	for _, a := range full {
		if i := strings.Index(a, "/p2p/"); i > 0 {
			a = a[:i]
		}
		if anyPort(a) {
			continue
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
		if len(out) == authority.MaxNodeAddrs {
			break
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// anyPort reports whether a multiaddr asks for port 0 (any free port).
func anyPort(a string) bool {
	parts := strings.Split(a, "/")
	for i := 0; i+1 < len(parts); i++ {
		if (parts[i] == "tcp" || parts[i] == "udp") && parts[i+1] == "0" {
			return true
		}
	}
	return false
}

// DeclareNodes submits a Nodes declaration naming this node at its current
// listen addresses when they differ from what its authority declared, and
// the home can sign (it holds its root threshold). It waits for the
// authority's genesis to be agreed and a Raft leader to be known (so the
// chain head it signs after is current) and this replica to have applied
// everything it knows to be committed, up to ctx. It returns the
// declaration, or nil when nothing had to change.
func (n *Node) DeclareNodes(ctx context.Context) (*authority.Signed, error) {
	if _, err := n.home.Signers(); err != nil {
		return nil, nil // an air-gapped root declares its nodes itself (sign --offline)
	}
	// Sign only at a current head: a replica that lags could sign at a
	// position another declaration of ours already holds.
	caughtUp := func() bool {
		st := n.raft.Stats()
		return st.Leader != "" && st.AppliedIndex >= st.CommitIndex
	}
	for !n.store.Has(n.home.Authority) || !caughtUp() {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("node: declare nodes: %s's genesis is not agreed yet: %w", n.home.Config.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	addrs := declaredAddrs(n.host.Addrs())
	var declared []authority.NodeRef
	n.store.View(func(v authority.View) { declared = v.Nodes(n.home.Authority) })
	self := n.host.PeerID()
	for _, ref := range declared {
		if ref.PeerID == self && sameSet(ref.Addrs, addrs) {
			return nil, nil
		}
	}
	peers := []authority.NodeRef{{PeerID: self, Addrs: addrs}}
	for _, ref := range declared {
		if ref.PeerID != self && len(peers) < authority.MaxNodes {
			peers = append(peers, ref) // the authority's other nodes stay
		}
	}
	sd, err := SignNext(ctx, n.home, n, n.now(), func(d *authority.Declaration) {
		d.Kind, d.Nodes = authority.KindNodes, &authority.Nodes{Peers: peers}
	})
	if err != nil {
		return nil, fmt.Errorf("node: declare nodes: %w", err)
	}
	n.log.Info("declared this node's addresses", "id", sd.ID.Short(), "addrs", addrs)
	return sd, nil
}

// ---- API and status ----

// AdmissionJSON is one pending admission request (GET /v1/admissions): a
// non-member authority whose declarations the node holds.
type AdmissionJSON struct {
	ID   authority.ID `json:"id"`
	Name string       `json:"name"`
	Kind string       `json:"kind,omitempty"`
	// Approvals are the members whose approval of the admission is agreed
	// in the current round; Threshold how many it takes.
	Approvals []AuthorityRef `json:"approvals"`
	Threshold int            `json:"threshold"`
	// Declarations is how many of its declarations the node holds (its
	// genesis and what it signed after).
	Declarations int `json:"declarations"`
	// Removed: it was a member and was removed or left.
	Removed bool `json:"removed,omitempty"`
}

// ConsortiumStatus is the "consortium" object of GET /v1/status.
type ConsortiumStatus struct {
	Charter   authority.ID   `json:"charter"`
	Active    bool           `json:"active"`
	Threshold int            `json:"threshold"`
	Founders  []AuthorityRef `json:"founders"`
	Ratified  []AuthorityRef `json:"ratified"`
	Members   []MemberJSON   `json:"members"`
	Removed   []AuthorityRef `json:"removed"`
	// Pending are the admission requests this node holds.
	Pending []AdmissionJSON `json:"pending"`
	// ReconcileError is the leader's last failure to make the Raft
	// configuration follow the consortium ("" when it does).
	ReconcileError string `json:"reconcile_error,omitempty"`
}

// MemberJSON is one current member.
type MemberJSON struct {
	AuthorityRef
	Voter bool     `json:"voter"`
	Nodes []string `json:"nodes"` // declared peer IDs
}

// approvalsView is the part of the graph beyond View that the admission
// listing reads.
type approvalsView interface {
	Approvals(subject authority.ID, a authority.MemberAction) []authority.ID
}

func refOf(v authority.View, id authority.ID) AuthorityRef {
	if a, ok := v.Authority(id); ok {
		return AuthorityRef{ID: id, Name: a.Name, Kind: a.Kind}
	}
	return AuthorityRef{ID: id}
}

func refsOf(v authority.View, ids []authority.ID) []AuthorityRef {
	out := make([]AuthorityRef, 0, len(ids))
	for _, id := range ids {
		out = append(out, refOf(v, id))
	}
	return out
}

// Admissions lists the pending admission requests, in the order their
// first declaration arrived.
func (n *Node) Admissions() []AdmissionJSON {
	items := n.pool.list()
	slices.SortStableFunc(items, func(a, b *pendingDecl) int { return a.added.Compare(b.added) })
	out := []AdmissionJSON{}
	n.store.View(func(v authority.View) {
		c := v.Consortium()
		if c == nil || !c.Active {
			return
		}
		at := map[authority.ID]int{}
		for _, p := range items {
			issuer := issuerOf(p.sd)
			if v.IsMember(issuer) {
				continue
			}
			i, ok := at[issuer]
			if !ok {
				i = len(out)
				at[issuer] = i
				adm := AdmissionJSON{ID: issuer, Threshold: c.Threshold, Removed: slices.Contains(c.Removed, issuer), Approvals: []AuthorityRef{}}
				if a, ok := v.Authority(issuer); ok {
					adm.Name, adm.Kind = a.Name, a.Kind
				}
				if av, ok := v.(approvalsView); ok {
					adm.Approvals = refsOf(v, av.Approvals(issuer, authority.ActionAdmit))
				}
				out = append(out, adm)
			}
			out[i].Declarations++
			if g := p.sd.Decl.Genesis; g != nil && out[i].Name == "" {
				out[i].Name, out[i].Kind = g.Name, g.Kind
			}
		}
	})
	return out
}

// ConsortiumStatus describes the consortium in this replica; nil before
// any charter.
func (n *Node) ConsortiumStatus() *ConsortiumStatus {
	var out *ConsortiumStatus
	n.store.View(func(v authority.View) {
		c := v.Consortium()
		if c == nil {
			return
		}
		out = &ConsortiumStatus{Charter: c.Charter, Active: c.Active, Threshold: c.Threshold,
			Founders: refsOf(v, c.Founders), Ratified: refsOf(v, c.Ratified), Members: []MemberJSON{}, Removed: refsOf(v, c.Removed)}
		for _, m := range c.Members {
			mj := MemberJSON{AuthorityRef: refOf(v, m), Voter: slices.Contains(c.Voters, m), Nodes: []string{}}
			for _, ref := range v.Nodes(m) {
				mj.Nodes = append(mj.Nodes, ref.PeerID)
			}
			out.Members = append(out.Members, mj)
		}
	})
	if out == nil {
		return nil
	}
	out.Pending = n.Admissions()
	n.cons.mu.Lock()
	out.ReconcileError = n.cons.lastErr
	n.cons.mu.Unlock()
	return out
}

func (n *Node) handleAdmissions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.Admissions())
}

// Admissions fetches the node's pending admission requests.
func (c *Client) Admissions(ctx context.Context) ([]AdmissionJSON, error) {
	var out []AdmissionJSON
	err := c.do(ctx, http.MethodGet, "/v1/admissions", nil, "", &out)
	return out, err
}

// ---- joining ----

// charterActive reports whether the agreed graph's charter is active.
func (n *Node) charterActive() bool {
	var ok bool
	n.store.View(func(v authority.View) { ok = activeCharter(v) })
	return ok
}

// admitJoinRequest is the join protocol once a charter is active (on the
// leader, where admitJoin forwards it): the genesis becomes an admission
// request, held here and gossiped to every member, and the joiner learns
// the members' addresses so that it stays connected while it waits.
func (n *Node) admitJoinRequest(gen *authority.Signed) joinResponse {
	if n.store.Has(gen.ID) && !n.isHeld(gen) {
		// A member's node that lost its Raft state: the leader's
		// reconciliation adds it back, the join protocol never does.
		return joinResponse{Pending: true, Leader: n.host.PeerID(), Peers: n.addressBook()}
	}
	if !n.store.Has(gen.ID) {
		if err := n.admit(gen); err != nil {
			return joinResponse{Error: fmt.Sprintf("join: %v", err)}
		}
		if err := n.host.Publish(n.ctx, gen.Raw); err != nil {
			n.log.Debug("publish an admission request", "id", gen.ID.Short(), "err", err)
		}
	}
	n.log.Info("holding an admission request", "authority", gen.Decl.Genesis.Name, "id", gen.ID.Short())
	return joinResponse{Pending: true, Leader: n.host.PeerID(), Peers: n.addressBook()}
}

// awaitAdmission is the joiner's side once its genesis is held as an
// admission request: it connects to the members it learnt of, publishes its
// genesis, and asks again every admissionResend (so that the request
// outlives any one member's pool) until its own genesis is agreed here,
// which happens once the members admitted it and the leader added this
// node to Raft.
func (n *Node) awaitAdmission(addrs []string, first joinResponse) {
	n.log.Info("join: the consortium holds our admission request; waiting for its members to approve", "authority", n.home.Authority.Short())
	resp := first
	for {
		n.mergeBook(resp.Peers)
		for id := range resp.Peers {
			if id == n.host.PeerID() || slices.Contains(n.host.ConnectedPeers(), id) {
				continue
			}
			for _, a := range n.host.PeerAddrs(id) {
				ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
				_, err := n.host.Connect(ctx, a)
				cancel()
				if err == nil {
					break
				}
			}
		}
		if err := n.host.Publish(n.ctx, n.home.Genesis); err != nil {
			n.log.Debug("join: publish our genesis", "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(admissionResend):
		}
		if n.store.Has(n.home.Authority) {
			n.log.Info("join: admitted to the consortium; our genesis is agreed")
			return
		}
		for _, addr := range addrs {
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			peer, err := n.host.Connect(ctx, addr)
			cancel()
			if err != nil {
				continue
			}
			var r joinResponse
			err = n.call(n.ctx, peer, ProtoJoin, joinRequest{PeerID: n.host.PeerID(), Addrs: n.host.Addrs(), Genesis: n.home.Genesis}, &r)
			if err == nil && (r.Pending || r.OK) {
				resp = r
				break
			}
		}
	}
}

// Membership states of an authority in one replica (MembershipOf).
const (
	MemberState  = "member"  // admitted under the active charter (its genesis may still be on its way), or agreed while no charter is active
	PendingState = "pending" // nothing of it agreed; under an active charter, its admission request held here
	RemovedState = "removed" // it was a member and was removed or left
	UnknownState = "unknown" // nothing of it agreed, and no request of it held here
)

// MembershipOf says what this replica knows of authority id, and whether
// its consortium's charter is active.
func (n *Node) MembershipOf(id authority.ID) (state string, active bool) {
	var stored, member, removed bool
	n.store.View(func(v authority.View) {
		_, stored = v.Authority(id)
		active = activeCharter(v)
		member = v.IsMember(id)
		if c := v.Consortium(); active {
			removed = slices.Contains(c.Removed, id)
		}
	})
	switch {
	case active && member, stored && member:
		return MemberState, active
	case removed:
		return RemovedState, active
	case stored:
		return UnknownState, active // agreed but never admitted: a founder the charter left out
	}
	if !active {
		if n.pool.get(id) != nil {
			return PendingState, active
		}
		return UnknownState, active
	}
	for _, a := range n.Admissions() {
		if a.ID == id {
			return PendingState, active
		}
	}
	return UnknownState, active
}
