package authority_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// Key seeds of the consortium tests, disjoint from the others'.
const (
	seedFoundA byte = 70 + iota
	seedFoundB
	seedFoundC
	seedApplD
	seedApplE
)

// consWorld is three founders (one key each), two applicants not yet in the
// graph, and a charter declared by the founder with the lowest ID.
type consWorld struct {
	g       *authority.Graph
	founder map[string]*gov
	seed    map[string]byte
	charter *authority.Signed
	// threshold and voters are the charter's (declareCharter).
	threshold uint8
	voters    []string
}

func newConsWorld(t *testing.T, threshold uint8, voters ...string) *consWorld {
	t.Helper()
	w := &consWorld{g: authority.NewGraph(), founder: map[string]*gov{}, seed: map[string]byte{}}
	for _, f := range []struct {
		name string
		seed byte
	}{{"found-a", seedFoundA}, {"found-b", seedFoundB}, {"found-c", seedFoundC}, {"appl-d", seedApplD}, {"appl-e", seedApplE}} {
		w.founder[f.name] = newGovNodes(t, f.name, f.seed, "12D3Koo"+strings.ReplaceAll(f.name, "-", ""))
		w.seed[f.name] = f.seed
	}
	for _, n := range []string{"found-a", "found-b", "found-c"} {
		mustApply(t, w.g, w.founder[n].genesis)
	}
	w.threshold, w.voters = threshold, voters
	return w
}

// declareCharter signs the charter (by the founder with the lowest ID),
// not yet applied.
func (w *consWorld) declareCharter(t *testing.T) *authority.Signed {
	t.Helper()
	var voters []authority.ID
	if len(w.voters) > 0 {
		voters = w.ids(w.voters...)
	}
	w.charter = w.sign(t, w.lowest(), authority.Declaration{Kind: authority.KindCharter,
		Charter: &authority.Charter{Members: w.ids("found-a", "found-b", "found-c"), Voters: voters, Threshold: w.threshold, AdmitVoters: true}})
	return w.charter
}

func newGovNodes(t *testing.T, name string, seed byte, peer string) *gov {
	t.Helper()
	g := mustSignMulti(t, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: unix(now.Add(-30 * 24 * time.Hour)),
		Genesis: &authority.Genesis{Name: name, Kind: "sovereign", RootKeys: pubsOf(t, seed), Threshold: 1,
			Nodes: []authority.NodeRef{{PeerID: peer, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}}}},
	}, seed)
	return &gov{name: name, genesis: g, headID: g.ID, ids: []authority.ID{g.ID}}
}

func mustApply(t *testing.T, g *authority.Graph, s *authority.Signed) {
	t.Helper()
	if err := g.Apply(s); err != nil {
		t.Fatalf("apply %v %s: %v", s.Decl.Kind, s.ID.Short(), err)
	}
}

func sortedIDs(ids []authority.ID) []authority.ID {
	slices.SortFunc(ids, func(a, b authority.ID) int { return strings.Compare(a.String(), b.String()) })
	return ids
}

func (w *consWorld) ids(names ...string) []authority.ID {
	var out []authority.ID
	for _, n := range names {
		out = append(out, w.founder[n].id())
	}
	return sortedIDs(out)
}

// lowest is the founder with the lowest ID: the charter's declarer.
func (w *consWorld) lowest() string {
	ids := w.ids("found-a", "found-b", "found-c")
	for n, c := range w.founder {
		if c.id() == ids[0] {
			return n
		}
	}
	panic("no founder")
}

// sign signs d as name's next declaration (not applied: a refused one is
// rolled back by the caller's try).
func (w *consWorld) sign(t *testing.T, name string, d authority.Declaration) *authority.Signed {
	t.Helper()
	return w.founder[name].next(t, d, w.seed[name])
}

func (w *consWorld) membership(t *testing.T, by string, a authority.MemberAction, subject authority.ID) *authority.Signed {
	t.Helper()
	return w.sign(t, by, authority.Declaration{Kind: authority.KindMembership, Membership: &authority.Membership{Action: a, Subject: subject}})
}

// try applies s and, if the graph refuses it, rewinds its signer so that
// the next declaration takes the position again.
func (w *consWorld) try(t *testing.T, name string, s *authority.Signed) error {
	t.Helper()
	err := w.g.Apply(s)
	if err != nil && s.Decl.Kind != authority.KindGenesis {
		w.founder[name].forkAt(s.Decl.Seq)
	}
	return err
}

func (w *consWorld) ratifyAll(t *testing.T) {
	t.Helper()
	mustApply(t, w.g, w.declareCharter(t))
	for _, n := range []string{"found-a", "found-b", "found-c"} {
		if n != w.lowest() {
			mustApply(t, w.g, w.membership(t, n, authority.ActionRatify, w.charter.ID))
		}
	}
}

func TestConsortiumLifecycle(t *testing.T) {
	w := newConsWorld(t, 2)
	d, e := w.founder["appl-d"], w.founder["appl-e"]

	// Bootstrap: no charter, every authority is a member and votes.
	if w.g.Consortium() != nil || !w.g.IsMember(d.id()) || !w.g.IsVoter(d.id()) {
		t.Fatalf("before a charter: consortium %v, IsMember(applicant) %v", w.g.Consortium(), w.g.IsMember(d.id()))
	}
	mustApply(t, w.g, w.declareCharter(t))
	if c := w.g.Consortium(); c == nil || c.Active || len(c.Ratified) != 1 {
		t.Fatalf("declared charter: %+v, want inactive with one ratification", c)
	}
	// Ratification by a non-founder is refused (appl-e has no genesis yet:
	// give it one in bootstrap to make the point).
	mustApply(t, w.g, e.genesis)
	if err := w.try(t, "appl-e", w.membership(t, "appl-e", authority.ActionRatify, w.charter.ID)); !errors.Is(err, authority.ErrMembership) {
		t.Fatalf("ratify by a non-founder: %v, want ErrMembership", err)
	}
	for _, n := range []string{"found-a", "found-b", "found-c"} {
		if n != w.lowest() {
			mustApply(t, w.g, w.membership(t, n, authority.ActionRatify, w.charter.ID))
		}
	}
	c := w.g.Consortium()
	if !c.Active || !slices.Equal(c.Members, w.ids("found-a", "found-b", "found-c")) || !slices.Equal(c.Voters, c.Members) {
		t.Fatalf("ratified: %+v, want active with the three founders as members and voters", c)
	}
	// appl-e was in the graph before activation but is no founder: not a
	// member, and it can store nothing.
	if w.g.IsMember(e.id()) {
		t.Fatalf("appl-e is a member without admission")
	}
	if err := w.try(t, "appl-e", e.rule(t, w.founder["found-a"].id(), etlPattern, seedApplE)); !errors.Is(err, authority.ErrNotMember) {
		t.Fatalf("a non-member's rule: %v, want ErrNotMember", err)
	}

	// appl-d asks to join: its genesis waits for two approvals.
	if err := w.g.Apply(d.genesis); !errors.Is(err, authority.ErrNotMember) {
		t.Fatalf("applicant genesis without approvals: %v, want ErrNotMember", err)
	}
	mustApply(t, w.g, w.membership(t, "found-a", authority.ActionAdmit, d.id()))
	if err := w.try(t, "found-a", w.membership(t, "found-a", authority.ActionAdmit, d.id())); !errors.Is(err, authority.ErrMembership) {
		t.Fatalf("approving twice: %v, want ErrMembership", err)
	}
	if err := w.g.Apply(d.genesis); !errors.Is(err, authority.ErrNotMember) || !strings.Contains(err.Error(), "1 of 2 approvals") {
		t.Fatalf("applicant genesis with one approval: %v, want ErrNotMember saying 1 of 2", err)
	}
	if got := w.g.Approvals(d.id(), authority.ActionAdmit); len(got) != 1 {
		t.Fatalf("approvals = %v, want one", got)
	}
	mustApply(t, w.g, w.membership(t, "found-b", authority.ActionAdmit, d.id()))
	if !w.g.IsMember(d.id()) || !w.g.IsVoter(d.id()) {
		t.Fatalf("appl-d not a voting member after two approvals: %+v", w.g.Consortium())
	}
	mustApply(t, w.g, d.genesis)
	mustApply(t, w.g, d.rule(t, w.founder["found-a"].id(), etlPattern, seedApplD))

	// appl-e gets one approval only: still out.
	mustApply(t, w.g, w.membership(t, "found-c", authority.ActionAdmit, e.id()))
	if w.g.IsMember(e.id()) {
		t.Fatalf("appl-e admitted with one approval of two")
	}

	// Removal of appl-d by two members.
	if err := w.try(t, "appl-d", w.membership(t, "appl-d", authority.ActionRemove, d.id())); !errors.Is(err, authority.ErrMembership) {
		t.Fatalf("approving one's own removal: %v, want ErrMembership", err)
	}
	mustApply(t, w.g, w.membership(t, "found-a", authority.ActionRemove, d.id()))
	if !w.g.IsMember(d.id()) {
		t.Fatalf("removed with one approval of two")
	}
	mustApply(t, w.g, w.membership(t, "found-c", authority.ActionRemove, d.id()))
	c = w.g.Consortium()
	if w.g.IsMember(d.id()) || !slices.Contains(c.Removed, d.id()) || slices.Contains(c.Voters, d.id()) {
		t.Fatalf("after removal: %+v", c)
	}
	if err := w.try(t, "appl-d", d.rule(t, w.founder["found-b"].id(), etlPattern, seedApplD)); !errors.Is(err, authority.ErrNotMember) {
		t.Fatalf("a removed member's rule: %v, want ErrNotMember", err)
	}

	// Leaving: found-c leaves (3 -> 2 members, threshold 2); then nobody
	// else may leave or be removed.
	mustApply(t, w.g, w.membership(t, "found-c", authority.ActionLeave, w.founder["found-c"].id()))
	if w.g.IsMember(w.founder["found-c"].id()) {
		t.Fatalf("found-c is a member after leaving")
	}
	if err := w.try(t, "found-b", w.membership(t, "found-b", authority.ActionLeave, w.founder["found-b"].id())); !errors.Is(err, authority.ErrMembership) {
		t.Fatalf("leaving below the threshold: %v, want ErrMembership", err)
	}
	// A second charter once one is active is refused.
	name := w.lowest()
	if err := w.try(t, name, w.sign(t, name, authority.Declaration{Kind: authority.KindCharter,
		Charter: &authority.Charter{Members: []authority.ID{w.founder[name].id()}, Threshold: 1}})); !errors.Is(err, authority.ErrMembership) {
		t.Fatalf("second charter: %v, want ErrMembership", err)
	}
}

func TestConsortiumCharterRules(t *testing.T) {
	w := newConsWorld(t, 2)
	outsider := w.founder["appl-d"]
	tests := []struct {
		name    string
		by      string
		charter authority.Charter
	}{
		{name: "declarer not a member", by: w.lowest(), charter: authority.Charter{Members: w.idsExcept(w.lowest()), Threshold: 1}},
		{name: "member without genesis", by: w.lowest(), charter: authority.Charter{Members: sortedIDs(append(w.ids("found-a", "found-b", "found-c"), outsider.id())), Threshold: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch := tc.charter
			if err := w.try(t, tc.by, w.sign(t, tc.by, authority.Declaration{Kind: authority.KindCharter, Charter: &ch})); !errors.Is(err, authority.ErrMembership) {
				t.Fatalf("got %v, want ErrMembership", err)
			}
		})
	}
	// Charter shapes refused before signing.
	ids := w.ids("found-a", "found-b", "found-c")
	bad := []struct {
		name string
		d    authority.Declaration
	}{
		{"unsorted members", authority.Declaration{Kind: authority.KindCharter, Charter: &authority.Charter{Members: []authority.ID{ids[1], ids[0]}, Threshold: 1}}},
		{"threshold zero", authority.Declaration{Kind: authority.KindCharter, Charter: &authority.Charter{Members: ids, Threshold: 0}}},
		{"threshold over members", authority.Declaration{Kind: authority.KindCharter, Charter: &authority.Charter{Members: ids, Threshold: 4}}},
		{"voter not a member", authority.Declaration{Kind: authority.KindCharter, Charter: &authority.Charter{Members: ids[:2], Voters: ids[2:], Threshold: 1}}},
		{"unknown action", authority.Declaration{Kind: authority.KindMembership, Membership: &authority.Membership{Action: 9, Subject: ids[0]}}},
		{"peer id with a slash", authority.Declaration{Kind: authority.KindNodes, Nodes: &authority.Nodes{Peers: []authority.NodeRef{{PeerID: "12D3/x"}}}}},
		{"address not a multiaddr", authority.Declaration{Kind: authority.KindNodes, Nodes: &authority.Nodes{Peers: []authority.NodeRef{{PeerID: "12D3KooWx", Addrs: []string{"127.0.0.1:4001"}}}}}},
		{"peer declared twice", authority.Declaration{Kind: authority.KindNodes, Nodes: &authority.Nodes{Peers: []authority.NodeRef{{PeerID: "12D3KooWx"}, {PeerID: "12D3KooWx"}}}}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			d.Authority, d.Seq, d.Prev, d.IssuedAt = ids[0], 1, ids[0], unix(now)
			if _, err := authority.Sign(d, fixedKey(t, seedFoundA)); err == nil {
				t.Fatalf("signed a %s", tc.name)
			}
		})
	}
}

func (w *consWorld) idsExcept(name string) []authority.ID {
	var names []string
	for _, n := range []string{"found-a", "found-b", "found-c"} {
		if n != name {
			names = append(names, n)
		}
	}
	return w.ids(names...)
}

func TestConsortiumVoters(t *testing.T) {
	w := newConsWorld(t, 2, "found-a", "found-b")
	w.ratifyAll(t)
	c := w.g.Consortium()
	if len(c.Members) != 3 || !slices.Equal(c.Voters, w.ids("found-a", "found-b")) {
		t.Fatalf("consortium %+v: want 3 members, found-a and found-b voting", c)
	}
	if w.g.IsVoter(w.founder["found-c"].id()) {
		t.Fatalf("found-c votes, the charter says it does not")
	}
}

func TestConsortiumNodes(t *testing.T) {
	w := newConsWorld(t, 2)
	a, b := w.founder["found-a"], w.founder["found-b"]
	if got, ok := w.g.PeerAuthority("12D3Koofounda"); !ok || got != a.id() {
		t.Fatalf("PeerAuthority(found-a's peer) = %s %v", got.Short(), ok)
	}
	if n := w.g.Nodes(a.id()); len(n) != 1 || n[0].Addrs[0] != "/ip4/127.0.0.1/tcp/4001" {
		t.Fatalf("Nodes(found-a) = %v", n)
	}
	// found-b may not claim found-a's peer.
	steal := w.sign(t, "found-b", authority.Declaration{Kind: authority.KindNodes, Nodes: &authority.Nodes{Peers: []authority.NodeRef{{PeerID: "12D3Koofounda"}}}})
	if err := w.try(t, "found-b", steal); !errors.Is(err, authority.ErrMembership) {
		t.Fatalf("claiming another authority's peer: %v, want ErrMembership", err)
	}
	// found-a moves to a new peer: the old one is free again.
	mustApply(t, w.g, w.sign(t, "found-a", authority.Declaration{Kind: authority.KindNodes, Nodes: &authority.Nodes{Peers: []authority.NodeRef{{PeerID: "12D3KooNewA"}}}}))
	if _, ok := w.g.PeerAuthority("12D3Koofounda"); ok {
		t.Fatalf("the replaced peer still maps to found-a")
	}
	if got, _ := w.g.PeerAuthority("12D3KooNewA"); got != a.id() {
		t.Fatalf("new peer maps to %s", got.Short())
	}
	mustApply(t, w.g, w.sign(t, "found-b", authority.Declaration{Kind: authority.KindNodes, Nodes: &authority.Nodes{Peers: []authority.NodeRef{{PeerID: "12D3Koofounda"}}}}))
	if got, _ := w.g.PeerAuthority("12D3Koofounda"); got != b.id() {
		t.Fatalf("freed peer maps to %s, want found-b", got.Short())
	}
}

// TestConsortiumVerify: once removed, a member's credentials, its rules and
// requests at it are denied not-member.
func TestConsortiumVerify(t *testing.T) {
	w := newConsWorld(t, 2)
	w.ratifyAll(t)
	a, b, c := w.founder["found-a"], w.founder["found-b"], w.founder["found-c"]
	// c accepts b's etl roles with one further hop; b accepts a's; c accepts a directly too? No:
	// the transitive path a -> b -> c is the only one, and b's own rule at
	// b serves requests at b.
	mustApply(t, w.g, c.next(t, authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: b.id(), Subjects: "*", Resources: dataPattern, Actions: []string{"read"}, Hops: 1}}, seedFoundC))
	mustApply(t, w.g, b.rule(t, a.id(), etlPattern, seedFoundB))
	cred := a.credential(t, "arn:aws:iam::111122223333:role/etl-nightly", dayAgo, weekAhead, seedFoundA)
	bcred := b.credential(t, "svc-b", dayAgo, weekAhead, seedFoundB)
	ask := func(cred *authority.Signed, target *gov) authority.Decision {
		return authority.Verify(w.g, authority.Request{Credential: cred.Raw, Target: target.id(), Resource: dataResource, Action: "read"}, authority.WithTime(now))
	}
	if d := ask(cred, c); !d.Allow {
		t.Fatalf("before removal, a -> b -> c: %s %s", d.Reason, d.Message)
	}
	mustApply(t, w.g, w.membership(t, "found-a", authority.ActionRemove, b.id()))
	mustApply(t, w.g, w.membership(t, "found-c", authority.ActionRemove, b.id()))
	tests := []struct {
		name   string
		cred   *authority.Signed
		target *gov
	}{
		{"path through a removed member", cred, c},
		{"target is a removed member", cred, b},
		{"issuer is a removed member", bcred, c},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := ask(tc.cred, tc.target)
			if d.Allow || d.Reason != authority.ReasonNotMember {
				t.Fatalf("got %v %s (%s), want deny not-member", d.Allow, d.Reason, d.Message)
			}
		})
	}
}
