package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// startTrio starts three nodes: the first bootstraps, the others join
// through its addresses. It returns once all three are Raft voters and
// every genesis is agreed everywhere.
func startTrio(t *testing.T) ([]*Node, []*Home) {
	t.Helper()
	homes := []*Home{initHome(t, "aws-prod"), initHome(t, "okta"), initHome(t, "gcp-prod")}
	nodes := make([]*Node, 3)
	nodes[0] = startNode(t, homes[0], Config{Bootstrap: true, API: "127.0.0.1:0"})
	waitFor(t, waitAgreed, "the first node's genesis agreed", func() bool { return nodes[0].Agreed(homes[0].Authority) })
	for i := 1; i < 3; i++ {
		nodes[i] = startNode(t, homes[i], Config{Join: nodes[0].Addrs(), API: "127.0.0.1:0"})
	}
	waitFor(t, waitLeader, "three voters", func() bool {
		st := nodes[0].Status()
		return len(st.Raft.Voters) == 3
	})
	for _, h := range homes {
		waitFor(t, waitAgreed, h.Config.Name+"'s genesis agreed at every node", agreedAt(h.Authority, nodes...))
	}
	return nodes, homes
}

// leaderOf returns the index among nodes of the one that is leader, when
// every node given agrees on it; -1 otherwise.
func leaderOf(nodes []*Node) int {
	leader := ""
	for _, n := range nodes {
		st := n.Status()
		if st.Raft.Leader == "" || (leader != "" && st.Raft.Leader != leader) {
			return -1
		}
		leader = st.Raft.Leader
	}
	for i, n := range nodes {
		if n.PeerID() == leader && n.Status().Raft.State == "leader" {
			return i
		}
	}
	return -1
}

func TestThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes with leader loss and restart: not in -short")
	}
	nodes, homes := startTrio(t)
	aws, okta := homes[0], homes[1]
	for _, n := range nodes {
		t.Log(describe(n))
	}

	// A rule submitted at a follower is forwarded, ordered and agreed
	// everywhere.
	var li int
	waitFor(t, waitLeader, "one leader that all three agree on", func() bool { li = leaderOf(nodes); return li >= 0 })
	follower := 2
	if li == follower {
		follower = 1
	}
	r := nextRule(t, homes[follower], nodes[follower], okta.Authority, "db://*")
	waitFor(t, waitAgreed, "the rule submitted at a follower agreed at all three", agreedAt(r.ID, nodes...))
	target := homes[follower].Config.Name

	cred := credential(t, okta.Authority, "alice@okta", okta.Root)
	for i, n := range nodes {
		if d := n.Verify(cred.Raw, target, "db://orders", "read", tJudge); !d.Allow {
			t.Fatalf("node %d: before revocation: %s/%s (%s), want allow", i+1, d.Outcome, d.Reason, d.Message)
		}
	}

	// okta revokes the credential at its own node (node 2); the others deny
	// as soon as gossip brings it, without waiting for Raft.
	rev, err := SignNext(context.Background(), okta, nodes[1], t0, func(d *authority.Declaration) {
		d.Kind = authority.KindRevocation
		d.Revocation = &authority.Revocation{Target: cred.ID, Reason: "laptop stolen"}
	})
	if err != nil {
		t.Fatal(err)
	}
	submitted := time.Now()
	for _, i := range []int{0, 2} {
		n := nodes[i]
		var beforeAgreed bool
		waitFor(t, waitAgreed, fmt.Sprintf("node %d denies revoked", i+1), func() bool {
			agreed := n.Agreed(rev.ID)
			d := n.Verify(cred.Raw, target, "db://orders", "read", tJudge)
			if d.Reason == authority.ReasonRevoked {
				beforeAgreed = !agreed
				return true
			}
			return false
		})
		t.Logf("node %d denies revoked %v after the revocation was submitted at node 2 (seen before it was agreed there: %v)",
			i+1, time.Since(submitted), beforeAgreed)
	}
	waitFor(t, waitAgreed, "the revocation agreed at all three", agreedAt(rev.ID, nodes...))

	// Lose the leader: the other two elect one and go on accepting.
	waitFor(t, waitLeader, "one leader that all three agree on", func() bool { li = leaderOf(nodes); return li >= 0 })
	t.Logf("closing the leader, node %d (%s)", li+1, homes[li].Config.Name)
	if err := nodes[li].Close(); err != nil {
		t.Logf("close node %d: %v", li+1, err)
	}
	var rest []*Node
	var restHomes []*Home
	for i := range nodes {
		if i != li {
			rest, restHomes = append(rest, nodes[i]), append(restHomes, homes[i])
		}
	}
	waitFor(t, waitLeader, "a new leader among the other two", func() bool { return leaderOf(rest) >= 0 })
	for _, n := range rest {
		t.Log(describe(n))
	}
	r2 := nextRule(t, restHomes[1], rest[1], aws.Authority, "gcs://*")
	waitFor(t, waitAgreed, "a declaration agreed by the two survivors", agreedAt(r2.ID, rest...))

	// The lost node comes back from its home alone (no Bootstrap, no Join)
	// and catches up.
	back := startNode(t, homes[li], Config{API: "127.0.0.1:0"})
	waitFor(t, waitAgreed, "the restarted node catches up", func() bool {
		return back.Agreed(r2.ID) && back.GraphVersion() == rest[0].GraphVersion() && back.GraphVersion() == rest[1].GraphVersion()
	})
	all := append([]*Node{back}, rest...)
	for _, n := range all {
		t.Log(describe(n))
	}
	if !slices.Contains(back.Status().Raft.Voters, back.PeerID()) {
		t.Errorf("the restarted node is not a voter: %+v", back.Status().Raft)
	}
	// It decides as the others do: the credential stays revoked.
	if d := back.Verify(cred.Raw, target, "db://orders", "read", tJudge); d.Reason != authority.ReasonRevoked {
		t.Errorf("restarted node: %s/%s, want deny revoked", d.Outcome, d.Reason)
	}
}

// TestProtocolsRefuseHostilePeers speaks the node-to-node protocols to a
// node from a peer that is no member of its cluster: what it sends is
// checked like anything from the network.
func TestProtocolsRefuseHostilePeers(t *testing.T) {
	n, h := startSingle(t, "aws-prod")
	evil, eh := startSingle(t, "evil")
	ctx := context.Background()
	if _, err := evil.host.Connect(ctx, n.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	okta := newOutsider(t, "okta")
	good := rule(t, h.Authority, 1, h.Authority, okta.id(), "s3://*", h.Root)

	t.Run("forward", func(t *testing.T) {
		var resp forwardResponse
		req := forwardRequest{Envelopes: [][]byte{
			[]byte("garbage"),
			credential(t, okta.id(), "alice", okta.root).Raw,                       // off-chain
			rule(t, okta.id(), 1, okta.id(), h.Authority, "x", okta.root).Raw,      // unknown issuer
			rule(t, h.Authority, 1, h.Authority, okta.id(), "s3://*", eh.Root).Raw, // forged
			good.Raw, // valid: declarations authenticate themselves, whoever relays them
		}}
		if err := evil.call(ctx, n.PeerID(), ProtoForward, req, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Accepted != 1 || len(resp.Errors) != 4 {
			t.Fatalf("forward: accepted %d, errors %q; want 1 and 4", resp.Accepted, resp.Errors)
		}
		waitFor(t, waitAgreed, "the one valid forwarded rule agreed", agreedAt(good.ID, n))
	})

	t.Run("join", func(t *testing.T) {
		other := initHome(t, "other")
		tests := []struct {
			name string
			req  joinRequest
			want string
		}{
			{name: "no genesis", req: joinRequest{PeerID: evil.PeerID()}, want: "genesis does not parse"},
			{name: "a rule for a genesis", req: joinRequest{PeerID: evil.PeerID(), Genesis: good.Raw}, want: "not a genesis declaration"},
			{name: "on behalf of another peer", req: joinRequest{PeerID: other.Config.PeerID, Genesis: other.Genesis}, want: "on behalf of"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var resp joinResponse
				if err := evil.call(ctx, n.PeerID(), ProtoJoin, tt.req, &resp); err != nil {
					t.Fatal(err)
				}
				if resp.OK || !strings.Contains(resp.Error, tt.want) {
					t.Fatalf("join: %+v, want a refusal containing %q", resp, tt.want)
				}
			})
		}
		if st := n.Status(); len(st.Raft.Voters) != 1 {
			t.Errorf("voters after refused joins: %v", st.Raft.Voters)
		}
	})

	t.Run("oversized frame", func(t *testing.T) {
		c, err := evil.host.Dial(ctx, n.PeerID(), ProtoForward)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(streamDeadline))
		if _, err := c.Write([]byte{0xff, 0xff, 0xff, 0xff}); err != nil {
			t.Fatal(err)
		}
		var resp forwardResponse
		if err := readFrame(c, &resp); err == nil {
			t.Fatalf("the node answered an oversized frame: %+v", resp)
		}
		// And it still serves.
		var pr peersResponse
		if err := evil.call(ctx, n.PeerID(), ProtoPeers, struct{}{}, &pr); err != nil || len(pr.Peers[n.PeerID()]) == 0 {
			t.Fatalf("peers after an oversized frame: %+v, %v", pr, err)
		}
	})
}
