package authority_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fednode/fednode/authority"
)

// TestPathSearchBounded: graphs built to explode (every rule matches and
// passes on every hop, no path reaches the home) are denied with
// hops-exceeded after a bounded search, never a hang, and the work done,
// measured from outside through the View, is bounded too.
func TestPathSearchBounded(t *testing.T) {
	tests := []struct {
		name          string
		width, layers int
		wantExhausted bool
		wantReason    authority.Reason
	}{
		{name: "8 wide, 3 deep", width: 8, layers: 3, wantExhausted: true, wantReason: authority.ReasonHopsExceeded},
		{name: "16 wide, 2 deep", width: 16, layers: 2, wantExhausted: true, wantReason: authority.ReasonHopsExceeded},
		{name: "30 wide, 1 deep", width: 30, layers: 1, wantReason: authority.ReasonNoRule},
		// The allow pass finds nothing in 190 rules; the diagnosis
		// pass spends the rest of the budget.
		{name: "5 wide, 3 deep", width: 5, layers: 3, wantExhausted: true, wantReason: authority.ReasonNoRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSB(t)
			s.explode(tt.width, tt.layers)
			c := issue(t, s.aws, etlCred())
			cv := &countingView{View: s.g}
			d, n := authority.VerifyCounting(cv, s.request(c), authority.WithTime(now))
			direct, examined := n.Direct, n.Examined
			t.Logf("%s: %s (examined %d, RulesFor %d calls, %d rules)", d.Reason, d.Message, examined, cv.calls, cv.rules)
			if d.Allow || d.Reason != tt.wantReason {
				t.Fatalf("reason %q, want %q", d.Reason, tt.wantReason)
			}
			if direct != 0 {
				t.Errorf("judged %d direct rules, want 0", direct)
			}
			if examined > authority.MaxRulesExamined {
				t.Fatalf("examined %d rules, over MaxRulesExamined %d", examined, authority.MaxRulesExamined)
			}
			if tt.wantExhausted != (examined == authority.MaxRulesExamined) || tt.wantExhausted != strings.Contains(d.Message, "MaxRulesExamined") {
				t.Errorf("examined %d, message %q: want exhausted = %v", examined, d.Message, tt.wantExhausted)
			}
			// RulesFor is called for the target once per round of each
			// pass (plus the direct scan), and otherwise only after a rule
			// was examined and followed.
			if maxCalls := 1 + 2*(authority.MaxPathLength+1) + examined; cv.calls > maxCalls {
				t.Errorf("RulesFor called %d times, over %d", cv.calls, maxCalls)
			}
		})
	}
}

// TestPathSearchHub: a hub target with many direct rules for other sources,
// none passing on hops (every graph before Hops existed), decides as the
// single-hop verifier did: the direct rules are judged in full, whatever
// their number, and the path search adds no new reason.
func TestPathSearchHub(t *testing.T) {
	const partners = 2 * authority.MaxRulesExamined
	tests := []struct {
		name string
		// last is the hub's last rule, accepting aws-prod (nil: none).
		last         func(s *sb) *authority.Rule
		partnersHome bool // the partners accept aws-prod themselves
		want         authority.Reason
	}{
		{name: "allow by the last direct rule", want: authority.ReasonOK,
			last: func(s *sb) *authority.Rule { r := etlRule(s.aws.id(), 0); return &r }},
		{name: "direct rule refuses the subject", want: authority.ReasonSubjectNotAllowed,
			last: func(s *sb) *authority.Rule { r := etlRule(s.aws.id(), 0); r.Subjects = adminSubject; return &r }},
		{name: "no rule for the source", want: authority.ReasonNoRule},
		{name: "partners accept the source, the hub passes on no hops", partnersHome: true, want: authority.ReasonHopsExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSB(t)
			for i := range partners {
				p := newChain(t, fmt.Sprintf("partner-%d", i), 0) // geneses only matter by ID
				p.genesis = mustSign(t, authority.Declaration{Kind: authority.KindGenesis, IssuedAt: int64(i + 1), Genesis: p.genesis.Decl.Genesis}, p.key)
				p.headID = p.genesis.ID
				if tt.partnersHome && i < 2 {
					s.add(p.genesis)
					s.rule(p, etlRule(s.aws.id(), 0))
				}
				s.rule(s.azure, etlRule(p.id(), 0))
			}
			if tt.last != nil {
				s.rule(s.azure, *tt.last(s))
			}
			c := issue(t, s.aws, etlCred())
			d, n := authority.VerifyCounting(s.g, s.request(c), authority.WithTime(now))
			direct, examined := n.Direct, n.Examined
			t.Logf("%s: %s (direct %d, examined %d)", d.Reason, d.Message, direct, examined)
			if d.Reason != tt.want {
				t.Fatalf("reason %q, want %q", d.Reason, tt.want)
			}
			if examined > authority.MaxRulesExamined {
				t.Fatalf("examined %d rules", examined)
			}
			if tt.want == authority.ReasonOK && examined != 0 {
				t.Errorf("a direct allow examined %d rules of the path search", examined)
			}
		})
	}
}

// TestPathSearchCycles: rules that accept each other in a circle never make
// the search loop, and a path never passes an authority twice.
func TestPathSearchCycles(t *testing.T) {
	tests := []struct {
		name  string
		build func(s *sb) []*authority.Signed // returns the expected path, home end first
		want  authority.Reason
	}{
		{name: "a circle that never reaches the home", want: authority.ReasonNoRule,
			build: func(s *sb) []*authority.Signed {
				s.rule(s.gcp, etlRule(s.okta.id(), 3))
				s.rule(s.okta, etlRule(s.gcp.id(), 3))
				s.rule(s.azure, etlRule(s.gcp.id(), 3))
				return nil
			}},
		{name: "a circle through the target", want: authority.ReasonNoRule,
			build: func(s *sb) []*authority.Signed {
				s.rule(s.gcp, etlRule(s.azure.id(), 3))
				s.rule(s.azure, etlRule(s.gcp.id(), 3))
				return nil
			}},
		{name: "a circle beside the way home", want: authority.ReasonOK,
			build: func(s *sb) []*authority.Signed {
				rgo := s.rule(s.gcp, etlRule(s.okta.id(), 3))
				s.rule(s.okta, etlRule(s.gcp.id(), 3))
				ro := s.rule(s.okta, etlRule(s.aws.id(), 0))
				ra := s.rule(s.azure, etlRule(s.gcp.id(), 3))
				return []*authority.Signed{ro, rgo, ra}
			}},
		{name: "the home in the middle is never passed through", want: authority.ReasonHopsExceeded,
			build: func(s *sb) []*authority.Signed {
				// aws-prod → gcp-data → aws-prod → azure-corp would use
				// azure-corp's rule for aws-prod, which passes on nothing;
				// the search must not go round through the home.
				s.rule(s.gcp, etlRule(s.aws.id(), 0))
				s.rule(s.aws, etlRule(s.gcp.id(), 1))
				rd := etlRule(s.aws.id(), 0)
				rd.Actions = []string{"list"}
				s.rule(s.azure, rd)
				s.rule(s.azure, etlRule(s.gcp.id(), 0))
				return nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSB(t)
			want := tt.build(s)
			c := issue(t, s.aws, etlCred())
			d := authority.Verify(s.g, s.request(c), authority.WithTime(now))
			t.Logf("%s: %s", d.Reason, d.Message)
			if d.Reason != tt.want {
				t.Fatalf("reason %q, want %q", d.Reason, tt.want)
			}
			// The declarers on the path and the home are all distinct.
			seen := map[authority.ID]bool{d.Chain[0]: true}
			for i := len(d.Chain) - 2*len(d.Path); i < len(d.Chain); i += 2 {
				if seen[d.Chain[i]] {
					t.Fatalf("chain %s passes authority %s twice", fmtIDs(d.Chain), d.Chain[i].Short())
				}
				seen[d.Chain[i]] = true
			}
			if want != nil {
				var wantIDs []authority.ID
				for _, r := range want {
					wantIDs = append(wantIDs, r.ID)
				}
				if fmtIDs(d.Path) != fmtIDs(wantIDs) {
					t.Errorf("path %s, want %s", fmtIDs(d.Path), fmtIDs(wantIDs))
				}
			}
		})
	}
}

// bigView is a View over a few real authorities whose rules are made up
// without signatures (Verify trusts the view): for sizes no test would sign.
type bigView struct {
	authority.View
	rules map[authority.ID][]*authority.RuleInfo
}

func (b *bigView) RulesFor(target authority.ID) []*authority.RuleInfo {
	if rs, ok := b.rules[target]; ok {
		return rs
	}
	return b.View.RulesFor(target)
}

// TestPathSearchScanBound: an intermediate with very many rules, the one
// that leads home last, is searched up to MaxRulesScanned entries: within
// the bound the path is found, beyond it the deny is hops-exceeded naming
// the bound. (The target's own rules are not counted: they are gone over
// once per round, like the direct rules.)
func TestPathSearchScanBound(t *testing.T) {
	tests := []struct {
		name  string
		rules int // gcp-data's rules before the one accepting aws-prod
		allow bool
	}{
		{name: "under the bound", rules: authority.MaxRulesScanned / 4, allow: true},
		{name: "over the bound", rules: authority.MaxRulesScanned + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSB(t)
			bv := &bigView{View: s.g, rules: map[authority.ID][]*authority.RuleInfo{}}
			// azure-corp accepts gcp-data, passing on 3 hops; gcp-data
			// accepts many authorities that lead nowhere (Hops 0), then
			// aws-prod.
			ra := authority.RuleInfo{ID: authority.ID{0xa1}, Target: s.azure.id(), Seq: 1, Rule: etlRule(s.gcp.id(), 3)}
			bv.rules[s.azure.id()] = []*authority.RuleInfo{&ra}
			var gs []*authority.RuleInfo
			for i := range tt.rules {
				src := authority.ID{0xbb, byte(i >> 16), byte(i >> 8), byte(i)}
				gs = append(gs, &authority.RuleInfo{ID: authority.ID{0xb2, byte(i >> 16), byte(i >> 8), byte(i)}, Target: s.gcp.id(), Seq: uint64(i + 1), Rule: etlRule(src, 0)})
			}
			rg := authority.RuleInfo{ID: authority.ID{0xb1}, Target: s.gcp.id(), Seq: uint64(tt.rules + 1), Rule: etlRule(s.aws.id(), 0)}
			bv.rules[s.gcp.id()] = append(gs, &rg)
			c := issue(t, s.aws, etlCred())
			d, n := authority.VerifyCounting(bv, s.request(c), authority.WithTime(now))
			t.Logf("%s: %s (%+v)", d.Reason, d.Message, n)
			if n.Scanned > authority.MaxRulesScanned || n.Examined > authority.MaxRulesExamined {
				t.Fatalf("counts %+v over the bounds", n)
			}
			if tt.allow {
				if !d.Allow || len(d.Path) != 2 || d.Path[0] != rg.ID {
					t.Fatalf("%s: %s, path %s", d.Reason, d.Message, fmtIDs(d.Path))
				}
				return
			}
			if n.Scanned != authority.MaxRulesScanned || d.Reason != authority.ReasonHopsExceeded || !strings.Contains(d.Message, "MaxRulesScanned") {
				t.Fatalf("reason %q (%s), scanned %d: want hops-exceeded at the bound", d.Reason, d.Message, n.Scanned)
			}
		})
	}
}
