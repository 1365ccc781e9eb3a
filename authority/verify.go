package authority

import (
	"errors"
	"fmt"
	"slices"
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
)

// Reasons lists every reason code, for documentation and tests.
var Reasons = []Reason{
	ReasonOK, ReasonNoRule, ReasonSubjectNotAllowed, ReasonResourceNotAllowed,
	ReasonActionNotAllowed, ReasonExpired, ReasonNotYetValid, ReasonRevoked,
	ReasonBadSignature, ReasonUnknownAuthority, ReasonMalformed,
	ReasonStaleBundle, ReasonRollback,
}

// Request is one authorization question: may the principal holding Credential
// perform Action on Resource, governed by the Target authority?
type Request struct {
	Credential []byte
	Target     ID
	Resource   string
	Action     string
}

// Decision is the answer, always with its reasons. JSON field names are a
// public interface.
type Decision struct {
	Allow   bool   `json:"-"`
	Outcome string `json:"decision"` // "allow" or "deny"
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
	// Chain is the declarations the decision used, from the principal's root
	// to the rule: for a deny, up to the link that failed.
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
	// Rule is the rule that allowed, or the closest one that did not.
	Rule ID `json:"rule,omitzero"`
}

// Option configures Verify.
type Option func(*verifyOptions)

type verifyOptions struct {
	at    time.Time
	asOf  time.Time
	asOfS bool
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

// Verify decides req against the graph view. It is a pure function of its
// inputs: the credential's bytes, the view and the times given as options.
// It checks one signature (the credential's); declarations in the view were
// verified when they were accepted into it.
func Verify(v View, req Request, opts ...Option) Decision {
	var o verifyOptions
	for _, f := range opts {
		f(&o)
	}
	d := Decision{
		GraphVersion: v.Version(),
		Target:       req.Target,
		Resource:     req.Resource,
		Action:       req.Action,
		At:           o.at.UTC().Format(time.RFC3339),
	}
	if o.asOfS && o.at.After(o.asOf) {
		d.GraphAgeMS = o.at.Sub(o.asOf).Milliseconds()
	}
	decide(v, req, o.at, &d)
	if d.Allow {
		d.Outcome = "allow"
	} else {
		d.Outcome = "deny"
	}
	if d.Chain == nil {
		d.Chain = []ID{}
	}
	return d
}

func decide(v View, req Request, at time.Time, d *Decision) {
	deny := func(r Reason, format string, args ...any) {
		d.Reason, d.Message = r, fmt.Sprintf(format, args...)
	}
	cred, err := Parse(req.Credential)
	if err != nil {
		deny(ReasonMalformed, "the credential is not a valid declaration: %v", err)
		return
	}
	if cred.Decl.Kind != KindCredential {
		deny(ReasonMalformed, "the presented declaration is a %v, not a credential", cred.Decl.Kind)
		return
	}
	c := cred.Decl.Credential
	d.Subject, d.Issuer = c.Subject, cred.Decl.Authority
	issuer, ok := v.Authority(cred.Decl.Authority)
	if !ok {
		deny(ReasonUnknownAuthority, "the credential's issuer %s is not an authority in the graph at version %d", cred.Decl.Authority.Short(), v.Version())
		return
	}
	d.Chain = append(d.Chain, issuer.ID)
	if err := cred.VerifyWith(issuer.RootKeys); err != nil {
		reason := ReasonBadSignature
		if errors.Is(err, ErrMalformed) {
			reason = ReasonMalformed
		}
		deny(reason, "the credential's signature does not verify against %s's declared keys: %v", issuer.Name, err)
		return
	}
	d.Chain = append(d.Chain, cred.ID)
	if rid, ok := v.RevokedBy(issuer.ID, issuer.ID); ok {
		d.Chain = append(d.Chain, rid)
		deny(ReasonRevoked, "authority %s has revoked itself (revocation %s)", issuer.Name, rid.Short())
		return
	}
	if rid, ok := v.RevokedBy(cred.ID, issuer.ID); ok {
		d.Chain = append(d.Chain, rid)
		deny(ReasonRevoked, "%s revoked this credential (revocation %s)", issuer.Name, rid.Short())
		return
	}
	if r, msg := window(c.NotBefore, c.NotAfter, at); r != "" {
		deny(r, "the credential for %q %s", c.Subject, msg)
		return
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
	// Among the target's rules for this source, the first (in chain order)
	// that allows wins; otherwise report the rule that came closest, so the
	// deny names the check a person would want fixed.
	var best *RuleInfo
	bestStage, bestReason := -1, Reason("")
	for _, ri := range v.RulesFor(target.ID) {
		if ri.Rule.Source != issuer.ID {
			continue
		}
		stage, reason := judgeRule(v, ri, c.Subject, req, at)
		if reason == ReasonOK {
			d.Chain = append(d.Chain, target.ID, ri.ID)
			d.Allow, d.Rule = true, ri.ID
			d.Reason = ReasonOK
			d.Message = fmt.Sprintf("%s accepts %q of %s for %s on %s (rule %s)", target.Name, c.Subject, issuer.Name, req.Action, req.Resource, ri.ID.Short())
			return
		}
		if stage > bestStage {
			best, bestStage, bestReason = ri, stage, reason
		}
	}
	if best == nil {
		deny(ReasonNoRule, "%s has no federation rule accepting principals of %s", target.Name, issuer.Name)
		return
	}
	d.Chain = append(d.Chain, target.ID, best.ID)
	d.Rule = best.ID
	deny(bestReason, "%s's rule %s %s", target.Name, best.ID.Short(), ruleMessage(v, best, bestReason, c.Subject, req, at))
}

// judgeRule checks one rule against the request. Stages are ordered by how
// specific to this request the check is, so that the closest rule is the one
// that matched the most. It builds no message: most rules a request is
// checked against are not the one its decision names (see ruleMessage).
func judgeRule(v View, ri *RuleInfo, subject string, req Request, at time.Time) (int, Reason) {
	r := &ri.Rule
	if !Match(r.Subjects, subject) {
		return 1, ReasonSubjectNotAllowed
	}
	if !Match(r.Resources, req.Resource) {
		return 2, ReasonResourceNotAllowed
	}
	if !slices.Contains(r.Actions, req.Action) {
		return 3, ReasonActionNotAllowed
	}
	if reason, _ := window(r.NotBefore, r.NotAfter, at); reason != "" {
		return 4, reason
	}
	if _, ok := v.RevokedBy(ri.ID, ri.Target); ok {
		return 5, ReasonRevoked
	}
	return 6, ReasonOK
}

// ruleMessage says why rule ri failed with reason.
func ruleMessage(v View, ri *RuleInfo, reason Reason, subject string, req Request, at time.Time) string {
	r := &ri.Rule
	switch reason {
	case ReasonSubjectNotAllowed:
		return fmt.Sprintf("accepts subjects %q, not %q", r.Subjects, subject)
	case ReasonResourceNotAllowed:
		return fmt.Sprintf("covers resources %q, not %q", r.Resources, req.Resource)
	case ReasonActionNotAllowed:
		return fmt.Sprintf("allows actions %v, not %q", r.Actions, req.Action)
	case ReasonRevoked:
		rid, _ := v.RevokedBy(ri.ID, ri.Target)
		return fmt.Sprintf("was revoked (revocation %s)", rid.Short())
	}
	_, msg := window(r.NotBefore, r.NotAfter, at)
	return msg
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
