package authority_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// Key-governance fixtures live in testdata/governance/, one envelope per
// file, named after the defect it holds; graph-*.cbor are applied in name
// order to make the graph the others are judged against (see the README
// there). Regenerate with
//
//	go test ./authority -run TestGovernanceFixtures -update
const govFixtureDir = "testdata/governance"

func makeGovFixtures(t fataler) []fixture {
	t.Helper()
	root := newGov(t, "gov-root", 2, []byte{seedR1, seedR2, seedR3}, seedR1, seedR2)
	target := newGov(t, "gov-target", 1, []byte{seedGovTarget}, seedGovTarget)
	rule := target.rule(t, root.id(), etlPattern, seedGovTarget)
	op1 := root.delegate(t, seedOp1, credKinds, dayAgo, weekAhead, seedR1, seedR2)
	op2 := root.delegate(t, seedOp2, ruleKinds, dayAgo, weekAhead, seedR1, seedR3)
	rot := root.rotate(t, 2, []byte{seedR3, seedR4, seedR5}, seedR1, seedR2)
	fork := newGov(t, "gov-fork", 1, []byte{seedGovFork}, seedGovFork)
	forkA := fork.rule(t, root.id(), "arn:aws:iam::111122223333:role/a-*", seedGovFork)
	fork.forkAt(1)
	forkB := fork.rule(t, root.id(), "arn:aws:iam::111122223333:role/b-*", seedGovFork)

	// Each defect is at gov-root's seq 4 unless it says otherwise; none is
	// applied.
	head := root.snapshot()
	try := func(f func() *authority.Signed) *authority.Signed {
		defer root.restore(head)
		return f()
	}
	tgt := target.id()
	threshold := try(func() *authority.Signed { return root.rule(t, tgt, "*", seedR3, seedR5) })
	opRule := try(func() *authority.Signed { return root.rule(t, tgt, "*", seedOp2) })
	kMinus1 := try(func() *authority.Signed { return root.rule(t, tgt, "*", seedR4) })
	rotatedOut := try(func() *authority.Signed { return root.rule(t, tgt, "*", seedR1, seedR2) })
	rollback := try(func() *authority.Signed { return root.rotate(t, 2, []byte{seedR1, seedR2, seedR3}, seedR1) })
	forkLow := try(func() *authority.Signed { root.forkAt(2); return root.rule(t, tgt, "*", seedR1) })
	algSub := algSubstituted(t, try(func() *authority.Signed { return root.rule(t, tgt, "*", seedR3, seedR4) }))
	dupPayload := declPayload(t, root.forked(t, 4, "*"))
	dup := multiEnvelope(t, dupPayload, nil, sigEntry{seed: seedR4}, sigEntry{seed: seedR4})
	opScope := try(func() *authority.Signed { return root.rule(t, tgt, "*", seedOp1) })
	opWindow := try(func() *authority.Signed {
		d := ruleDecl(tgt, "*")
		d.IssuedAt = unix(weekAhead.Add(time.Hour))
		return root.next(t, d, seedOp2)
	})

	hour := time.Hour
	cred := func(c *gov, signers ...byte) []byte {
		return c.credential(t, etlSubject, now.Add(-hour), now.Add(hour), signers...).Raw
	}
	return []fixture{
		{"graph-1-gov-root-genesis-2-of-3.cbor", root.genesis.Raw},
		{"graph-2-gov-target-genesis.cbor", target.genesis.Raw},
		{"graph-3-gov-target-rule-etl-read.cbor", rule.Raw},
		{"graph-4-gov-root-delegation-credentials.cbor", op1.Raw},
		{"graph-5-gov-root-delegation-rules-revocations.cbor", op2.Raw},
		{"graph-6-gov-root-rotation-to-r3-r4-r5.cbor", rot.Raw},
		{"graph-7-gov-fork-genesis.cbor", fork.genesis.Raw},
		{"graph-8-gov-fork-rule-a.cbor", forkA.Raw},
		{"threshold-rule.cbor", threshold.Raw},
		{"op-key-rule.cbor", opRule.Raw},
		{"k-minus-one-signatures.cbor", kMinus1.Raw},
		{"rotated-out-key.cbor", rotatedOut.Raw},
		{"rollback-rotation-by-one-old-key.cbor", rollback.Raw},
		{"fork-below-threshold-by-one-old-key.cbor", forkLow.Raw},
		{"duplicate-signature-cose-sign.cbor", dup},
		{"algorithm-substitution-cose-sign.cbor", algSub},
		{"op-key-out-of-scope.cbor", opScope.Raw},
		{"op-key-out-of-window.cbor", opWindow.Raw},
		{"equivocating-authority-rule-b.cbor", forkB.Raw},
		{"threshold-credential.cbor", cred(root, seedR3, seedR4)},
		{"k-minus-one-signatures-credential.cbor", cred(root, seedR5)},
		{"rotated-out-key-credential.cbor", cred(root, seedR1, seedR2)},
		{"op-key-credential.cbor", cred(root, seedOp1)},
		{"op-key-out-of-scope-credential.cbor", cred(root, seedOp2)},
		{"equivocating-authority-credential.cbor", cred(fork, seedGovFork)},
	}
}

func TestGovernanceFixtures(t *testing.T) {
	checkGolden(t, "TestGovernanceFixtures", govFixtureDir, makeGovFixtures)
}

// loadGovGraph applies testdata/governance/graph-*.cbor in name order.
func loadGovGraph(t fataler) *authority.Graph {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(govFixtureDir, "graph-*.cbor"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no governance graph fixtures: %v", err)
	}
	sort.Strings(paths)
	g := authority.NewGraph()
	for _, p := range paths {
		if err := g.Apply(mustParse(t, readFile(t, p))); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	return g
}

// govFixtureCases is what each non-graph governance fixture must get: an
// on-chain declaration a Check error (nil: accepted), a credential a reason
// from the signer judgement Verify makes, after applying the fixtures in
// after (whose Apply must fail with ErrEquivocation: they are evidence).
var govFixtureCases = []struct {
	name   string
	check  error
	reason authority.Reason
	after  []string
}{
	{name: "threshold-rule.cbor"},
	{name: "op-key-rule.cbor"},
	{name: "k-minus-one-signatures.cbor", check: authority.ErrThresholdNotMet},
	{name: "rotated-out-key.cbor", check: authority.ErrKeyRotated},
	{name: "rollback-rotation-by-one-old-key.cbor", check: authority.ErrKeyRotated},
	{name: "fork-below-threshold-by-one-old-key.cbor", check: authority.ErrThresholdNotMet},
	{name: "duplicate-signature-cose-sign.cbor", check: authority.ErrMalformed},
	{name: "algorithm-substitution-cose-sign.cbor", check: authority.ErrBadSignature},
	{name: "op-key-out-of-scope.cbor", check: authority.ErrKeyNotAuthorised},
	{name: "op-key-out-of-window.cbor", check: authority.ErrKeyNotAuthorised},
	{name: "equivocating-authority-rule-b.cbor", check: authority.ErrEquivocation},
	{name: "threshold-credential.cbor", reason: authority.ReasonOK},
	{name: "k-minus-one-signatures-credential.cbor", reason: authority.ReasonThresholdNotMet},
	{name: "rotated-out-key-credential.cbor", reason: authority.ReasonKeyRotated},
	{name: "op-key-credential.cbor", reason: authority.ReasonOK},
	{name: "op-key-out-of-scope-credential.cbor", reason: authority.ReasonBadSignature},
	{name: "equivocating-authority-credential.cbor", reason: authority.ReasonOK},
	{name: "equivocating-authority-credential.cbor", reason: authority.ReasonEquivocation, after: []string{"equivocating-authority-rule-b.cbor"}},
}

// applyEvidenceFixtures applies each fixture of names to g, each of which
// must be a fork (refused with ErrEquivocation, kept as evidence).
func applyEvidenceFixtures(t *testing.T, g *authority.Graph, names []string) {
	t.Helper()
	for _, a := range names {
		if err := g.Apply(mustParse(t, readFile(t, filepath.Join(govFixtureDir, a)))); !errors.Is(err, authority.ErrEquivocation) {
			t.Fatalf("apply %s = %v, want ErrEquivocation", a, err)
		}
	}
}

func TestGovernanceFixtureJudgements(t *testing.T) {
	covered := map[string]bool{}
	for _, tt := range govFixtureCases {
		covered[tt.name] = true
		t.Run(strings.Join(append([]string{tt.name}, tt.after...), "+"), func(t *testing.T) {
			g := loadGovGraph(t)
			applyEvidenceFixtures(t, g, tt.after)
			raw := readFile(t, filepath.Join(govFixtureDir, tt.name))
			if tt.reason != "" {
				r, msg := authority.JudgeCredentialSigners(g, raw, now)
				if r == "" {
					r = authority.ReasonOK
				}
				t.Logf("%s: %s", r, msg)
				if r != tt.reason {
					t.Fatalf("reason %q (%s), want %q", r, msg, tt.reason)
				}
				return
			}
			s, err := authority.Parse(raw)
			if err == nil {
				err = g.Check(s)
			}
			t.Logf("%v", err)
			if !errors.Is(err, tt.check) || (tt.check == nil) != (err == nil) {
				t.Fatalf("Parse+Check = %v, want %v", err, tt.check)
			}
		})
	}
	all, _ := filepath.Glob(filepath.Join(govFixtureDir, "*.cbor"))
	for _, p := range all {
		if name := filepath.Base(p); !strings.HasPrefix(name, "graph-") && !covered[name] {
			t.Errorf("fixture %s has no expected judgement in govFixtureCases", name)
		}
	}
}

// FuzzParseGovernance is FuzzParse seeded with the governance fixtures
// (COSE_Sign envelopes among them), with the COSE_Sign invariants.
func FuzzParseGovernance(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(govFixtureDir, "*.cbor"))
	if len(paths) == 0 {
		f.Fatal("no governance fixtures to seed with")
	}
	for _, p := range paths {
		f.Add(readFile(f, p))
	}
	g := loadGovGraph(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := authority.Parse(b)
		if err != nil {
			if s != nil || !errors.Is(err, authority.ErrMalformed) || !strings.HasPrefix(err.Error(), "authority: ") {
				t.Fatalf("Parse = %v, %v; want nil and a wrapped ErrMalformed", s, err)
			}
			return
		}
		if !bytes.Equal(s.Raw, b) || s.ID != authority.IDOf(s.Raw) {
			t.Fatal("Raw/ID do not describe the input")
		}
		again, err := authority.Parse(clone(s.Raw))
		if err != nil || again.ID != s.ID || !reflect.DeepEqual(again.Decl, s.Decl) || !reflect.DeepEqual(again.Signatures, s.Signatures) {
			t.Fatalf("Parse is not stable: %v", err)
		}
		if len(s.Signatures) == 0 || len(s.Signatures) > authority.MaxSignatures || s.Alg != s.Signatures[0].Alg || !bytes.Equal(s.KeyID, s.Signatures[0].KeyID) {
			t.Fatalf("signatures %+v", s.Signatures)
		}
		for i := 1; i < len(s.Signatures); i++ {
			if bytes.Compare(s.Signatures[i-1].KeyID, s.Signatures[i].KeyID) >= 0 {
				t.Fatal("accepted signatures out of kid order, or one key twice")
			}
		}
		if err := s.VerifyWith(nil); !errors.Is(err, authority.ErrBadSignature) {
			t.Fatalf("VerifyWith(nil) = %v", err)
		}
		// Judging never panics and always names a known reason.
		if s.Decl.Kind.OnChain() {
			_ = g.Check(s)
		} else if r, _ := authority.JudgeCredentialSigners(g, b, now); r != "" && !slices.Contains(authority.Reasons, r) {
			t.Fatalf("unknown reason %q", r)
		}
	})
}
