package authority

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reason is the stable code of a decision. Codes are a public interface: they
// appear in JSON, scenario files and operators' alerts. Add, never rename.
type Reason string

const (
	ReasonOK                 Reason = "ok"
	ReasonNoRule             Reason = "no-rule"
	ReasonSubjectNotAllowed  Reason = "subject-not-allowed"
	ReasonResourceNotAllowed Reason = "resource-not-allowed"
	ReasonActionNotAllowed   Reason = "action-not-allowed"
	ReasonExpired            Reason = "expired"
	ReasonNotYetValid        Reason = "not-yet-valid"
	ReasonRevoked            Reason = "revoked"
	ReasonBadSignature       Reason = "bad-signature"
	ReasonUnknownAuthority   Reason = "unknown-authority"
	ReasonMalformed          Reason = "malformed"
	// ReasonStaleBundle: an offline decision from a bundle past its
	// not-after deadline, not allowed by the operator (package bundle).
	ReasonStaleBundle Reason = "stale-bundle"
	// ReasonRollback: an offline decision from a bundle older than one this
	// site has already seen (package bundle).
	ReasonRollback Reason = "rollback"
	// ReasonScopeWidening: a link grants more than the one it depends on: a
	// delegated credential wider than its parent, or a rule of a path
	// beneath the target that does not cover what the request asks.
	ReasonScopeWidening Reason = "scope-widening"
	// ReasonHopsExceeded: the only paths to the target break a rule's Hops
	// limit, need more than MaxPathLength rules, or could not be searched
	// within MaxRulesExamined.
	ReasonHopsExceeded Reason = "hops-exceeded"
	// ReasonConditionFailed: a rule requires an attribute the credential
	// does not carry, or carries with another value.
	ReasonConditionFailed Reason = "condition-failed"
	// ReasonProofOfPossession: the credential is bound to a holder key and
	// the request does not prove possession of it (missing, wrong key,
	// wrong credential, audience or challenge).
	ReasonProofOfPossession Reason = "proof-of-possession"
	// ReasonThresholdNotMet: a credential signed by root keys directly has
	// fewer valid signatures by distinct keys of its issuer's root set than
	// the set's threshold.
	ReasonThresholdNotMet Reason = "threshold-not-met"
	// ReasonKeyRotated: a credential signed by root keys that a rotation
	// retired, whose window outlives that rotation (see Rotation).
	ReasonKeyRotated Reason = "key-rotated"
	// ReasonEquivocation: the credential's issuer, or the rule's declaring
	// authority at or before the rule's position, signed two different
	// declarations at one chain position, and has not rotated since.
	ReasonEquivocation Reason = "equivocation"
	// ReasonUntrustedExternal: an external credential (JWT, X.509 chain)
	// that no declared trust anchor vouches for: an unknown key ID, a chain
	// that does not reach a declared root, a CA certificate as the leaf.
	ReasonUntrustedExternal Reason = "untrusted-external"
	// ReasonAudienceMismatch: a JWT whose audience names neither the target
	// authority's name nor its ID.
	ReasonAudienceMismatch Reason = "audience-mismatch"
	// ReasonNotMember: the consortium's charter is active and the
	// credential's issuer, the target, or the declarer of every rule that
	// could have allowed is not a member (never admitted, removed, or left).
	ReasonNotMember Reason = "not-member"
)

// Reasons lists every reason code, for documentation and tests.
var Reasons = []Reason{
	ReasonOK, ReasonNoRule, ReasonSubjectNotAllowed, ReasonResourceNotAllowed,
	ReasonActionNotAllowed, ReasonExpired, ReasonNotYetValid, ReasonRevoked,
	ReasonBadSignature, ReasonUnknownAuthority, ReasonMalformed,
	ReasonStaleBundle, ReasonRollback,
	ReasonScopeWidening, ReasonHopsExceeded, ReasonConditionFailed, ReasonProofOfPossession,
	ReasonThresholdNotMet, ReasonKeyRotated, ReasonEquivocation,
	ReasonUntrustedExternal, ReasonAudienceMismatch, ReasonNotMember,
}

// Request is one authorization question: may the principal holding Credential
// perform Action on Resource, governed by the Target authority?
type Request struct {
	Credential []byte
	Target     ID
	Resource   string
	Action     string
	// Delegation is the chain of parents of a delegated Credential, each an
	// envelope, nearest parent first, ending with a root credential signed
	// by the authority. Empty for a root credential. At most
	// MaxDelegationDepth-1 links.
	Delegation [][]byte
	// PoP is the proof of possession of the Credential's HolderKey
	// (MakeProof), required when the Credential names one.
	PoP []byte
	// JWT and X509 are external credentials (external.go), presented
	// instead of Credential: a compact JWS, or a DER certificate chain,
	// leaf first. Exactly one of Credential, JWT and X509 is set.
	JWT  string
	X509 [][]byte
}

// Decision is the answer, always with its reasons. JSON field names are a
// public interface.
type Decision struct {
	Allow   bool   `json:"-"`
	Outcome string `json:"decision"` // "allow" or "deny"
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
	// Chain is the declarations the decision used, from the principal's root
	// to the rule: the home authority's genesis, the credentials of the
	// delegation chain from its root to the presented one, then for each
	// rule of the path from the home end the declaring authority's genesis
	// and the rule. For a deny, up to the link that failed (and the
	// revocation, if one did it); a deny about a path of several rules
	// shows the whole path, and Rule names the rule that failed.
	Chain        []ID   `json:"chain"`
	GraphVersion uint64 `json:"graph_version"`
	// GraphAgeMS is how old the graph was at decision time: how long since
	// the replica was last known to be current (or, offline, since the
	// bundle was exported).
	GraphAgeMS int64  `json:"graph_age_ms"`
	Subject    string `json:"subject,omitempty"`
	Issuer     ID     `json:"issuer,omitzero"`
	Target     ID     `json:"target,omitzero"`
	Resource   string `json:"resource"`
	Action     string `json:"action"`
	At         string `json:"at"` // RFC3339 time the decision was judged at
	// Rule is the rule that allowed (the target's rule of the path), or the
	// closest one that did not.
	Rule ID `json:"rule,omitzero"`
	// Path is the rules of the path the decision is about, from the
	// principal's home to the target; set whenever Rule is.
	Path []ID `json:"path,omitempty"`
}

// Option configures Verify.
type Option func(*verifyOptions)

type verifyOptions struct {
	cache     *Cache
	at        time.Time
	asOf      time.Time
	asOfS     bool
	challenge []byte
}

// WithTime sets the time the request is judged at. Verify has no clock:
// without WithTime it judges at the zero time (year 1), which fails every
// window that has a start, so callers always pass it.
func WithTime(t time.Time) Option { return func(o *verifyOptions) { o.at = t } }

// WithGraphAsOf states when the view was last known to be current; the
// decision reports the difference as its graph age.
func WithGraphAsOf(t time.Time) Option {
	return func(o *verifyOptions) { o.asOf, o.asOfS = t, true }
}

// WithChallenge gives the challenge (nonce) this verifier issued to the
// requester: a proof of possession must answer exactly it.
//
// WARNING: without WithChallenge a proof must carry an empty challenge, so
// one proof can be replayed to the same target for as long as its
// credential is valid. Issue a fresh challenge per request where replay
// matters.
func WithChallenge(b []byte) Option {
	return func(o *verifyOptions) { o.challenge = b }
}

// stats is what a decision cost, for tests of the bounds.
type stats struct {
	direct   int // direct rules of the target judged (not bounded)
	examined int // rules examined by the path search (<= MaxRulesExamined)
	scanned  int // rule entries it looked at (<= MaxRulesScanned)
}

// Verify decides req against the graph view. It is a pure function of its
// inputs: the request's bytes, the view and the options.
//
// Signatures. Verify checks only the signatures of what the request
// presents; the declarations of the view (geneses, rules, revocations,
// rotations, key delegations) were verified when they were accepted into it.
// It checks, in this order and stopping at the first failure:
//
//   - the root credential (the Credential itself, or the last link of
//     Delegation) against the keys of its authority in the view: root keys
//     up to their threshold, or one operational key (judge.go), so at most
//     MaxSignatures checks;
//   - each delegated credential, from the root down, against its parent's
//     HolderKey and nothing else (never the authority's keys): one check
//     each, as a second signature names a key that is not the holder's;
//   - the proof of possession, when the presented credential has a
//     HolderKey, against that key: one check.
//
// So a request costs at most MaxSignatures+MaxDelegationDepth signature
// checks, and the search for paths of rules (path.go) at most
// MaxRulesExamined rule judgements and MaxRulesScanned rule entries beyond
// the target's own rules, and no signature check at all.
//
// An external credential (Request.JWT or Request.X509, external.go) costs
// instead at most MaxAnchorCandidates JWS checks or X.509 chain
// verifications, one per authority declaring its issuer, then the same
// search for paths.
func Verify(v View, req Request, opts ...Option) Decision {
	d, _ := verify(v, req, opts...)
	return d
}

func verify(v View, req Request, opts ...Option) (Decision, stats) {
	var o verifyOptions
	for _, f := range opts {
		f(&o)
	}
	d := Decision{
		GraphVersion: v.Version(),
		Target:       req.Target,
		Resource:     req.Resource,
		Action:       req.Action,
		At:           formatAt(o.at),
	}
	if o.asOfS && o.at.After(o.asOf) {
		d.GraphAgeMS = o.at.Sub(o.asOf).Milliseconds()
	}
	var st stats
	decide(v, &req, &o, &d, &st)
	if d.Allow {
		d.Outcome = "allow"
	} else {
		d.Outcome = "deny"
	}
	if d.Chain == nil {
		d.Chain = []ID{}
	}
	if len(d.Path) == 0 {
		d.Path = nil // omitted from JSON, as before it was carved out of Chain's allocation
	}
	return d, st
}

func decide(v View, req *Request, o *verifyOptions, d *Decision, st *stats) {
	at := o.at
	deny := func(r Reason, format string, args ...any) {
		d.Reason, d.Message = r, fmt.Sprintf(format, args...)
	}
	if external(req) {
		decideExternal(v, req, o, d, st)
		return
	}
	var links []*Signed
	var memo *chainMemo
	var reason Reason
	var msg string
	var hash uint64
	cached := false
	if o.cache != nil {
		var e *cacheEntry
		if e, hash = o.cache.get(req); e != nil {
			links, memo, cached = e.links, e.memo, true
		}
	}
	if !cached {
		links, reason, msg = parseChain(req)
		if reason == "" && o.cache != nil {
			memo = newChainMemo(links)
		}
	}
	if len(links) > 0 {
		leaf := links[len(links)-1]
		d.Subject, d.Issuer = leaf.Decl.Credential.Subject, leaf.Decl.Authority
	}
	if reason != "" {
		deny(reason, "%s", msg)
		return
	}
	leaf := links[len(links)-1]
	c := leaf.Decl.Credential
	issuer, ok := v.Authority(leaf.Decl.Authority)
	if !ok {
		deny(ReasonUnknownAuthority, "the credential's issuer %s is not an authority in the graph at version %d", leaf.Decl.Authority.Short(), v.Version())
		return
	}
	// The chain's IDs, then a path's, and the path's rules: one
	// allocation for the longest. (Three-index slices: an append past
	// either capacity copies, never overwrites the other.)
	n := 1 + len(links) + 2*MaxPathLength + 1
	ids := make([]ID, n+MaxPathLength)
	d.Chain = append(ids[:0:n], issuer.ID)
	d.Path = ids[n:n:len(ids)]
	if reason, msg := checkChain(v, issuer, links, at, d, memo); reason != "" {
		deny(reason, "%s", msg)
		return
	}
	if !cached && memo != nil && memo.complete() {
		memo.record = false
		o.cache.put(hash, links, memo)
	}
	if c.HolderKey != nil {
		if err := checkProof(req.PoP, *c.HolderKey, leaf.ID, req.Target, o.challenge); err != nil {
			deny(ReasonProofOfPossession, "credential %s is bound to holder key %x: %v", leaf.ID.Short(), c.HolderKey.KeyID(), err)
			return
		}
	}
	if reason, msg := checkCredentialScope(links, req.Resource, req.Action); reason != "" {
		deny(reason, "%s", msg)
		return
	}
	judgePrincipal(v, req, o, d, st, issuer, c.Subject, c.Attributes)
}

// judgePrincipal decides the request of a principal whose credential has
// been verified: subject and attributes, stated by its home authority
// issuer. Native and external credentials (external.go) meet here.
func judgePrincipal(v View, req *Request, o *verifyOptions, d *Decision, st *stats, issuer *AuthorityInfo, subject string, attrs []Attr) {
	at := o.at
	deny := func(r Reason, format string, args ...any) {
		d.Reason, d.Message = r, fmt.Sprintf(format, args...)
	}
	target, ok := v.Authority(req.Target)
	if !ok {
		deny(ReasonUnknownAuthority, "the target authority %s is not in the graph at version %d", req.Target.Short(), v.Version())
		return
	}
	if rid, ok := v.RevokedBy(target.ID, target.ID); ok {
		d.Chain = append(d.Chain, target.ID, rid)
		deny(ReasonRevoked, "target authority %s has revoked itself (revocation %s)", target.Name, rid.Short())
		return
	}
	if !v.IsMember(issuer.ID) {
		deny(ReasonNotMember, "the credential's issuer %s is not a member of the consortium (removed, left, or never admitted)", issuer.Name)
		return
	}
	if !v.IsMember(target.ID) {
		d.Chain = append(d.Chain, target.ID)
		deny(ReasonNotMember, "the target authority %s is not a member of the consortium (removed, left, or never admitted)", target.Name)
		return
	}
	q := &request{v: v, home: issuer.ID, target: target.ID, subject: subject, attrs: attrs, res: req.Resource, action: req.Action, at: at}

	// Direct rules first: among the target's rules for this source, the
	// first (in chain order) that allows wins; otherwise remember the rule
	// that came closest, so the deny names the check a person would want
	// fixed.
	best := pathResult{stage: stageNone}
	for _, ri := range v.RulesFor(target.ID) {
		if ri.Rule.Source != issuer.ID {
			continue
		}
		st.direct++
		stage, reason := judgeRule(q, ri)
		if stage == stageOK {
			allowPath(q, d, []*RuleInfo{ri})
			return
		}
		if stage > best.stage {
			best = pathResult{stage: stage, reason: reason, rules: []*RuleInfo{ri}}
		}
	}

	if issuer.ID == target.ID {
		// No path of several rules leads from an authority to itself.
		if best.stage == stageNone {
			deny(ReasonNoRule, "%s has no federation rule accepting principals of %s", target.Name, issuer.Name)
			return
		}
		denyPath(q, d, &best, "")
		return
	}

	// Then paths of several rules (see path.go).
	s := &searcher{q: q}
	defer func() { st.examined, st.scanned = s.examined, s.scanned }()
	s.allowPass()
	switch {
	case s.found != nil && s.found.stage == stageOK:
		allowPath(q, d, s.found.rules)
		return
	case s.exhausted:
		deny(ReasonHopsExceeded, "the search for a path of rules from %s to %s gave up after examining %d rules and looking at %d (MaxRulesExamined %d, MaxRulesScanned %d) without finding one that allows: the federation graph between them is too wide to search",
			issuer.Name, target.Name, s.examined, s.scanned, MaxRulesExamined, MaxRulesScanned)
		return
	case s.found != nil:
		denyPath(q, d, s.found, "")
		return
	}
	s.best = best
	s.diagnosePass()
	if s.best.stage == stageOK { // cannot happen: the allow pass saw every such path
		allowPath(q, d, s.best.rules)
		return
	}
	note := ""
	if s.exhausted {
		note = fmt.Sprintf(" (the search for longer paths stopped after examining %d rules and looking at %d: MaxRulesExamined, MaxRulesScanned)", s.examined, s.scanned)
	}
	if s.best.stage == stageNone {
		deny(ReasonNoRule, "%s has no federation rule accepting principals of %s%s", target.Name, issuer.Name, note)
		return
	}
	denyPath(q, d, &s.best, note)
}

// appendPath adds the path's declarers and rules to d, from the home end.
func appendPath(d *Decision, rules []*RuleInfo) {
	for i := len(rules) - 1; i >= 0; i-- {
		d.Chain = append(d.Chain, rules[i].Target, rules[i].ID)
		d.Path = append(d.Path, rules[i].ID)
	}
}

func allowPath(q *request, d *Decision, rules []*RuleInfo) {
	appendPath(d, rules)
	r := rules[0]
	d.Allow, d.Rule, d.Reason = true, r.ID, ReasonOK
	target, issuer := authorityName(q.v, q.target), authorityName(q.v, q.home)
	if len(rules) == 1 {
		// fmt.Sprintf("%s accepts %q of %s for %s on %s (rule %s)", ...),
		// built by hand: every allowed decision says it, and Sprintf's
		// boxing of six arguments was a fifth of a warm decision's
		// allocations.
		var b strings.Builder
		b.Grow(64 + len(target) + 2*len(q.subject) + len(issuer) + len(q.action) + len(q.res))
		var quoted [128]byte
		var short [12]byte
		hex.Encode(short[:], r.ID[:6])
		for _, part := range [][]byte{[]byte(target), []byte(" accepts "), appendQuote(quoted[:0], q.subject), []byte(" of "), []byte(issuer), []byte(" for "),
			[]byte(q.action), []byte(" on "), []byte(q.res), []byte(" (rule "), short[:], []byte(")")} {
			b.Write(part)
		}
		d.Message = b.String()
		return
	}
	d.Message = fmt.Sprintf("%s accepts %q of %s for %s on %s over the path %s (rule %s, %d rules)", target, q.subject, issuer, q.action, q.res, describePath(q.v, rules), r.ID.Short(), len(rules))
}

func denyPath(q *request, d *Decision, p *pathResult, note string) {
	appendPath(d, p.rules)
	r := p.rules[p.failed]
	d.Rule, d.Reason = r.ID, p.reason
	msg := p.note
	if msg == "" {
		msg = ruleMessage(q, r, p.reason, len(p.rules)-1-p.failed)
	}
	if len(p.rules) == 1 {
		d.Message = fmt.Sprintf("%s's rule %s %s%s", authorityName(q.v, r.Target), r.ID.Short(), msg, note)
		return
	}
	d.Message = fmt.Sprintf("on the path %s, %s's rule %s %s%s", describePath(q.v, p.rules), authorityName(q.v, r.Target), r.ID.Short(), msg, note)
}

// window judges a validity window [nbf, naf) at t; zero bounds are open.
func window(nbf, naf int64, t time.Time) (Reason, string) {
	u := t.Unix()
	if nbf != 0 && u < nbf {
		return ReasonNotYetValid, fmt.Sprintf("is not valid before %s (judged at %s)", fmtUnix(nbf), t.UTC().Format(time.RFC3339))
	}
	if naf != 0 && u >= naf {
		return ReasonExpired, fmt.Sprintf("expired at %s (judged at %s)", fmtUnix(naf), t.UTC().Format(time.RFC3339))
	}
	return "", ""
}

func fmtUnix(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }

// appendQuote is strconv.AppendQuote, without its Unicode tables for the
// usual subject of printable ASCII with no quote or backslash: that is
// quoted as it is.
func appendQuote(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
