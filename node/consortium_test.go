package node

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/consensus"
)

// founded starts three nodes (a bootstraps, b and c join as in bootstrap)
// and founds a consortium of them: a declares a charter with threshold 2
// that admits voters, b and c ratify it.
func founded(t *testing.T) (nodes []*Node, homes []*Home) {
	t.Helper()
	a, ha := startSingle(t, "a")
	for _, name := range []string{"b", "c"} {
		h := initHome(t, name)
		n := startNode(t, h, Config{Join: a.Addrs()})
		nodes, homes = append(nodes, n), append(homes, h)
	}
	nodes, homes = append([]*Node{a}, nodes...), append([]*Home{ha}, homes...)
	for _, n := range nodes {
		waitFor(t, waitAgreed, "every genesis agreed", agreedAt(n.Authority(), nodes...))
	}
	members := []authority.ID{nodes[0].Authority(), nodes[1].Authority(), nodes[2].Authority()}
	slices.SortFunc(members, func(x, y authority.ID) int { return bytes.Compare(x[:], y[:]) })
	ch, err := SignNext(context.Background(), ha, a, t0, func(d *authority.Declaration) {
		d.Kind, d.Charter = authority.KindCharter, &authority.Charter{Members: members, Threshold: 2, AdmitVoters: true}
	})
	if err != nil {
		t.Fatalf("charter: %v", err)
	}
	waitFor(t, waitAgreed, "charter agreed", agreedAt(ch.ID, nodes...))
	for i := 1; i < 3; i++ {
		membership(t, homes[i], nodes[i], authority.ActionRatify, ch.ID)
	}
	waitFor(t, waitAgreed, "the charter active everywhere", func() bool {
		for _, n := range nodes {
			if cs := n.ConsortiumStatus(); cs == nil || !cs.Active {
				return false
			}
		}
		return true
	})
	return nodes, homes
}

// membership signs and submits a membership act of h's authority through n.
func membership(t *testing.T, h *Home, n *Node, a authority.MemberAction, subject authority.ID) *authority.Signed {
	t.Helper()
	sd, err := SignNext(context.Background(), h, n, t0, func(d *authority.Declaration) {
		d.Kind, d.Membership = authority.KindMembership, &authority.Membership{Action: a, Subject: subject}
	})
	if err != nil {
		t.Fatalf("%v %s by %s: %v", a, subject.Short(), h.Config.Name, err)
	}
	return sd
}

func raftServers(t *testing.T, n *Node) map[string]bool {
	t.Helper()
	servers, err := n.raft.Servers()
	if err != nil {
		t.Fatalf("raft servers: %v", err)
	}
	m := map[string]bool{}
	for _, s := range servers {
		m[s.ID] = s.Voter
	}
	return m
}

func waitLeaderNode(t *testing.T, nodes []*Node) *Node {
	t.Helper()
	var l *Node
	waitFor(t, waitLeader, "a leader", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// TestNonMemberPeer is the hostile peer of issue 4: once the charter is
// active, a node whose authority is not a member gets nothing stored (its
// genesis and rules, submitted, gossiped and sent by the join protocol,
// stay pending admission requests), cannot open the Raft transport to a
// member (its stream is closed unread) and never enters the Raft
// configuration. Then the members admit it 2 of 3, and it becomes a voter
// as the graph says; removed, it leaves the configuration.
func TestNonMemberPeer(t *testing.T) {
	nodes, homes := founded(t)
	hm := initHome(t, "mallory")
	m := startNode(t, hm, Config{Join: nodes[1].Addrs()})
	// Its own rule, signed at seq 1 after its genesis, submitted to its
	// node and to a member's directly.
	r := rule(t, m.Authority(), 1, m.Authority(), nodes[0].Authority(), "blob://*", hm.Root)
	if _, err := m.Submit(context.Background(), r.Raw); err != nil {
		t.Fatalf("submit at its own node: %v", err)
	}
	res, err := nodes[2].Submit(context.Background(), hm.Genesis)
	if err != nil || res.Status != "admission-pending" {
		t.Fatalf("submit a non-member's genesis to a member: %+v, %v; want admission-pending", res, err)
	}
	if _, err := nodes[2].Submit(context.Background(), r.Raw); err != nil {
		t.Fatalf("submit a non-member's rule to a member: %v", err)
	}
	waitFor(t, waitAgreed, "mallory's admission request at every member", func() bool {
		for _, n := range nodes {
			adm := n.Admissions()
			if len(adm) != 1 || adm[0].ID != m.Authority() || adm[0].Name != "mallory" {
				return false
			}
		}
		return true
	})

	// Its raft stream to the leader is closed before Raft reads a byte.
	l := waitLeaderNode(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), waitAgreed)
	defer cancel()
	c, err := m.host.Dial(ctx, l.PeerID(), consensus.RaftProtocol)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(waitAgreed))
		_, _ = c.Write([]byte{0, 0, 0, 1, 0})
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("the leader answered a non-member's raft stream (read: %v)", err)
	}
	t.Logf("non-member raft stream refused: %v", err)

	// A while later nothing of it is stored and it is no Raft server.
	time.Sleep(2 * time.Second)
	for _, n := range nodes {
		if n.Agreed(m.Authority()) || n.Agreed(r.ID) {
			t.Fatalf("%s stored a non-member's declaration", n.home.Config.Name)
		}
		if _, in := raftServers(t, n)[m.PeerID()]; in {
			t.Fatalf("the non-member's peer is in %s's raft configuration", n.home.Config.Name)
		}
	}
	if adm := nodes[2].Admissions(); adm[0].Declarations != 2 {
		t.Fatalf("admission request holds %d declarations, want its genesis and rule", adm[0].Declarations)
	}

	// One approval is not enough; the second admits it, and then its
	// genesis and rule are agreed, and its node is a voter.
	first := membership(t, homes[0], nodes[0], authority.ActionAdmit, m.Authority())
	waitFor(t, waitAgreed, "the first approval agreed", agreedAt(first.ID, nodes...))
	_, err = SignNext(context.Background(), homes[0], nodes[0], t0, func(d *authority.Declaration) {
		d.Kind, d.Membership = authority.KindMembership, &authority.Membership{Action: authority.ActionAdmit, Subject: m.Authority()}
	})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("a second approval by the same member: %v, want ErrRefused", err)
	}
	time.Sleep(time.Second)
	if nodes[1].Agreed(m.Authority()) {
		t.Fatal("one approval of two admitted mallory")
	}
	if adm := nodes[1].Admissions(); len(adm) != 1 || len(adm[0].Approvals) != 1 || adm[0].Approvals[0].Name != "a" {
		t.Fatalf("admissions after one approval: %+v", adm)
	}
	membership(t, homes[1], nodes[1], authority.ActionAdmit, m.Authority())
	all := append(slices.Clone(nodes), m)
	waitFor(t, waitAgreed, "mallory's genesis and rule agreed everywhere, its own node included", agreedAt(r.ID, all...))
	waitFor(t, waitAgreed, "mallory's node a voter", func() bool {
		return raftServers(t, waitLeaderNode(t, nodes))[m.PeerID()]
	})

	// Removed (2 of 3 again), its node leaves the configuration.
	membership(t, homes[0], nodes[0], authority.ActionRemove, m.Authority())
	membership(t, homes[2], nodes[2], authority.ActionRemove, m.Authority())
	waitFor(t, waitAgreed, "mallory's node out of the raft configuration", func() bool {
		_, in := raftServers(t, waitLeaderNode(t, nodes))[m.PeerID()]
		return !in
	})
	if st := nodes[0].ConsortiumStatus(); len(st.Removed) != 1 || st.Removed[0].Name != "mallory" || len(st.Members) != 3 {
		t.Fatalf("status after the removal: %+v", st)
	}
}

// charterAlone makes n's authority the one founder of an active consortium
// (threshold 1).
func charterAlone(t *testing.T, n *Node, h *Home) {
	t.Helper()
	ch, err := SignNext(context.Background(), h, n, t0, func(d *authority.Declaration) {
		d.Kind, d.Charter = authority.KindCharter, &authority.Charter{Members: []authority.ID{n.Authority()}, Threshold: 1}
	})
	if err != nil {
		t.Fatalf("charter: %v", err)
	}
	waitFor(t, waitAgreed, "charter agreed", agreedAt(ch.ID, n))
	if cs := n.ConsortiumStatus(); cs == nil || !cs.Active || len(cs.Members) != 1 || !cs.Members[0].Voter {
		t.Fatalf("a one-founder charter: %+v", cs)
	}
}

func TestInitDeclaresTheNode(t *testing.T) {
	h, err := Init(t.TempDir(), InitOptions{Name: "fixed", Now: t0, Listen: []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/0/quic-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := authority.Parse(h.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	want := []authority.NodeRef{{PeerID: h.Config.PeerID, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}}}
	if got := gen.Decl.Genesis.Nodes; len(got) != 1 || got[0].PeerID != want[0].PeerID || !slices.Equal(got[0].Addrs, want[0].Addrs) {
		t.Fatalf("genesis nodes %+v, want %+v (a port-0 address names nowhere to dial)", got, want)
	}
}

// TestDeclareNodes: a node whose addresses differ from its genesis's
// declares them once; again, nothing changes.
func TestDeclareNodes(t *testing.T) {
	n, _ := startSingle(t, "roaming")
	ctx, cancel := context.WithTimeout(context.Background(), waitAgreed)
	defer cancel()
	sd, err := n.DeclareNodes(ctx)
	if err != nil || sd == nil {
		t.Fatalf("declare nodes: %v, %v; want a declaration (the genesis named no port)", sd, err)
	}
	waitFor(t, waitAgreed, "nodes declaration agreed", agreedAt(sd.ID, n))
	var got []authority.NodeRef
	n.store.View(func(v authority.View) { got = v.Nodes(n.Authority()) })
	if len(got) != 1 || got[0].PeerID != n.PeerID() || !sameSet(got[0].Addrs, declaredAddrs(n.Addrs())) || len(got[0].Addrs) == 0 {
		t.Fatalf("declared nodes %+v, want this node at %v", got, declaredAddrs(n.Addrs()))
	}
	if again, err := n.DeclareNodes(ctx); err != nil || again != nil {
		t.Fatalf("declare unchanged nodes: %v, %v; want nothing", again, err)
	}
}

// TestAdmissionRequestsBounded: anyone can mint a genesis, so the pool
// holds at most maxApplicants applicants' requests.
func TestAdmissionRequestsBounded(t *testing.T) {
	n, h := startSingle(t, "solo")
	charterAlone(t, n, h)
	for i := 0; i < maxApplicants; i++ {
		o := newOutsider(t, "applicant")
		res, err := n.Submit(context.Background(), o.gen.Raw)
		if err != nil || res.Status != "admission-pending" {
			t.Fatalf("applicant %d: %+v, %v", i, res, err)
		}
	}
	o := newOutsider(t, "one-too-many")
	if _, err := n.Submit(context.Background(), o.gen.Raw); !errors.Is(err, ErrTooManyApplicants) {
		t.Fatalf("applicant %d: %v, want ErrTooManyApplicants", maxApplicants+1, err)
	}
	if got := len(n.Admissions()); got != maxApplicants {
		t.Fatalf("%d admission requests listed, want %d", got, maxApplicants)
	}
	if n.GraphVersion() != 2 {
		t.Fatalf("graph version %d: an applicant's genesis was stored", n.GraphVersion())
	}
}
