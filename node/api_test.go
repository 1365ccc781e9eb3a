package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/gossip"
)

// rawPost posts body to the node's API and returns the status and body.
func rawPost(t *testing.T, n *Node, path, token, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+n.APIAddr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	return do(t, req)
}

func rawGet(t *testing.T, n *Node, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+n.APIAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// wantJSONError checks that body is the API's JSON error object.
func wantJSONError(t *testing.T, body []byte) {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("error body is not JSON {\"error\": ...}: %q (%v)", body, err)
	}
}

// TestSingleNodeAPI drives the HTTP API of one bootstrapped node. The
// subtests share the node and run in order: each leaves the graph as the
// next expects it.
func TestSingleNodeAPI(t *testing.T) {
	n, h := startSingle(t, "aws-prod")
	ctx := context.Background()
	c := NewClient(n.APIAddr(), h.Token)
	a := h.Authority
	okta := newOutsider(t, "okta")
	bearer := "Bearer " + h.Token

	// A second authority, with no node of its own, so that rules have a
	// source and credentials an issuer.
	if res, err := c.Submit(ctx, okta.gen.Raw); err != nil || res.Status != "accepted" || res.ID != okta.id() {
		t.Fatalf("submit okta's genesis: %+v, %v", res, err)
	}
	waitFor(t, waitAgreed, "okta's genesis agreed", agreedAt(okta.id(), n))

	r1 := rule(t, a, 1, a, okta.id(), "s3://logs/*", h.Root)
	cred := credential(t, okta.id(), "alice@okta", okta.root)

	// unchanged asserts that a refused submission left no trace: the graph
	// version is the same and the body, if it parses, is not pending. (The
	// pool's size is no measure: an agreed declaration leaves it a moment
	// after it is applied.)
	unchanged := func(t *testing.T, v uint64, body []byte) {
		t.Helper()
		if got := n.GraphVersion(); got != v {
			t.Errorf("graph version went from %d to %d", v, got)
		}
		if sd, err := authority.Parse(body); err == nil && n.pool.get(sd.ID) != nil {
			t.Errorf("the refused %v %s is pending", sd.Decl.Kind, sd.ID.Short())
		}
	}

	t.Run("submit needs the token", func(t *testing.T) {
		v := n.GraphVersion()
		tests := []struct {
			name  string
			token string
		}{
			{name: "none", token: ""},
			{name: "wrong", token: "Bearer " + strings.Repeat("0", len(h.Token))},
			{name: "prefix of the right one", token: bearer[:len(bearer)-1]},
			{name: "right token, no Bearer", token: h.Token},
			{name: "right token, lower-case scheme", token: "bearer " + h.Token},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, body := rawPost(t, n, "/v1/declarations", tt.token, "application/cbor", r1.Raw)
				if st != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", st, body)
				}
				wantJSONError(t, body)
				unchanged(t, v, r1.Raw)
			})
		}
	})

	t.Run("submit refuses what is not a declaration", func(t *testing.T) {
		v := n.GraphVersion()
		tests := []struct {
			name string
			body []byte
		}{
			{name: "garbage", body: []byte("this is not CBOR at all")},
			{name: "empty", body: nil},
			{name: "truncated envelope", body: r1.Raw[:len(r1.Raw)-7]},
			{name: "trailing byte", body: append(append([]byte{}, r1.Raw...), 0)},
			{name: "credential is off-chain", body: cred.Raw},
			{name: "over the size limit", body: bytes.Repeat([]byte{0x40}, authority.MaxDeclarationSize+10)},
			{name: "signed by a key that is not the issuer's", body: rule(t, a, 1, a, okta.id(), "s3://logs/*", okta.root).Raw},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, body := rawPost(t, n, "/v1/declarations", bearer, "application/cbor", tt.body)
				if st != http.StatusBadRequest {
					t.Fatalf("status %d, want 400: %s", st, body)
				}
				wantJSONError(t, body)
				unchanged(t, v, tt.body)
				// The client maps the status back to the sentinel.
				if _, err := c.Submit(ctx, tt.body); !errors.Is(err, ErrInvalid) {
					t.Errorf("Client.Submit: err = %v, want ErrInvalid", err)
				}
			})
		}
	})

	t.Run("submit of an unknown authority's rule is 422", func(t *testing.T) {
		v := n.GraphVersion()
		ghost := newOutsider(t, "ghost") // its genesis is never submitted
		r := rule(t, ghost.id(), 1, ghost.id(), okta.id(), "x", ghost.root)
		st, body := rawPost(t, n, "/v1/declarations", bearer, "application/cbor", r.Raw)
		if st != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422: %s", st, body)
		}
		wantJSONError(t, body)
		if _, err := c.Submit(ctx, r.Raw); !errors.Is(err, ErrUnknownIssuer) {
			t.Errorf("Client.Submit: err = %v, want ErrUnknownIssuer", err)
		}
		unchanged(t, v, r.Raw)
	})

	t.Run("valid rule is accepted, agreed, then a duplicate", func(t *testing.T) {
		st, body := rawPost(t, n, "/v1/declarations", bearer, "application/cbor", r1.Raw)
		if st != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %s", st, body)
		}
		var res SubmitResult
		if err := json.Unmarshal(body, &res); err != nil || res.ID != r1.ID || res.Kind != "rule" || res.Status != "accepted" {
			t.Fatalf("submit result %s (%v)", body, err)
		}
		waitFor(t, waitAgreed, "the rule agreed", agreedAt(r1.ID, n))
		st, body = rawPost(t, n, "/v1/declarations", bearer, "application/cbor", r1.Raw)
		if st != http.StatusOK {
			t.Fatalf("resubmission: status %d, want 200: %s", st, body)
		}
		if err := json.Unmarshal(body, &res); err != nil || res.Status != "duplicate" || res.ID != r1.ID {
			t.Fatalf("resubmission result %s (%v)", body, err)
		}
	})

	t.Run("verify refuses malformed requests", func(t *testing.T) {
		good := base64.StdEncoding.EncodeToString(cred.Raw)
		tests := []struct {
			name string
			body string
		}{
			{name: "not JSON", body: "credential=abc"},
			{name: "empty", body: ""},
			{name: "JSON array", body: `[]`},
			{name: "unknown field", body: `{"credential":"` + good + `","target":"aws-prod","resource":"r","action":"read","extra":1}`},
			{name: "credential not base64", body: `{"credential":"!!not base64!!","target":"aws-prod","resource":"r","action":"read"}`},
			{name: "credential URL-safe base64", body: `{"credential":"` + base64.URLEncoding.EncodeToString(cred.Raw) + `","target":"aws-prod","resource":"r","action":"read"}`},
			{name: "no target", body: `{"credential":"` + good + `","resource":"r","action":"read"}`},
			{name: "no resource", body: `{"credential":"` + good + `","target":"aws-prod","action":"read"}`},
			{name: "no action", body: `{"credential":"` + good + `","target":"aws-prod","resource":"r"}`},
			{name: "at not RFC3339", body: `{"credential":"` + good + `","target":"aws-prod","resource":"r","action":"read","at":"yesterday"}`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if strings.Contains(tt.name, "URL-safe") && !strings.ContainsAny(base64.URLEncoding.EncodeToString(cred.Raw), "-_") {
					t.Skip("this credential's base64 has no URL-safe characters")
				}
				st, body := rawPost(t, n, "/v1/verify", "", "application/json", []byte(tt.body))
				if st != http.StatusBadRequest {
					t.Fatalf("status %d, want 400: %s", st, body)
				}
				wantJSONError(t, body)
			})
		}
	})

	t.Run("verify decides", func(t *testing.T) {
		tests := []struct {
			name     string
			cred     []byte
			target   string
			resource string
			action   string
			outcome  string
			reason   authority.Reason
		}{
			{name: "allowed by name", cred: cred.Raw, target: "aws-prod", resource: "s3://logs/2026", action: "read", outcome: "allow", reason: authority.ReasonOK},
			{name: "allowed by id", cred: cred.Raw, target: a.String(), resource: "s3://logs/2026", action: "read", outcome: "allow", reason: authority.ReasonOK},
			{name: "unknown target name", cred: cred.Raw, target: "nobody", resource: "s3://logs/2026", action: "read", outcome: "deny", reason: authority.ReasonUnknownAuthority},
			{name: "resource not covered", cred: cred.Raw, target: "aws-prod", resource: "s3://secrets/k", action: "read", outcome: "deny", reason: authority.ReasonResourceNotAllowed},
			{name: "action not allowed", cred: cred.Raw, target: "aws-prod", resource: "s3://logs/2026", action: "write", outcome: "deny", reason: authority.ReasonActionNotAllowed},
			{name: "subject not allowed", cred: credential(t, okta.id(), "bob@okta", okta.root).Raw, target: "aws-prod", resource: "s3://logs/2026", action: "read", outcome: "deny", reason: authority.ReasonSubjectNotAllowed},
			{name: "forged credential", cred: credential(t, okta.id(), "alice@okta", h.Root).Raw, target: "aws-prod", resource: "s3://logs/2026", action: "read", outcome: "deny", reason: authority.ReasonBadSignature},
			{name: "not a credential", cred: r1.Raw, target: "aws-prod", resource: "s3://logs/2026", action: "read", outcome: "deny", reason: authority.ReasonMalformed},
			{name: "garbage credential", cred: []byte("xyz"), target: "aws-prod", resource: "s3://logs/2026", action: "read", outcome: "deny", reason: authority.ReasonMalformed},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req, _ := json.Marshal(VerifyRequest{Credential: base64.StdEncoding.EncodeToString(tt.cred), Target: tt.target,
					Resource: tt.resource, Action: tt.action, At: tJudge.Format(time.RFC3339)})
				st, body := rawPost(t, n, "/v1/verify", "", "application/json", req)
				if st != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", st, body)
				}
				var m map[string]json.RawMessage
				if err := json.Unmarshal(body, &m); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"decision", "reason", "message", "chain", "graph_version", "graph_age_ms", "resource", "action", "at"} {
					if _, ok := m[k]; !ok {
						t.Errorf("decision JSON lacks %q: %s", k, body)
					}
				}
				var d authority.Decision
				if err := json.Unmarshal(body, &d); err != nil {
					t.Fatal(err)
				}
				if d.Outcome != tt.outcome || d.Reason != tt.reason {
					t.Fatalf("decision %s/%s (%s), want %s/%s", d.Outcome, d.Reason, d.Message, tt.outcome, tt.reason)
				}
				if d.Message == "" || d.GraphVersion != n.GraphVersion() || d.At != tJudge.Format(time.RFC3339) || d.GraphAgeMS < 0 {
					t.Errorf("decision fields: %s", body)
				}
				if tt.outcome == "allow" && (len(d.Chain) != 4 || d.Chain[0] != okta.id() || d.Chain[1] != cred.ID || d.Chain[2] != a || d.Chain[3] != r1.ID || d.Rule != r1.ID) {
					t.Errorf("allow chain %v rule %s, want [okta cred aws r1] r1", d.Chain, d.Rule.Short())
				}
				// The client gives the same decision, Allow set.
				cd, err := c.Verify(ctx, tt.cred, tt.target, tt.resource, tt.action, tJudge)
				if err != nil || cd.Allow != (tt.outcome == "allow") || cd.Reason != tt.reason {
					t.Errorf("Client.Verify: %+v, %v", cd, err)
				}
			})
		}
	})

	t.Run("a different rule at a taken seq is 409", func(t *testing.T) {
		v := n.GraphVersion()
		other := rule(t, a, 1, a, okta.id(), "s3://other/*", h.Root)
		st, body := rawPost(t, n, "/v1/declarations", bearer, "application/cbor", other.Raw)
		if st != http.StatusConflict {
			t.Fatalf("status %d, want 409: %s", st, body)
		}
		wantJSONError(t, body)
		// Validly signed too: the pair is evidence that aws-prod equivocated,
		// which is why this runs after the decisions above.
		if !strings.Contains(string(body), "evidence of equivocation") {
			t.Errorf("409 body does not say the pair is kept as evidence: %s", body)
		}
		if _, err := c.Submit(ctx, other.Raw); !errors.Is(err, ErrConflict) {
			t.Errorf("Client.Submit: err = %v, want ErrConflict", err)
		}
		unchanged(t, v, other.Raw)
	})

	t.Run("status", func(t *testing.T) {
		st, body := rawGet(t, n, "/v1/status")
		if st != http.StatusOK {
			t.Fatalf("status %d: %s", st, body)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"authority", "peer_id", "listen_addrs", "api", "peers", "topics", "raft", "graph", "pending"} {
			if _, ok := m[k]; !ok {
				t.Errorf("status JSON lacks %q", k)
			}
		}
		s, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.PeerID != n.PeerID() || s.PeerID == "" {
			t.Errorf("peer_id %q, want %q", s.PeerID, n.PeerID())
		}
		if len(s.ListenAddrs) == 0 || !strings.Contains(s.ListenAddrs[0], "/127.0.0.1/") || !strings.Contains(s.ListenAddrs[0], "/p2p/"+n.PeerID()) {
			t.Errorf("listen_addrs %v", s.ListenAddrs)
		}
		if !slices.Contains(s.Topics, "/fednode/declarations/1") || !slices.Contains(s.Topics, gossip.DeclarationsTopic) {
			t.Errorf("topics %v", s.Topics)
		}
		if s.Raft.State != "leader" || s.Raft.Leader != n.PeerID() || !slices.Equal(s.Raft.Voters, []string{n.PeerID()}) {
			t.Errorf("raft %+v", s.Raft)
		}
		if s.Graph.Version != n.GraphVersion() || s.Graph.Version != 3 || s.Graph.Authorities != 2 {
			t.Errorf("graph %+v, want version 3 (2 geneses, 1 rule), 2 authorities", s.Graph)
		}
		if s.Authority.ID != a || s.Authority.Name != "aws-prod" || s.API != n.APIAddr() {
			t.Errorf("authority %+v api %q", s.Authority, s.API)
		}
	})

	t.Run("graph lists the rule", func(t *testing.T) {
		g, err := c.Graph(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if g.Version != n.GraphVersion() {
			t.Errorf("graph version %d, want %d", g.Version, n.GraphVersion())
		}
		var found bool
		for _, aj := range g.Authorities {
			for _, r := range aj.Rules {
				if r.ID == r1.ID {
					found = aj.ID == a && r.Seq == 1 && r.Source == okta.id() && r.Resources == "s3://logs/*" && !r.Revoked &&
						r.NotBefore == t0.Format(time.RFC3339)
				}
			}
		}
		if !found {
			t.Errorf("GET /v1/graph does not list rule %s under aws-prod as signed: %+v", r1.ID.Short(), g)
		}
	})

	t.Run("authority head", func(t *testing.T) {
		tests := []struct {
			name   string
			ref    string
			head   uint64
			headID authority.ID
		}{
			{name: "by name", ref: "aws-prod", head: 1, headID: r1.ID},
			{name: "by id", ref: a.String(), head: 1, headID: r1.ID},
			{name: "an authority with only its genesis", ref: "okta", head: 0, headID: okta.id()},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, err := c.Head(ctx, tt.ref)
				if err != nil {
					t.Fatal(err)
				}
				if st.Head != tt.head || st.HeadID != tt.headID || st.Pending {
					t.Errorf("head %+v, want seq %d id %s, agreed", st, tt.head, tt.headID.Short())
				}
			})
		}
		if code, body := rawGet(t, n, "/v1/authorities/nobody"); code != http.StatusNotFound {
			t.Errorf("unknown authority: status %d, want 404: %s", code, body)
		}
	})

	t.Run("declaration by id", func(t *testing.T) {
		code, body := rawGet(t, n, "/v1/declarations/"+r1.ID.String())
		if code != http.StatusOK || !bytes.Equal(body, r1.Raw) {
			t.Fatalf("status %d, body %d bytes; want 200 and the envelope's %d bytes", code, len(body), len(r1.Raw))
		}
		tests := []struct {
			name string
			path string
			code int
		}{
			{name: "not an id", path: "/v1/declarations/xyz", code: http.StatusBadRequest},
			{name: "unknown id", path: "/v1/declarations/" + cred.ID.String(), code: http.StatusNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, body := rawGet(t, n, tt.path)
				if code != tt.code {
					t.Fatalf("status %d, want %d: %s", code, tt.code, body)
				}
				wantJSONError(t, body)
			})
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, body := rawGet(t, n, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		for _, want := range []string{"fednode_graph_version 3", "fednode_declarations_submitted_total", "fednode_decisions_total"} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})

	t.Run("bundle", func(t *testing.T) {
		b, err := c.Bundle(ctx, ExportOptions{})
		if err != nil || len(b) == 0 {
			t.Fatalf("bundle: %d bytes, %v", len(b), err)
		}
	})

	t.Run("a revocation denies before it is agreed", func(t *testing.T) {
		rev := mustSign(t, authority.Declaration{
			Kind: authority.KindRevocation, Authority: okta.id(), Seq: 1, Prev: okta.id(), IssuedAt: t0.Unix(),
			Revocation: &authority.Revocation{Target: cred.ID, Reason: "laptop stolen"},
		}, okta.root)
		if _, err := c.Submit(ctx, rev.Raw); err != nil {
			t.Fatal(err)
		}
		// Submit holds it as provisional before returning, whatever Raft
		// has done yet: the very next decision denies.
		d := n.Verify(cred.Raw, "aws-prod", "s3://logs/2026", "read", tJudge)
		if d.Reason != authority.ReasonRevoked {
			t.Fatalf("right after the revocation's submission: %s/%s, want deny revoked", d.Outcome, d.Reason)
		}
		waitFor(t, waitAgreed, "the revocation agreed", agreedAt(rev.ID, n))
		if d := n.Verify(cred.Raw, "aws-prod", "s3://logs/2026", "read", tJudge); d.Reason != authority.ReasonRevoked {
			t.Fatalf("after agreement: %s/%s, want deny revoked", d.Outcome, d.Reason)
		}
	})
}

func TestAPIRefusesNonLoopback(t *testing.T) {
	h := initHome(t, "aws-prod")
	tests := []struct {
		name string
		api  string
		want string
	}{
		{name: "all IPv4", api: "0.0.0.0:0", want: "loopback"},
		{name: "all IPv6", api: "[::]:0", want: "loopback"},
		{name: "a public address", api: "192.0.2.10:8080", want: "loopback"},
		{name: "a host name", api: "example.com:80", want: "loopback"},
		{name: "no port", api: "127.0.0.1", want: "API address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(context.Background(), Config{Home: h.Dir, Bootstrap: true, API: tt.api, Logger: testLogger(t)})
			if err == nil {
				n.Close()
				t.Fatalf("New with API %q succeeded", tt.api)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.api) {
				t.Errorf("error %q does not name the address and %q", err, tt.want)
			}
		})
	}
	// A refused start released the home (store lock, ports): the node
	// starts from it with a loopback address.
	n := startNode(t, h, Config{Bootstrap: true, API: "127.0.0.1:0"})
	waitFor(t, waitAgreed, "own genesis agreed", func() bool { return n.Agreed(n.Authority()) })
}

// TestSubmitWrongPrevIsConflict: a declaration at head+1 whose prev is not
// the head can never be agreed; the API must say so (409) instead of
// answering 202 and holding the position in the pool until the proposer
// drops it.
func TestSubmitWrongPrevIsConflict(t *testing.T) {
	n, h := startSingle(t, "aws-prod")
	okta := newOutsider(t, "okta")
	if _, err := n.Submit(context.Background(), okta.gen.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "okta's genesis agreed", agreedAt(okta.id(), n))
	v := n.GraphVersion()
	bad := rule(t, h.Authority, 1, okta.id(), okta.id(), "s3://*", h.Root) // prev names okta's genesis, not aws-prod's
	_, err := n.Submit(context.Background(), bad.Raw)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Submit with a wrong prev: err = %v, want ErrConflict", err)
	}
	if n.GraphVersion() != v || n.pool.get(bad.ID) != nil {
		t.Errorf("a refused declaration changed the graph or the pool")
	}
}
