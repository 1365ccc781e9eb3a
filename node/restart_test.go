package node

import (
	"bytes"
	"context"
	"testing"

	"github.com/fednode/fednode/authority"
)

// TestRestartDurable closes a single node and starts it again from its home,
// twice: everything agreed comes back from badger, and the node leads its
// one-voter cluster again and goes on accepting declarations.
func TestRestartDurable(t *testing.T) {
	n, h := startSingle(t, "aws-prod")
	okta := newOutsider(t, "okta")
	ctx := context.Background()
	if _, err := n.Submit(ctx, okta.gen.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "okta's genesis agreed", agreedAt(okta.id(), n))
	decls := []*authority.Signed{okta.gen}
	for _, res := range []string{"s3://a/*", "s3://b/*", "s3://c/*"} {
		decls = append(decls, nextRule(t, h, n, okta.id(), res))
	}
	cred := credential(t, okta.id(), "alice@okta", okta.root)
	rev := mustSign(t, authority.Declaration{
		Kind: authority.KindRevocation, Authority: okta.id(), Seq: 1, Prev: okta.id(), IssuedAt: t0.Unix(),
		Revocation: &authority.Revocation{Target: cred.ID},
	}, okta.root)
	if _, err := n.Submit(ctx, rev.Raw); err != nil {
		t.Fatal(err)
	}
	decls = append(decls, rev)
	for _, sd := range decls {
		waitFor(t, waitAgreed, "declaration "+sd.ID.Short()+" agreed", agreedAt(sd.ID, n))
	}
	version := n.GraphVersion()
	if version != uint64(len(decls))+1 {
		t.Fatalf("graph version %d, want %d (own genesis + %d)", version, len(decls)+1, len(decls))
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}

	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "from the home alone", cfg: Config{API: "127.0.0.1:0"}},
		// cmd/fednode may pass --bootstrap on every start: with Raft state
		// present it must not found a second cluster.
		{name: "with Bootstrap again", cfg: Config{API: "127.0.0.1:0", Bootstrap: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, h, tt.cfg)
			if got := n.GraphVersion(); got != version {
				t.Fatalf("graph version after restart %d, want %d", got, version)
			}
			for _, sd := range decls {
				if !n.Agreed(sd.ID) {
					t.Errorf("%v %s lost in the restart", sd.Decl.Kind, sd.ID.Short())
				}
				env, err := n.store.Declaration(sd.ID)
				if err != nil || !bytes.Equal(env, sd.Raw) {
					t.Errorf("%v %s: stored envelope differs after restart (%v)", sd.Decl.Kind, sd.ID.Short(), err)
				}
			}
			if d := n.Verify(cred.Raw, "aws-prod", "s3://a/x", "read", tJudge); d.Reason != authority.ReasonRevoked {
				t.Errorf("after restart: %s/%s, want deny revoked", d.Outcome, d.Reason)
			}
			waitFor(t, waitLeader, "leader again", func() bool { return n.Status().Raft.State == "leader" })
			if st := n.Status(); len(st.Raft.Voters) != 1 || st.Raft.Voters[0] != n.PeerID() {
				t.Errorf("voters after restart %v, want just itself", st.Raft.Voters)
			}
			if addr, err := h.APIAddr(); err != nil || addr != n.APIAddr() {
				t.Errorf("recorded API address %q (%v), want %q", addr, err, n.APIAddr())
			}
			// It goes on from the restored chain head.
			sd := nextRule(t, h, n, okta.id(), "s3://after-restart/*")
			waitFor(t, waitAgreed, "a declaration after restart agreed", agreedAt(sd.ID, n))
			decls = append(decls, sd)
			version++
			if got := n.GraphVersion(); got != version {
				t.Errorf("graph version %d, want %d", got, version)
			}
			if err := n.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
		})
	}
}
