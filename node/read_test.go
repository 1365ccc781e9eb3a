package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/fednode/fednode/authority"
)

// readHead reads issuer's agreed head seq in one read of n with consistency c.
func readHead(ctx context.Context, n *Node, c Consistency, issuer authority.ID) (uint64, ReadState, error) {
	var head uint64
	st, err := n.Read(ctx, c, func(v authority.View) {
		if a, ok := v.Authority(issuer); ok {
			head = a.Head
		}
	})
	return head, st, err
}

// TestReads covers both kinds of read on three real nodes: linearizable
// reads see every acknowledged write at every node, through the API too;
// then, with Raft below quorum (one node killed, the other two cut off from
// each other), linearizable reads are refused with 503 while every live
// node still verifies from its replica, stating its graph version and a
// growing graph age (Acceptance 4).
func TestReads(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes: not in -short")
	}
	nodes, homes := startTrio(t)
	okta := homes[1]
	ctx := context.Background()

	t.Run("linearizable sees acknowledged writes", func(t *testing.T) {
		for w := range nodes {
			sd := nextRule(t, homes[w], nodes[w], okta.Authority, fmt.Sprintf("lin%d://*", w))
			// Acknowledged: applied at the node it was submitted to.
			waitFor(t, waitAgreed, "the rule agreed at its node", agreedAt(sd.ID, nodes[w]))
			for r, n := range nodes {
				head, st, err := readHead(ctx, n, ConsistencyLinearizable, homes[w].Authority)
				if err != nil {
					t.Fatalf("linearizable read at node %d: %v", r+1, err)
				}
				if head < sd.Decl.Seq {
					t.Fatalf("linearizable read at node %d after a write acknowledged at node %d: head %d, want >= %d (%+v)", r+1, w+1, head, sd.Decl.Seq, st)
				}
				if st.Consistency != ConsistencyLinearizable || st.ReadIndex == 0 || st.AppliedIndex == 0 || st.GraphVersion == 0 {
					t.Fatalf("node %d: read state %+v: want linearizable with a read index and an applied index", r+1, st)
				}
			}
		}
	})

	t.Run("api", func(t *testing.T) {
		gen := homes[0].Authority.String()
		tests := []struct {
			name       string
			path       string
			wantStatus int
			wantCons   string
		}{
			{name: "graph default local", path: "/v1/graph", wantStatus: 200, wantCons: "local"},
			{name: "graph linearizable", path: "/v1/graph?consistency=linearizable", wantStatus: 200, wantCons: "linearizable"},
			{name: "authority linearizable", path: "/v1/authorities/" + gen + "?consistency=linearizable", wantStatus: 200, wantCons: "linearizable"},
			{name: "declaration linearizable", path: "/v1/declarations/" + gen + "?consistency=linearizable", wantStatus: 200, wantCons: "linearizable"},
			{name: "status local", path: "/v1/status?consistency=local", wantStatus: 200, wantCons: "local"},
			{name: "status linearizable", path: "/v1/status?consistency=linearizable", wantStatus: 200, wantCons: "linearizable"},
			{name: "bad consistency", path: "/v1/graph?consistency=eventual", wantStatus: 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for i, n := range nodes {
					resp, err := http.Get("http://" + n.APIAddr() + tt.path)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != tt.wantStatus {
						t.Fatalf("node %d: GET %s: %d %s, want %d", i+1, tt.path, resp.StatusCode, body, tt.wantStatus)
					}
					if tt.wantStatus != 200 {
						continue
					}
					if got := resp.Header.Get("Fednode-Consistency"); got != tt.wantCons {
						t.Fatalf("node %d: GET %s: Fednode-Consistency %q, want %q", i+1, tt.path, got, tt.wantCons)
					}
					if resp.Header.Get("Fednode-Graph-Version") == "" || resp.Header.Get("Fednode-Applied-Index") == "" || resp.Header.Get("Fednode-Graph-Age-Ms") == "" {
						t.Fatalf("node %d: GET %s: read headers missing: %v", i+1, tt.path, resp.Header)
					}
					if resp.Header.Get("Content-Type") != "application/json" {
						continue
					}
					var st ReadState
					if err := json.Unmarshal(body, &st); err != nil {
						t.Fatal(err)
					}
					if string(st.Consistency) != tt.wantCons || st.GraphVersion == 0 || st.AppliedIndex == 0 {
						t.Fatalf("node %d: GET %s: read state %+v", i+1, tt.path, st)
					}
				}
			})
		}
	})

	t.Run("verification below quorum", func(t *testing.T) {
		// A rule of aws-prod for okta's principals, agreed everywhere.
		r := nextRule(t, homes[0], nodes[0], okta.Authority, "db://*")
		waitFor(t, waitAgreed, "the rule agreed at all three", agreedAt(r.ID, nodes...))
		cred := credential(t, okta.Authority, "alice@okta", okta.Root)
		target := homes[0].Config.Name

		var li int
		waitFor(t, waitLeader, "one leader", func() bool { li = leaderOf(nodes); return li >= 0 })
		if err := nodes[li].Close(); err != nil {
			t.Logf("close the leader: %v", err)
		}
		var live []*Node
		for i, n := range nodes {
			if i != li {
				live = append(live, n)
			}
		}
		// The two survivors cannot reach each other either: no quorum.
		if err := live[0].Block(live[1].PeerID()); err != nil {
			t.Fatal(err)
		}
		if err := live[1].Block(live[0].PeerID()); err != nil {
			t.Fatal(err)
		}

		for i, n := range live {
			ver := n.GraphVersion()
			cl := NewClient(n.APIAddr(), "")

			// Linearizable reads are refused, in bounded time, once the
			// last leader has stepped down or failed to confirm itself.
			waitFor(t, waitLeader, fmt.Sprintf("survivor %d refuses linearizable reads", i+1), func() bool {
				_, _, err := readHead(ctx, n, ConsistencyLinearizable, okta.Authority)
				return errors.Is(err, ErrNoQuorum)
			})
			_, _, err := cl.GraphRead(ctx, ConsistencyLinearizable)
			var ae *APIError
			if !errors.Is(err, ErrNoQuorum) || !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
				t.Fatalf("survivor %d: linearizable GET /v1/graph: %v, want a 503", i+1, err)
			}
			t.Logf("survivor %d: %v", i+1, err)

			// Local reads and verification go on, stating version and a
			// growing age: in process and over HTTP.
			checks := []struct {
				name   string
				decide func() (authority.Decision, error)
			}{
				{name: "in process", decide: func() (authority.Decision, error) {
					return n.Verify(cred.Raw, target, "db://orders", "read", tJudge), nil
				}},
				{name: "http", decide: func() (authority.Decision, error) {
					return cl.Verify(ctx, cred.Raw, target, "db://orders", "read", tJudge)
				}},
			}
			for _, c := range checks {
				prev := int64(-1)
				waitFor(t, waitAgreed, fmt.Sprintf("survivor %d (%s) allows with a growing graph age", i+1, c.name), func() bool {
					d, err := c.decide()
					if err != nil {
						t.Fatalf("survivor %d (%s): verify: %v", i+1, c.name, err)
					}
					if !d.Allow || d.GraphVersion != ver {
						t.Fatalf("survivor %d (%s): %s/%s at graph v%d, want allow at v%d", i+1, c.name, d.Outcome, d.Reason, d.GraphVersion, ver)
					}
					grew := prev > 0 && d.GraphAgeMS > prev
					prev = d.GraphAgeMS
					return grew
				})
				t.Logf("survivor %d (%s): allow at graph v%d, age %d ms", i+1, c.name, ver, prev)
			}
			g, st, err := cl.GraphRead(ctx, ConsistencyLocal)
			if err != nil {
				t.Fatalf("survivor %d: local GET /v1/graph: %v", i+1, err)
			}
			if st.Consistency != ConsistencyLocal || st.GraphVersion != ver || g.Version != ver || st.GraphAgeMS <= 0 {
				t.Fatalf("survivor %d: local read %+v (graph v%d), want local at v%d with an age", i+1, st, g.Version, ver)
			}
		}
	})
}

// The consistency parameter takes exactly the two documented values.
func TestParseConsistency(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Consistency
		err  bool
	}{
		{name: "empty is local", in: "", want: ConsistencyLocal},
		{name: "local", in: "local", want: ConsistencyLocal},
		{name: "linearizable", in: "linearizable", want: ConsistencyLinearizable},
		{name: "case matters", in: "Linearizable", err: true},
		{name: "unknown", in: "eventual", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConsistency(tt.in)
			if tt.err {
				if !errors.Is(err, ErrBadConsistency) {
					t.Fatalf("ParseConsistency(%q) = %v, %v; want ErrBadConsistency", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseConsistency(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
