package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/gossip"
)

// agreedEvidenceAt reports whether every node's agreed graph holds evidence
// against a at seq.
func agreedEvidenceAt(a authority.ID, seq uint64, nodes ...*Node) func() bool {
	return func() bool {
		for _, n := range nodes {
			found := false
			for _, e := range n.Status().Equivocations {
				found = found || (e.Authority == a && e.Seq == seq && e.Agreed)
			}
			if !found {
				return false
			}
		}
		return true
	}
}

// forkAt signs two different rules of h's authority at its next position
// after head (seq, prev), accepting source, without submitting them.
func forkAt(t *testing.T, h *Home, seq uint64, prev, source authority.ID) (*authority.Signed, *authority.Signed) {
	t.Helper()
	var out [2]*authority.Signed
	for i, res := range []string{"fork://a/*", "fork://b/*"} {
		sd, err := h.Sign(authority.Declaration{Kind: authority.KindRule, Authority: h.Authority, Seq: seq, Prev: prev, IssuedAt: t0.Unix(),
			Rule: &authority.Rule{Source: source, Subjects: "*", Resources: res, Actions: []string{"read"}}})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sd
	}
	return out[0], out[1]
}

func counterValue(t *testing.T, n *Node, source string) float64 {
	t.Helper()
	mfs, err := n.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fednode_equivocation_evidence_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestEquivocationThreeNodes: an authority signs two declarations at one
// position and they reach the mesh at two nodes; then it signs a third
// against a position already agreed. Every node ends up holding both
// proofs in its agreed graph, denies what the authority issues with reason
// equivocation, and trusts it again after a rotation by its root threshold.
func TestEquivocationThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes: not in -short")
	}
	nodes, homes := startTrio(t)
	aws, okta := homes[0], homes[1]
	ctx := context.Background()

	r := nextRule(t, aws, nodes[0], okta.Authority, "db://*")
	waitFor(t, waitAgreed, "aws-prod's rule agreed at all three", agreedAt(r.ID, nodes...))
	cred := credential(t, okta.Authority, "alice@okta", okta.Root)
	verifyAll := func(cred []byte, want authority.Reason) func() bool {
		return func() bool {
			for _, n := range nodes {
				if d := n.Verify(cred, "aws-prod", "db://orders", "read", tJudge); d.Reason != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, waitAgreed, "okta's credential allowed at all three", verifyAll(cred.Raw, authority.ReasonOK))

	// Two declarations at okta's seq 1, submitted at two nodes at once.
	x, y := forkAt(t, okta, 1, okta.Authority, aws.Authority)
	errc := make(chan error, 2)
	go func() { _, err := nodes[1].Submit(ctx, x.Raw); errc <- err }()
	go func() { _, err := nodes[2].Submit(ctx, y.Raw); errc <- err }()
	for range 2 {
		if err := <-errc; err != nil && !errors.Is(err, ErrConflict) {
			t.Fatalf("submit one half of the fork: %v", err)
		}
	}
	waitFor(t, waitAgreed, "evidence against okta at seq 1 agreed at all three", agreedEvidenceAt(okta.Authority, 1, nodes...))
	waitFor(t, waitAgreed, "okta's credential denied equivocation at all three", verifyAll(cred.Raw, authority.ReasonEquivocation))
	for _, n := range nodes {
		d := n.Verify(cred.Raw, "aws-prod", "db://orders", "read", tJudge)
		t.Logf("%s: %s %s: %s", n.home.Config.Name, d.Outcome, d.Reason, d.Message)
		if counterValue(t, n, "agreed") < 1 {
			t.Errorf("%s: fednode_equivocation_evidence_total{source=agreed} = %v, want >= 1", n.home.Config.Name, counterValue(t, n, "agreed"))
		}
	}
	// The evidence may be ordered before either half: wait for the chain.
	var held *authority.Signed
	waitFor(t, waitAgreed, "one half of the fork agreed at all three", func() bool {
		for _, sd := range []*authority.Signed{x, y} {
			if agreedAt(sd.ID, nodes...)() {
				held = sd
				return true
			}
		}
		return false
	})

	// A third declaration at the agreed seq 1: the submitter gets a clear
	// conflict, and the node gossips and orders the (new) pair. It is at a
	// position that has evidence already, so it adds none; a fork of seq 2
	// does.
	z, _ := forkAt(t, okta, 1, okta.Authority, okta.Authority)
	if _, err := nodes[0].Submit(ctx, z.Raw); !errors.Is(err, ErrConflict) {
		t.Fatalf("submit at a taken position: %v, want ErrConflict", err)
	}
	s2, err := SignNext(ctx, okta, nodes[1], t0, func(d *authority.Declaration) {
		d.Kind, d.Rule = authority.KindRule, &authority.Rule{Source: aws.Authority, Subjects: "*", Resources: "seq2://*", Actions: []string{"read"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "okta's seq 2 agreed at all three", agreedAt(s2.ID, nodes...))
	f2, _ := forkAt(t, okta, 2, held.ID, okta.Authority)
	_, err = nodes[2].Submit(ctx, f2.Raw)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "evidence of equivocation") {
		t.Fatalf("submit a fork of an agreed position: %v, want a conflict that names the evidence", err)
	}
	waitFor(t, waitAgreed, "evidence against okta at seq 2 agreed at all three (submitted, gossiped, ordered)", agreedEvidenceAt(okta.Authority, 2, nodes...))
	if got := counterValue(t, nodes[2], "local"); got < 1 {
		t.Errorf("the submitting node counted %v local proofs, want >= 1", got)
	}
	st := nodes[1].Status()
	if len(st.Equivocations) != 2 || st.Equivocations[0].Name != "okta" || st.Equivocations[1].IDs != [2]authority.ID{s2.ID, f2.ID} {
		t.Fatalf("status equivocations = %+v", st.Equivocations)
	}

	// Recovery: okta's root threshold rotates to a new key. What the new
	// key signs verifies; what the retired one signed after is refused.
	newKey, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := SignNext(ctx, okta, nodes[1], t0, func(d *authority.Declaration) {
		d.Kind, d.Rotation = authority.KindRotation, &authority.Rotation{RootKeys: []authority.PublicKey{newKey.Public()}, Threshold: 1}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "okta's rotation agreed at all three", agreedAt(rot.ID, nodes...))
	fresh := credential(t, okta.Authority, "alice@okta", newKey)
	waitFor(t, waitAgreed, "a credential by okta's new root allowed at all three", verifyAll(fresh.Raw, authority.ReasonOK))
	waitFor(t, waitAgreed, "a credential by okta's retired root denied key-rotated", verifyAll(credential(t, okta.Authority, "alice@okta", okta.Root).Raw, authority.ReasonKeyRotated))
}

// TestValidateEvidence: the evidence topic's validator verifies both halves
// before anything is relayed.
func TestValidateEvidence(t *testing.T) {
	n, h := startSingle(t, "okta")
	ctx := context.Background()
	r1 := nextRule(t, h, n, h.Authority, "db://*")
	waitFor(t, waitAgreed, "seq 1 agreed", agreedAt(r1.ID, n))
	a, b := forkAt(t, h, 1, h.Authority, h.Authority)
	stranger := newOutsider(t, "stranger")
	forged := mustSign(t, a.Decl, stranger.root)
	o1, o2 := rule(t, stranger.id(), 1, stranger.id(), stranger.id(), "x://*", stranger.root), rule(t, stranger.id(), 1, stranger.id(), stranger.id(), "y://*", stranger.root)
	tests := []struct {
		name string
		msg  []byte
		want gossip.Verdict
	}{
		{name: "a fork of an agreed position", msg: EncodeEvidence(r1.Raw, a.Raw), want: gossip.Accept},
		{name: "two forks of an agreed position", msg: EncodeEvidence(a.Raw, b.Raw), want: gossip.Accept},
		{name: "the same declaration twice", msg: EncodeEvidence(r1.Raw, r1.Raw), want: gossip.Reject},
		{name: "one half forged", msg: EncodeEvidence(r1.Raw, forged.Raw), want: gossip.Reject},
		{name: "not CBOR", msg: []byte("evidence"), want: gossip.Reject},
		{name: "three envelopes", msg: mustCBOR(t, [][]byte{r1.Raw, a.Raw, b.Raw}), want: gossip.Reject},
		{name: "an authority unknown here", msg: EncodeEvidence(o1.Raw, o2.Raw), want: gossip.Ignore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := n.validateEvidence(ctx, "peer", tt.msg); got != tt.want {
				t.Fatalf("verdict %v, want %v", got, tt.want)
			}
		})
	}
	if len(n.Equivocations()) != 0 {
		t.Fatal("validation recorded evidence")
	}
	// Delivered, a pair is ordered by the (single) leader and agreed.
	n.deliverEvidence("peer", EncodeEvidence(a.Raw, r1.Raw))
	waitFor(t, waitAgreed, "the delivered pair agreed", agreedEvidenceAt(h.Authority, 1, n))
	if got := n.validateEvidence(ctx, "peer", EncodeEvidence(r1.Raw, b.Raw)); got != gossip.Ignore {
		t.Fatalf("a pair at a position with agreed evidence: %v, want ignore", got)
	}
	if d := n.Verify(credential(t, h.Authority, "alice", h.Root).Raw, "okta", "db://x", "read", tJudge); d.Reason != authority.ReasonEquivocation {
		t.Fatalf("after the evidence: %s %s, want equivocation", d.Outcome, d.Reason)
	}
}

func mustCBOR(t *testing.T, v [][]byte) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeEvidence(t *testing.T) {
	a, b := []byte{1, 2, 3}, []byte{4, 5}
	good := EncodeEvidence(a, b)
	tests := []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{name: "good", msg: good, ok: true},
		{name: "empty", msg: nil},
		{name: "one envelope", msg: []byte{0x81, 0x43, 1, 2, 3}},
		{name: "empty envelope", msg: EncodeEvidence(a, nil)},
		{name: "trailing byte", msg: append(bytes.Clone(good), 0)},
		{name: "indefinite array", msg: append(append([]byte{0x9f}, good[1:]...), 0xff)},
		{name: "non-canonical length", msg: []byte{0x82, 0x58, 3, 1, 2, 3, 0x42, 4, 5}},
		{name: "over the limit", msg: make([]byte, MaxEvidenceMessage+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ga, gb, err := DecodeEvidence(tt.msg)
			if (err == nil) != tt.ok {
				t.Fatalf("DecodeEvidence = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadEvidence) {
				t.Fatalf("%v is not ErrBadEvidence", err)
			}
			if tt.ok && (!bytes.Equal(ga, a) || !bytes.Equal(gb, b)) {
				t.Fatal("decoded other bytes")
			}
		})
	}
}

// FuzzDecodeEvidence: evidence messages come from any peer. The decoder
// never panics and accepts only EncodeEvidence's output.
func FuzzDecodeEvidence(f *testing.F) {
	f.Add(EncodeEvidence([]byte{1}, []byte{2}))
	f.Add([]byte{0x82, 0x41, 1, 0x41})
	f.Add([]byte{0x9f, 0xff})
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, b, err := DecodeEvidence(msg)
		if err == nil && !bytes.Equal(EncodeEvidence(a, b), msg) {
			t.Fatalf("accepted %x, which is not the encoding of what it returned", msg)
		}
	})
}

// TestProvisionalEquivocation: a verified proof seen here denies at once,
// before Raft orders it, and a later rotation clears it as it clears an
// agreed mark.
func TestProvisionalEquivocation(t *testing.T) {
	aws, okta := newOutsider(t, "aws-prod"), newOutsider(t, "okta")
	g := authority.NewGraph()
	s1 := rule(t, okta.id(), 1, okta.id(), okta.id(), "x://*", okta.root)
	fork := rule(t, okta.id(), 1, okta.id(), okta.id(), "y://*", okta.root)
	for _, sd := range []*authority.Signed{aws.gen, okta.gen, rule(t, aws.id(), 1, aws.id(), okta.id(), "db://*", aws.root), s1} {
		if err := g.Apply(sd); err != nil {
			t.Fatal(err)
		}
	}
	eq := &equivocations{pending: map[posKey]*pendingEvidence{}}
	verify := func(cred *authority.Signed) authority.Decision {
		return authority.VerifyNamed(overlay{View: g, prov: newProvisional(), eq: eq},
			authority.Request{Credential: cred.Raw, Resource: "db://orders", Action: "read"}, "aws-prod", authority.WithTime(tJudge))
	}
	cred := credential(t, okta.id(), "alice@okta", okta.root)
	if d := verify(cred); !d.Allow {
		t.Fatalf("before any evidence: %s %s", d.Reason, d.Message)
	}
	eq.pending[posKey{okta.id(), 1}] = &pendingEvidence{a: s1.Raw, b: fork.Raw}
	eq.npending.Store(1)
	if d := verify(cred); d.Reason != authority.ReasonEquivocation {
		t.Fatalf("with pending evidence: %s %s, want equivocation", d.Reason, d.Message)
	}
	if a, _ := g.Authority(okta.id()); a.EquivocatedAt != 0 {
		t.Fatal("the overlay marked the graph itself")
	}
	newKey, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rot := mustSign(t, authority.Declaration{Kind: authority.KindRotation, Authority: okta.id(), Seq: 2, Prev: s1.ID, IssuedAt: t0.Unix(),
		Rotation: &authority.Rotation{RootKeys: []authority.PublicKey{newKey.Public()}, Threshold: 1}}, okta.root)
	if err := g.Apply(rot); err != nil {
		t.Fatal(err)
	}
	if d := verify(credential(t, okta.id(), "alice@okta", newKey)); !d.Allow {
		t.Fatalf("after a rotation past the pending proof: %s %s", d.Reason, d.Message)
	}
}
