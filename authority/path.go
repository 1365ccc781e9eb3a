package authority

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Transitive federation: paths of rules.
//
// A path from a principal's home authority H to the target T is a sequence of
// rules r1, ..., rn where r1 is declared by some A1 and accepts Source H, r2
// is declared by A2 and accepts Source A1, ..., and rn is declared by T and
// accepts Source A(n-1). The authorities H, A1, ..., A(n-1), T are distinct
// (a path that came back to an authority has a shorter one inside it that
// allows whatever it allows). n == 1 is the direct federation of a single
// rule, and the only case where T may be H: an authority admits its own
// principals to its own resources by a rule of its own, never over others.
//
// Hops. Rule ri has i-1 rules beneath it: between the principal's home and
// its own Source. It may be used only if ri.Hops >= i-1. So Hops 0 (the
// default) accepts only principals whose home is the rule's Source, and a
// rule with Hops h accepts principals that reached its Source over at most h
// further rules. This is x509's pathLenConstraint and OpenID Federation's
// max_path_length (the number of intermediates allowed between the entity
// setting the constraint and the subject), read from the declaring
// authority's side: it bounds what the declarer trusts its Source to pass
// on. Every rule on a path enforces its own bound, so the longest path a
// graph allows through a rule is the minimum over the rules above it.
//
// Scope only narrows along a path: the subject travels unchanged, so every
// rule must match the principal's subject; every rule must match the
// requested resource (the target's) and list the action; every rule's window
// must contain the judgement time; every rule's Require must hold of the
// presented credential; no rule may be revoked by its declarer, and no
// declarer may have revoked itself.
//
// Choice. The path used is the shortest that allows; among equally short
// ones, the first in this order: compare the rules from the target's end,
// each by its position in its declarer's chain (the order of View.RulesFor).
// Once the later rules are equal, the rules being compared have the same
// declarer, so the order is total. For n == 1 this is the verifier's
// long-standing "first rule in chain order that allows". (Chain order
// rather than ID order: both are deterministic functions of the agreed
// graph, and chain order is the one the declarer chose and a person can see.)
//
// Bounds. Paths of more than MaxPathLength rules are not considered, and
// the search for paths of two rules or more examines at most
// MaxRulesExamined rules (a rule is examined when it is judged against the
// request) and looks at most at MaxRulesScanned entries of View.RulesFor
// of authorities other than the target (most are passed over by a field
// comparison: their Source, their Hops); the target's own rules it goes
// over at most once per round, like the direct rules.
// That is crypto/x509's maxChainSignatureChecks for a graph: a thousand
// parallel rules cost a bounded search, not an exponential one. The direct
// rules of the target (n == 1) are always judged in full, as a single-hop
// verifier must; they count against neither bound.
const (
	// MaxPathLength is the most rules a path may have.
	MaxPathLength = 4
	// MaxRulesExamined bounds the rules examined (judged against the
	// request) by the search for paths of two rules or more, across all
	// its passes.
	MaxRulesExamined = 256
	// MaxRulesScanned bounds the rule entries that search looks at, for
	// authorities with very many rules.
	MaxRulesScanned = 1 << 16
)

// stage orders the checks of a rule by how specific to the request they are,
// so that the closest rule (or path) to allowing is the one that passed the
// most. The numbers are internal; only their order matters.
type stage int

const (
	stageNone      stage = iota // no rule or path at all: no-rule
	stageSubject                // subject-not-allowed
	stageResource               // resource-not-allowed, or scope-widening beneath the target
	stageAction                 // action-not-allowed, or scope-widening beneath the target
	stageCondition              // condition-failed
	stageWindow                 // expired, not-yet-valid
	stageRevoked                // revoked, equivocation
	stageHops                   // hops-exceeded
	stageOK
)

// request is what every rule of a decision is judged against: the
// principal (from the verified credential chain) and the request.
type request struct {
	v       View
	home    ID
	target  ID
	subject string
	attrs   []Attr // the presented credential's attributes
	res     string
	action  string
	at      time.Time
}

// judgeRule checks one rule against the request, all but its Hops (which
// depend on where the rule sits on a path). It builds no message: most rules
// are not the one a decision names (see ruleMessage).
func judgeRule(q *request, ri *RuleInfo) (stage, Reason) {
	r := &ri.Rule
	// A rule beneath the target that does not cover the target's resource
	// or action would widen what it granted: the path cannot pass on more.
	beneath := ri.Target != q.target
	switch {
	case !Match(r.Subjects, q.subject):
		return stageSubject, ReasonSubjectNotAllowed
	case !Match(r.Resources, q.res):
		if beneath {
			return stageResource, ReasonScopeWidening
		}
		return stageResource, ReasonResourceNotAllowed
	case !slices.Contains(r.Actions, q.action):
		if beneath {
			return stageAction, ReasonScopeWidening
		}
		return stageAction, ReasonActionNotAllowed
	}
	if _, _, _, ok := attrsHold(r.Require, q.attrs); !ok {
		return stageCondition, ReasonConditionFailed
	}
	if reason, _ := window(r.NotBefore, r.NotAfter, q.at); reason != "" {
		return stageWindow, reason
	}
	if _, ok := q.v.RevokedBy(ri.ID, ri.Target); ok {
		return stageRevoked, ReasonRevoked
	}
	if beneath && !q.v.IsMember(ri.Target) {
		// A removed member's rules no longer carry anyone (the target's
		// own membership was checked before any rule).
		return stageRevoked, ReasonNotMember
	}
	if ruleEquivocated(q.v, ri) {
		// Trust withdrawn, as by a revocation (judge.go).
		return stageRevoked, ReasonEquivocation
	}
	if beneath {
		// The target's own self-revocation was checked before any rule.
		if _, ok := q.v.RevokedBy(ri.Target, ri.Target); ok {
			return stageRevoked, ReasonRevoked
		}
	}
	return stageOK, ReasonOK
}

// ruleMessage says why rule ri failed with reason, beneath rules beneath it.
func ruleMessage(q *request, ri *RuleInfo, reason Reason, beneath int) string {
	r := &ri.Rule
	switch reason {
	case ReasonSubjectNotAllowed:
		return fmt.Sprintf("accepts subjects %q, not %q", r.Subjects, q.subject)
	case ReasonResourceNotAllowed:
		return fmt.Sprintf("covers resources %q, not %q", r.Resources, q.res)
	case ReasonActionNotAllowed:
		return fmt.Sprintf("allows actions %v, not %q", r.Actions, q.action)
	case ReasonScopeWidening:
		if !Match(r.Resources, q.res) {
			return fmt.Sprintf("covers resources %q, not %q: a path can only narrow what each of its rules grants", r.Resources, q.res)
		}
		return fmt.Sprintf("allows actions %v, not %q: a path can only narrow what each of its rules grants", r.Actions, q.action)
	case ReasonConditionFailed:
		w, got, present, _ := attrsHold(r.Require, q.attrs)
		if !present {
			return fmt.Sprintf("requires attribute %s, which the credential does not carry", w)
		}
		return fmt.Sprintf("requires attribute %s, but the credential says %s=%s", w, w.Key, got)
	case ReasonRevoked:
		if rid, ok := q.v.RevokedBy(ri.ID, ri.Target); ok {
			return fmt.Sprintf("was revoked (revocation %s)", rid.Short())
		}
		rid, _ := q.v.RevokedBy(ri.Target, ri.Target)
		return fmt.Sprintf("belongs to an authority that revoked itself (revocation %s)", rid.Short())
	case ReasonEquivocation:
		return equivocationMessage(q.v, ri)
	case ReasonNotMember:
		return fmt.Sprintf("was declared by %s, which is no longer a member of the consortium", authorityName(q.v, ri.Target))
	case ReasonHopsExceeded:
		return fmt.Sprintf("passes on %d further hops (Hops), but the path has %d more rules between its source and the principal's home", r.Hops, beneath)
	}
	_, msg := window(r.NotBefore, r.NotAfter, q.at)
	return msg
}

// pathResult is a path the search settled on, allowing or the closest
// failure.
type pathResult struct {
	stage  stage
	reason Reason
	// rules is the path from the target's end: rules[0] is the target's.
	rules []*RuleInfo
	// failed is the index in rules of the rule the reason is about.
	failed int
	// note, when set, replaces the rule's message (bounds).
	note string
}

// searcher searches paths of two rules or more from the target down to the
// home authority, depth first in chain order with iterative deepening, so
// that the first path found at the smallest length is the chosen one.
//
// Two passes share the budget. The allow pass follows only rules that pass
// every check, Hops included, so it is not starved by the second. The
// diagnosis pass runs only on a deny and finds the closest failure, by
// branch and bound against the best failure known: paths whose every rule
// passes its checks but some rule's Hops (hops-exceeded), and paths within
// every Hops whose weakest rule is closer than the best so far. A path that
// breaks a Hops limit and also fails another check is not a path at all and
// is never reported.
type searcher struct {
	q         *request
	examined  int
	scanned   int
	exhausted bool
	stop      bool
	length    int // the path length of this round
	reached   int // the deepest a rule was followed in this round
	stack     []*RuleInfo
	found     *pathResult // allow pass: an allowing or a cut-off path
	best      pathResult  // diagnosis pass: the closest failure
}

func (s *searcher) onPath(a ID) bool {
	if a == s.q.target {
		return true
	}
	for _, ri := range s.stack {
		if ri.Rule.Source == a {
			return true
		}
	}
	return false
}

// scan counts one rule entry looked at; false when the budget is spent.
func (s *searcher) scan() bool {
	if s.scanned >= MaxRulesScanned {
		s.exhausted, s.stop = true, true
		return false
	}
	s.scanned++
	return true
}

// examine counts one rule examined; false when the budget is spent.
func (s *searcher) examine() bool {
	if s.examined >= MaxRulesExamined {
		s.exhausted, s.stop = true, true
		return false
	}
	s.examined++
	return true
}

// allowPass looks for the first allowing path of 2..MaxPathLength rules.
// In the last round it also notes a cut-off path: MaxPathLength rules from
// the target, every one passing every check and leaving room for one hop
// more, whose last rule accepts not the home but another authority. If no
// path allows, the deny is then hops-exceeded: the path would need more
// rules than the search may compose.
func (s *searcher) allowPass() {
	for s.length = 2; s.length <= MaxPathLength && !s.stop; s.length++ {
		s.reached = 0
		s.allowVisit(s.q.target, 1, true)
		if s.reached < s.length-1 {
			// No prefix of length-1 rules survived; a longer round
			// needs one, under stricter Hops: nothing more to find.
			break
		}
	}
}

// allowVisit extends the stack at depth with rules that pass everything.
// slack says whether every rule on the stack would also allow one hop more.
func (s *searcher) allowVisit(x ID, depth int, slack bool) {
	for _, ri := range s.q.v.RulesFor(x) {
		if s.stop || (depth > 1 && !s.scan()) {
			return
		}
		src := ri.Rule.Source
		last := depth == s.length
		beneath := s.length - depth
		cutoff := false
		switch {
		case last && src == s.q.home:
		case last:
			// Worth a look only as the first cut-off path of the last round.
			if s.length < MaxPathLength || s.found != nil || !slack || ri.Rule.Hops < 1 || s.onPath(src) {
				continue
			}
			cutoff = true
		case src == s.q.home || s.onPath(src):
			continue
		}
		if int(ri.Rule.Hops) < beneath {
			continue // a field comparison: not examined
		}
		if !s.examine() {
			return
		}
		if st, _ := judgeRule(s.q, ri); st != stageOK {
			continue
		}
		s.stack = append(s.stack, ri)
		switch {
		case cutoff:
			s.found = &pathResult{stage: stageHops, reason: ReasonHopsExceeded, rules: slices.Clone(s.stack), failed: len(s.stack) - 1,
				note: fmt.Sprintf("accepts %s, not the principal's home %s: the path would need more than %d rules (MaxPathLength)", s.name(src), s.name(s.q.home), MaxPathLength)}
		case last:
			s.found = &pathResult{stage: stageOK, reason: ReasonOK, rules: slices.Clone(s.stack)}
			s.stop = true
		default:
			s.reached = max(s.reached, depth)
			s.allowVisit(src, depth+1, slack && int(ri.Rule.Hops) > beneath)
		}
		s.stack = s.stack[:len(s.stack)-1]
	}
}

// diagnosePass improves s.best, the closest failure known (its stage may be
// stageNone), with paths of 2..MaxPathLength rules, within the budget left.
func (s *searcher) diagnosePass() {
	s.stop = false
	for s.length = 2; s.length <= MaxPathLength && !s.stop && s.best.stage < stageHops; s.length++ {
		s.reached = 0
		s.diagnoseVisit(s.q.target, 1, stageOK, ReasonOK, 0, false)
		if s.reached < s.length-1 {
			break
		}
	}
}

// diagnoseVisit extends the stack at depth; low, lowReason and lowAt are
// the weakest rule on the stack so far (the first from the target's end
// among equals), hv whether some rule on it breaks its Hops.
func (s *searcher) diagnoseVisit(x ID, depth int, low stage, lowReason Reason, lowAt int, hv bool) {
	for _, ri := range s.q.v.RulesFor(x) {
		if s.stop || (depth > 1 && !s.scan()) {
			return
		}
		src := ri.Rule.Source
		last := depth == s.length
		if last {
			if src != s.q.home {
				continue
			}
		} else if src == s.q.home || s.onPath(src) {
			continue
		}
		if !s.examine() {
			return
		}
		st, reason := judgeRule(s.q, ri)
		hops := int(ri.Rule.Hops) >= s.length-depth
		if st == stageOK && !hops {
			st, reason = stageHops, ReasonHopsExceeded
		}
		l, lr, la, h := low, lowReason, lowAt, hv || !hops
		if st < l {
			l, lr, la = st, reason, depth-1
		}
		if (h && l < stageHops) || l <= s.best.stage {
			continue
		}
		s.stack = append(s.stack, ri)
		if last {
			s.best = pathResult{stage: l, reason: lr, rules: slices.Clone(s.stack), failed: la}
			if l == stageOK {
				s.stop = true // cannot happen after a complete allow pass
			}
		} else {
			s.reached = max(s.reached, depth)
			s.diagnoseVisit(src, depth+1, l, lr, la, h)
		}
		s.stack = s.stack[:len(s.stack)-1]
	}
}

func (s *searcher) name(a ID) string { return authorityName(s.q.v, a) }

func authorityName(v View, a ID) string {
	if info, ok := v.Authority(a); ok {
		return info.Name
	}
	return a.Short()
}

// describePath renders a path from the home end: "aws-prod → b → azure-corp".
func describePath(v View, rules []*RuleInfo) string {
	var b strings.Builder
	for i := len(rules) - 1; i >= 0; i-- {
		if i == len(rules)-1 {
			b.WriteString(authorityName(v, rules[i].Rule.Source))
		}
		b.WriteString(" → ")
		b.WriteString(authorityName(v, rules[i].Target))
	}
	return b.String()
}
