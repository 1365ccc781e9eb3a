package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
	"github.com/fednode/fednode/tlog"
)

// TestReceiptCommands: verify --receipt writes the node's receipt and audit
// check-receipt passes on it, fails naming the check on every tampering,
// and still passes once the log has grown.
func TestReceiptCommands(t *testing.T) {
	n, h, oktaKey := auditNode(t)
	api := n.APIAddr()
	dir := t.TempDir()
	ctx := context.Background()
	oktaID := okta(t, n)

	cred, err := authority.Sign(authority.Declaration{Kind: authority.KindCredential, Authority: oktaID, IssuedAt: auditT0.Unix(),
		Credential: &authority.Credential{Subject: "alice@okta", NotBefore: auditT0.Unix(), NotAfter: auditT0.Add(24 * time.Hour).Unix()}}, oktaKey)
	if err != nil {
		t.Fatal(err)
	}
	credFile := filepath.Join(dir, "alice.cred")
	writeFile(t, credFile, cred.Raw)
	judge := auditT0.Add(time.Hour).Format(time.RFC3339)
	verifyArgs := func(resource, action, receipt string, more ...string) []string {
		return append([]string{"verify", "--credential", credFile, "--at", "aws-prod", "--resource", resource,
			"--action", action, "--time", judge, "--receipt", receipt}, more...)
	}

	allow := filepath.Join(dir, "allow.receipt")
	deny := filepath.Join(dir, "deny.receipt")
	t.Run("verify writes receipts", func(t *testing.T) {
		out, errText, code := runFednode(t, verifyArgs("s3://b1/x", "read", allow, "--api", api)...)
		if code != 0 || !strings.Contains(out, "receipt written to "+allow) {
			t.Fatalf("verify --receipt (allow): exit %d: %s\n%s", code, errText, out)
		}
		out, errText, code = runFednode(t, verifyArgs("s3://b1/x", "write", deny, "--home", h.Dir, "--json")...)
		if code != 1 {
			t.Fatalf("verify --receipt (deny): exit %d, want 1: %s\n%s", code, errText, out)
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(out), &d); err != nil || d["reason"] != "action-not-allowed" {
			t.Errorf("--json with --receipt must print one decision object: %v\n%s", err, out)
		}
		for _, f := range []string{allow, deny} {
			if _, err := node.OpenReceipt(readFile(t, f), []authority.PublicKey{h.Root.Public()}); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	})

	t.Run("verify usage", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{name: "receipt with a bundle", args: verifyArgs("s3://b1/x", "read", filepath.Join(dir, "x.receipt"), "--bundle", filepath.Join(dir, "any.bundle")), want: "signed by the node"},
			{name: "receipt into a missing directory", args: verifyArgs("s3://b1/x", "read", filepath.Join(dir, "nope", "x.receipt"), "--api", api), want: "--receipt"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, errText, code := runFednode(t, tt.args...)
				if code != 2 || !strings.Contains(errText, tt.want) {
					t.Errorf("exit %d, want 2 with %q: %s", code, tt.want, errText)
				}
			})
		}
	})

	t.Run("check-receipt passes", func(t *testing.T) {
		out, errText, code := runFednode(t, "audit", "check-receipt", allow, "--api", api)
		t.Logf("check-receipt:\n%s", out)
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errText, out)
		}
		for _, want := range []string{"receipt verified: aws-prod decided allow (ok)", "graph       version 7", "signed by aws-prod",
			"credential: presented, not logged", "genesis: included, leaf 1 of the log of 7 leaves", "rule: included, leaf 3 of"} {
			if !strings.Contains(out, want) {
				t.Errorf("the summary lacks %q", want)
			}
		}
		out = mustRunCLI(t, "audit", "check-receipt", deny, "--home", h.Dir, "--json")
		var rep receiptReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Decision != "deny" || rep.Reason != "action-not-allowed" || rep.AuthorityName != "aws-prod" || rep.Checkpoint.Size != 7 || len(rep.Chain) != 4 {
			t.Errorf("report %+v", rep)
		}
		for _, e := range rep.Chain {
			if e.ID == cred.ID && e.Status != elemPresented || e.ID != cred.ID && (e.Status != elemIncluded || e.Leaf == nil || e.TreeSize != 7) {
				t.Errorf("chain[%d] %+v", e.Index, e)
			}
		}
	})

	good := readFile(t, allow)
	r, _, err := node.ParseReceipt(good)
	if err != nil {
		t.Fatal(err)
	}
	reseal := func(k *authority.PrivateKey, edit func(r *node.Receipt)) []byte {
		c := *r
		c.Chain = append([]authority.ID(nil), r.Chain...)
		edit(&c)
		b, err := c.Seal(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	note := func(cp tlog.Checkpoint) []byte {
		b, err := tlog.SignCheckpoint(cp, "aws-prod", h.Root)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	body, err := r.CheckpointBody()
	if err != nil {
		t.Fatal(err)
	}
	older, err := node.NewClient(api, "").AuditConsistency(ctx, 3, 7)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-3] ^= 0x01

	tests := []struct {
		name string
		raw  []byte
		want string // the failed check, first in the message
		also string // and this in the message
	}{
		{name: "seal byte flipped", raw: flipped, want: "seal: ", also: "does not verify"},
		{name: "payload byte flipped", raw: func() []byte {
			b := bytes.Clone(good)
			i := bytes.Index(b, []byte("s3://b1/x"))
			b[i+6] = '2' // s3://b2/x: well-formed, but not what was sealed
			return b
		}(), want: "seal: ", also: "does not verify"},
		{name: "re-sealed by another authority's key", raw: reseal(oktaKey, func(*node.Receipt) {}), want: "seal: ", also: "never declared"},
		{name: "re-sealed by another authority in its own name", raw: reseal(oktaKey, func(c *node.Receipt) { c.Authority = oktaID }), want: "checkpoint: ", also: "not signed by okta"},
		{name: "an authority the node does not know", raw: reseal(oktaKey, func(c *node.Receipt) { c.Authority = authority.ID{7} }), want: "authority: ", also: "does not know"},
		{name: "a checkpoint of another log", raw: reseal(h.Root, func(c *node.Receipt) {
			c.Checkpoint = note(tlog.Checkpoint{Origin: tlog.Origin("00112233deadbeef"), Size: body.Size, Root: body.Root})
		}), want: "checkpoint: ", also: "another consortium's log"},
		{name: "a checkpoint below the graph version", raw: reseal(h.Root, func(c *node.Receipt) {
			c.Checkpoint = note(tlog.Checkpoint{Origin: body.Origin, Size: 3, Root: older.OldRoot})
		}), want: "checkpoint: ", also: "below the graph version 7"},
		{name: "a checkpoint the log does not extend", raw: reseal(h.Root, func(c *node.Receipt) {
			c.Checkpoint = note(tlog.Checkpoint{Origin: body.Origin, Size: body.Size, Root: make([]byte, tlog.HashSize)})
		}), want: "consistency: ", also: "not a prefix"},
		{name: "a chain element not in the log", raw: reseal(h.Root, func(c *node.Receipt) { c.Chain = append(c.Chain, authority.ID{9}) }), want: "chain[4]: ", also: "not in the node's log"},
		{name: "a chain element newer than the graph judged at", raw: reseal(h.Root, func(c *node.Receipt) { c.GraphVersion = 3 }), want: "chain[3]: ", also: "beyond the graph version 3"},
		{name: "not a receipt", raw: cred.Raw, want: "seal: ", also: "payload"},
	}
	for _, tt := range tests {
		t.Run("check-receipt "+tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".receipt")
			writeFile(t, file, tt.raw)
			out, errText, code := runFednode(t, "audit", "check-receipt", file, "--api", api, "--json")
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s\n%s", code, errText, out)
			}
			var rep receiptReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("--json on failure: %v\n%s", err, out)
			}
			msg := strings.TrimPrefix(errText, "audit check-receipt: "+file+": ")
			if rep.OK || rep.Bad == nil || !strings.HasPrefix(msg, tt.want) || !strings.Contains(msg, tt.also) || rep.Error != msg {
				t.Fatalf("got %q (report ok=%v bad=%+v), want it to start with %q and contain %q", errText, rep.OK, rep.Bad, tt.want, tt.also)
			}
			t.Log(errText)
		})
	}

	t.Run("check-receipt usage", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
		}{
			{name: "no file", args: []string{"audit", "check-receipt", "--api", api}},
			{name: "missing file", args: []string{"audit", "check-receipt", filepath.Join(dir, "nope"), "--api", api}},
			{name: "no node", args: []string{"audit", "check-receipt", allow}},
			{name: "two nodes", args: []string{"audit", "check-receipt", allow, "--api", api, "--home", h.Dir}},
			{name: "two files", args: []string{"audit", "check-receipt", allow, deny, "--api", api}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, errText, code := runFednode(t, tt.args...); code != 2 {
					t.Errorf("exit %d, want 2: %s", code, errText)
				}
			})
		}
	})

	// The point of the checkpoint: the log grows, and the receipt still
	// checks out, by a consistency proof from its size to the new one.
	t.Run("check-receipt after the log grew", func(t *testing.T) {
		sd, err := node.SignNext(ctx, h, n, auditT0, func(d *authority.Declaration) {
			d.Kind = authority.KindRule
			d.Rule = &authority.Rule{Source: oktaID, Subjects: "bob*", Resources: "s3://later/*", Actions: []string{"read"}}
		})
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the eighth declaration agreed", func() bool { return n.Agreed(sd.ID) && n.GraphVersion() == 8 })
		out := mustRunCLI(t, "audit", "check-receipt", allow, "--api", api, "--json")
		var rep receiptReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Checkpoint.Size != 7 || rep.Current.Size != 8 {
			t.Errorf("report %+v, want the receipt's checkpoint at 7 consistent with the log at 8", rep)
		}
		if out := mustRunCLI(t, "audit", "check-receipt", allow, "--api", api); !strings.Contains(out, "log now     size 8") {
			t.Errorf("summary:\n%s", out)
		}
	})

	// A node denies on a revocation as soon as gossip brings it, before Raft
	// orders it: the deny's chain then ends with a revocation that is newer
	// than the graph judged at. Simulated from a real receipt of a deny on a
	// revoked credential, re-sealed as if judged one version earlier.
	t.Run("check-receipt of a deny on a revocation not yet ordered", func(t *testing.T) {
		rev, err := authority.Sign(authority.Declaration{Kind: authority.KindRevocation, Authority: oktaID, Seq: 1, Prev: oktaID,
			IssuedAt: auditT0.Unix(), Revocation: &authority.Revocation{Target: cred.ID}}, oktaKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Submit(ctx, rev.Raw); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "okta's revocation agreed", func() bool { return n.Agreed(rev.ID) })
		revoked := filepath.Join(dir, "revoked.receipt")
		if _, errText, code := runFednode(t, verifyArgs("s3://b1/x", "read", revoked, "--api", api)...); code != 1 {
			t.Fatalf("verify of a revoked credential: exit %d, want 1 (deny): %s", code, errText)
		}
		rr, _, err := node.ParseReceipt(readFile(t, revoked))
		if err != nil {
			t.Fatal(err)
		}
		v := rr.GraphVersion
		if rr.Reason != "revoked" || len(rr.Chain) != 3 || rr.Chain[2] != rev.ID {
			t.Fatalf("deny %s with chain %v, want revoked ending with the revocation %s", rr.Reason, rr.Chain, rev.ID.Short())
		}
		mustRunCLI(t, "audit", "check-receipt", revoked, "--api", api)
		before, err := node.NewClient(api, "").AuditConsistency(ctx, v-1, v)
		if err != nil {
			t.Fatal(err)
		}
		earlier := func(edit func(c *node.Receipt)) string {
			c := *rr
			c.Chain = append([]authority.ID(nil), rr.Chain...)
			c.GraphVersion = v - 1
			c.Checkpoint = note(tlog.Checkpoint{Origin: body.Origin, Size: v - 1, Root: before.OldRoot})
			edit(&c)
			b, err := c.Seal(h.Root)
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, "earlier.receipt")
			writeFile(t, f, b)
			return f
		}
		out := mustRunCLI(t, "audit", "check-receipt", earlier(func(*node.Receipt) {}), "--api", api, "--json")
		var rep receiptReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if e := rep.Chain[2]; !rep.OK || e.Status != elemLater || e.Kind != "revocation" || e.Leaf == nil || *e.Leaf != v-1 || e.TreeSize != v {
			t.Errorf("the revocation: %+v, want logged later at leaf %d", e, v-1)
		}
		for _, tt := range []struct {
			name string
			edit func(c *node.Receipt)
			want string
		}{
			{name: "only a deny on a revocation", edit: func(c *node.Receipt) { c.Reason = "no-rule" }, want: "chain[2]: " + rr.Chain[2].String() + ": at a leaf beyond the receipt's checkpoint"},
			{name: "a revocation never agreed", edit: func(c *node.Receipt) { c.Chain[2] = authority.ID{9} }, want: "not agreed (yet)"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, errText, code := runFednode(t, "audit", "check-receipt", earlier(tt.edit), "--api", api)
				if code != 1 || !strings.Contains(errText, tt.want) {
					t.Errorf("exit %d, want 1 with %q: %s", code, tt.want, errText)
				}
				t.Log(errText)
			})
		}
	})
}

// okta finds the ID of the okta authority auditNode made.
func okta(t *testing.T, n *node.Node) authority.ID {
	t.Helper()
	a, err := n.Head(context.Background(), "okta")
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func mustRunCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errText, code := runFednode(t, args...)
	if code != 0 {
		t.Fatalf("fednode %s: exit %d: %s\n%s", strings.Join(args, " "), code, errText, out)
	}
	return out
}
