package authority_test

import (
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// TestVerify judges one request per case against a graph the case builds, and
// checks that together the cases produce every reason code.
func TestVerify(t *testing.T) {
	hour := time.Hour
	day := 24 * time.Hour
	// Each build starts from newWorld (two geneses), adds what it needs, and
	// returns the request and the chain the decision must report.
	tests := []struct {
		name  string
		build func(t *testing.T, w *world) (authority.Request, []authority.ID)
		at    time.Time // zero: now
		want  authority.Reason
	}{
		{
			name: "ok",
			want: authority.ReasonOK,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r, c := w.etlRule(t), w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "ok at the first second of both windows",
			at:   now,
			want: authority.ReasonOK,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r := w.apply(t, w.azure.rule(t, w.aws.id(), etlPattern, dataPattern, []string{"read"}, now, now.Add(hour)))
				c := w.aws.credential(t, etlSubject, now, now.Add(hour))
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "ok with open windows",
			want: authority.ReasonOK,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r := w.apply(t, w.azure.rule(t, w.aws.id(), etlPattern, dataPattern, []string{"read"}, time.Time{}, time.Time{}))
				c := w.aws.credential(t, etlSubject, time.Time{}, time.Time{})
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "ok by the second rule when the first does not match",
			want: authority.ReasonOK,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.apply(t, w.azure.rule(t, w.aws.id(), etlPattern, "blob://other/*", []string{"read"}, time.Time{}, time.Time{}))
				r, c := w.etlRule(t), w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "ok although another authority revoked the credential",
			want: authority.ReasonOK,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r, c := w.etlRule(t), w.etlCredential(t)
				// RevokedBy is keyed by issuer: azure-corp cannot revoke
				// aws-prod's credential, nor aws-prod's genesis.
				w.apply(t, w.azure.revoke(t, c.ID))
				w.apply(t, w.azure.revoke(t, w.aws.id()))
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "ok although the source revoked the target's rule",
			want: authority.ReasonOK,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r, c := w.etlRule(t), w.etlCredential(t)
				w.apply(t, w.aws.revoke(t, r.ID))
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "no-rule: the target has no rules",
			want: authority.ReasonNoRule,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				c := w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "no-rule: the target's rules accept another source",
			want: authority.ReasonNoRule,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				gcp := newChain(t, "gcp-data", seedGCP)
				w.apply(t, gcp.genesis)
				w.apply(t, w.azure.rule(t, gcp.id(), "*", "*", []string{"read"}, time.Time{}, time.Time{}))
				c := w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "no-rule: the source's own rule does not bind the target",
			want: authority.ReasonNoRule,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				// A rule declared by aws-prod about its own principals is
				// not azure-corp's rule.
				w.apply(t, w.aws.rule(t, w.aws.id(), "*", "*", []string{"read"}, time.Time{}, time.Time{}))
				c := w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "subject-not-allowed: role/admin",
			want: authority.ReasonSubjectNotAllowed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r := w.etlRule(t)
				c := w.aws.credential(t, adminSubject, now.Add(-hour), now.Add(hour))
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "resource-not-allowed",
			want: authority.ReasonResourceNotAllowed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r, c := w.etlRule(t), w.etlCredential(t)
				req := w.request(c.Raw)
				req.Resource = "blob://hr-data/salaries.csv"
				return req, ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "resource-not-allowed: pattern is anchored at the start",
			want: authority.ReasonResourceNotAllowed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r, c := w.etlRule(t), w.etlCredential(t)
				req := w.request(c.Raw)
				req.Resource = "x" + dataResource
				return req, ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "action-not-allowed: write",
			want: authority.ReasonActionNotAllowed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r, c := w.etlRule(t), w.etlCredential(t)
				req := w.request(c.Raw)
				req.Action = "write"
				return req, ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "action-not-allowed wins over subject-not-allowed: the closest rule is reported",
			want: authority.ReasonActionNotAllowed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.apply(t, w.azure.rule(t, w.aws.id(), "arn:aws:iam::*:role/ops-*", "*", []string{"write"}, time.Time{}, time.Time{}))
				r := w.etlRule(t)
				w.apply(t, w.azure.rule(t, w.aws.id(), adminSubject, "*", []string{"write"}, time.Time{}, time.Time{}))
				c := w.etlCredential(t)
				req := w.request(c.Raw)
				req.Action = "write"
				return req, ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "expired: credential",
			want: authority.ReasonExpired,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.aws.credential(t, etlSubject, now.Add(-2*hour), now.Add(-hour))
				return w.request(c.Raw), ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "expired: credential at exactly not-after",
			want: authority.ReasonExpired,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.aws.credential(t, etlSubject, now.Add(-2*hour), now)
				return w.request(c.Raw), ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "not-yet-valid: credential",
			want: authority.ReasonNotYetValid,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.aws.credential(t, etlSubject, now.Add(time.Second), now.Add(hour))
				return w.request(c.Raw), ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "expired: rule",
			want: authority.ReasonExpired,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r := w.apply(t, w.azure.rule(t, w.aws.id(), etlPattern, dataPattern, []string{"read"}, now.Add(-2*day), now.Add(-day)))
				c := w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "not-yet-valid: rule",
			want: authority.ReasonNotYetValid,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r := w.apply(t, w.azure.rule(t, w.aws.id(), etlPattern, dataPattern, []string{"read"}, now.Add(day), time.Time{}))
				c := w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "revoked: credential",
			want: authority.ReasonRevoked,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.etlCredential(t)
				rev := w.apply(t, w.aws.revoke(t, c.ID))
				return w.request(c.Raw), ids(w.aws.id(), c.ID, rev.ID)
			},
		},
		{
			name: "revoked: credential revoked twice reports the first revocation",
			want: authority.ReasonRevoked,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.etlCredential(t)
				rev := w.apply(t, w.aws.revoke(t, c.ID))
				w.apply(t, w.aws.revoke(t, c.ID))
				return w.request(c.Raw), ids(w.aws.id(), c.ID, rev.ID)
			},
		},
		{
			name: "revoked: rule",
			want: authority.ReasonRevoked,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r, c := w.etlRule(t), w.etlCredential(t)
				w.apply(t, w.azure.revoke(t, r.ID))
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), r.ID)
			},
		},
		{
			name: "revoked: the issuer revoked its own genesis",
			want: authority.ReasonRevoked,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.etlCredential(t)
				rev := w.apply(t, w.aws.revoke(t, w.aws.id()))
				return w.request(c.Raw), ids(w.aws.id(), c.ID, rev.ID)
			},
		},
		{
			name: "revoked: the target revoked its own genesis",
			want: authority.ReasonRevoked,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.etlCredential(t)
				rev := w.azure.revoke(t, w.azure.id())
				w.apply(t, rev)
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), rev.ID)
			},
		},
		{
			name: "bad-signature: signed by a key the issuer never declared",
			want: authority.ReasonBadSignature,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := mustSign(t, credentialDecl(w.aws.id(), etlSubject, now.Add(-hour), now.Add(hour)), fixedKey(t, seedStranger))
				return w.request(c.Raw), ids(w.aws.id())
			},
		},
		{
			name: "bad-signature: signed by the target's key",
			want: authority.ReasonBadSignature,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := mustSign(t, credentialDecl(w.aws.id(), etlSubject, now.Add(-hour), now.Add(hour)), w.azure.key)
				return w.request(c.Raw), ids(w.aws.id())
			},
		},
		{
			name: "bad-signature: one byte of the signature flipped",
			want: authority.ReasonBadSignature,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				raw := clone(w.etlCredential(t).Raw)
				raw[len(raw)-1] ^= 0x01 // the signature is the envelope's last item
				return w.request(raw), ids(w.aws.id())
			},
		},
		{
			name: "bad-signature: malleated signature (S+L) cannot dodge a revocation by ID",
			want: authority.ReasonBadSignature,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.etlCredential(t)
				w.apply(t, w.aws.revoke(t, c.ID))
				return w.request(malleate(t, c.Raw)), ids(w.aws.id())
			},
		},
		{
			name: "bad-signature: the issuer's kid on another key's signature",
			want: authority.ReasonBadSignature,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.etlCredential(t)
				payload, _ := payloadOf(t, c.Raw)
				awsKID := w.aws.key.Public().KeyID()
				// Signed by the stranger key, but naming aws-prod's key.
				raw := resign(t, payload, seedStranger, map[any]any{}, nil, nil)
				strangerKID := fixedKey(t, seedStranger).Public().KeyID()
				raw = replaceOnce(t, raw, strangerKID, awsKID)
				return w.request(raw), ids(w.aws.id())
			},
		},
		{
			name: "unknown-authority: issuer not in the graph",
			want: authority.ReasonUnknownAuthority,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				gcp := newChain(t, "gcp-data", seedGCP) // never applied
				c := gcp.credential(t, etlSubject, now.Add(-hour), now.Add(hour))
				return w.request(c.Raw), ids()
			},
		},
		{
			name: "unknown-authority: target not in the graph",
			want: authority.ReasonUnknownAuthority,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.etlCredential(t)
				req := w.request(c.Raw)
				req.Target = newChain(t, "gcp-data", seedGCP).id()
				return req, ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "unknown-authority: zero target",
			want: authority.ReasonUnknownAuthority,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := w.etlCredential(t)
				req := w.request(c.Raw)
				req.Target = authority.ID{}
				return req, ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "malformed: empty",
			want: authority.ReasonMalformed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				return w.request(nil), ids()
			},
		},
		{
			name: "malformed: truncated",
			want: authority.ReasonMalformed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				raw := w.etlCredential(t).Raw
				return w.request(raw[:len(raw)-1]), ids()
			},
		},
		{
			name: "malformed: garbage",
			want: authority.ReasonMalformed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				return w.request([]byte("arn:aws:iam::111122223333:role/etl-loader please")), ids()
			},
		},
		{
			name: "malformed: trailing byte after the envelope",
			want: authority.ReasonMalformed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				return w.request(append(clone(w.etlCredential(t).Raw), 0x00)), ids()
			},
		},
		{
			name: "malformed: a rule presented as credential",
			want: authority.ReasonMalformed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r := w.etlRule(t)
				return w.request(r.Raw), ids()
			},
		},
		{
			name: "malformed: a genesis presented as credential",
			want: authority.ReasonMalformed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				return w.request(w.aws.genesis.Raw), ids()
			},
		},
		{
			name: "malformed: a flipped payload byte breaks the CBOR",
			want: authority.ReasonMalformed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				raw := clone(w.etlCredential(t).Raw)
				_, at := payloadOf(t, raw)
				raw[at] = 0xff // the payload's map header becomes a stray "break"
				return w.request(raw), ids()
			},
		},
		{
			name: "malformed: non-canonical payload, properly signed",
			want: authority.ReasonMalformed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				payload, _ := payloadOf(t, w.etlCredential(t).Raw)
				return w.request(resign(t, reorderMap(t, payload, false), seedAWS, nil, nil, nil)), ids()
			},
		},
		{
			name: "ok over a path of two rules",
			want: authority.ReasonOK,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				gcp := newChain(t, "gcp-data", seedGCP)
				w.apply(t, gcp.genesis)
				rg := w.apply(t, gcp.next(t, authority.Declaration{Kind: authority.KindRule, Rule: ptr(etlRule(w.aws.id(), 0))}))
				ra := w.apply(t, w.azure.next(t, authority.Declaration{Kind: authority.KindRule, Rule: ptr(etlRule(gcp.id(), 1))}))
				c := w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID, gcp.id(), rg.ID, w.azure.id(), ra.ID)
			},
		},
		{
			name: "hops-exceeded: the target's rule passes on no hops",
			want: authority.ReasonHopsExceeded,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				gcp := newChain(t, "gcp-data", seedGCP)
				w.apply(t, gcp.genesis)
				rg := w.apply(t, gcp.next(t, authority.Declaration{Kind: authority.KindRule, Rule: ptr(etlRule(w.aws.id(), 0))}))
				ra := w.apply(t, w.azure.next(t, authority.Declaration{Kind: authority.KindRule, Rule: ptr(etlRule(gcp.id(), 0))}))
				c := w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID, gcp.id(), rg.ID, w.azure.id(), ra.ID)
			},
		},
		{
			name: "condition-failed: the rule requires an attribute the credential lacks",
			want: authority.ReasonConditionFailed,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				r := etlRule(w.aws.id(), 0)
				r.Require = sortedAttrs("team", "data")
				ra := w.apply(t, w.azure.next(t, authority.Declaration{Kind: authority.KindRule, Rule: &r}))
				c := w.etlCredential(t)
				return w.request(c.Raw), ids(w.aws.id(), c.ID, w.azure.id(), ra.ID)
			},
		},
		{
			name: "proof-of-possession: a holder-bound credential without a proof",
			want: authority.ReasonProofOfPossession,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				c := issue(t, w.aws, holds(t, etlCred(), seedHolder1))
				return w.request(c.Raw), ids(w.aws.id(), c.ID)
			},
		},
		{
			name: "scope-widening: a delegated credential wider than its parent",
			want: authority.ReasonScopeWidening,
			build: func(t *testing.T, w *world) (authority.Request, []authority.ID) {
				w.etlRule(t)
				pc := holds(t, etlCred(), seedHolder1)
				pc.Resources = dataPattern
				root := issue(t, w.aws, pc)
				leaf := delegate(t, root, seedHolder1, etlCred()) // no Resources: any
				req := w.request(leaf.Raw)
				req.Delegation = raws(root)
				return req, ids(w.aws.id(), root.ID, leaf.ID)
			},
		},
	}
	seen := map[authority.Reason]bool{}
	ran := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran++
			w := newWorld(t)
			req, chain := tt.build(t, w)
			at := tt.at
			if at.IsZero() {
				at = now
			}
			asOf := at.Add(-1500 * time.Millisecond)
			d := authority.Verify(w.g, req, authority.WithTime(at), authority.WithGraphAsOf(asOf))
			t.Logf("%s: %s", d.Reason, d.Message)
			seen[d.Reason] = true
			if d.Reason != tt.want {
				t.Fatalf("reason = %q (%s), want %q", d.Reason, d.Message, tt.want)
			}
			wantAllow := tt.want == authority.ReasonOK
			wantOutcome := map[bool]string{true: "allow", false: "deny"}[wantAllow]
			if d.Allow != wantAllow || d.Outcome != wantOutcome {
				t.Errorf("allow, outcome = %v, %q; want %v, %q", d.Allow, d.Outcome, wantAllow, wantOutcome)
			}
			if !slices.Equal(d.Chain, chain) || d.Chain == nil {
				t.Errorf("chain = %s, want %s", fmtIDs(d.Chain), fmtIDs(chain))
			}
			if d.GraphVersion != w.g.Version() {
				t.Errorf("graph version = %d, want %d", d.GraphVersion, w.g.Version())
			}
			if d.GraphAgeMS != 1500 {
				t.Errorf("graph age = %d ms, want 1500", d.GraphAgeMS)
			}
			if d.Message == "" {
				t.Errorf("empty message")
			}
			if d.At != at.Format(time.RFC3339) || d.Target != req.Target || d.Resource != req.Resource || d.Action != req.Action {
				t.Errorf("decision echoes at=%q target=%s resource=%q action=%q; want %q %s %q %q",
					d.At, d.Target.Short(), d.Resource, d.Action, at.Format(time.RFC3339), req.Target.Short(), req.Resource, req.Action)
			}
			if wantAllow {
				if last := chain[len(chain)-1]; d.Rule != last || d.Issuer != w.aws.id() || d.Subject == "" {
					t.Errorf("allow names rule %s issuer %s subject %q; want rule %s issuer %s", d.Rule.Short(), d.Issuer.Short(), d.Subject, last.Short(), w.aws.id().Short())
				}
			}
		})
	}
	if ran < len(tests) {
		return // -run selected some cases only
	}
	for _, r := range authority.Reasons {
		if r == authority.ReasonStaleBundle || r == authority.ReasonRollback {
			continue // decided by package bundle before Verify runs; tested there
		}
		if r == authority.ReasonThresholdNotMet || r == authority.ReasonKeyRotated || r == authority.ReasonEquivocation {
			continue // key governance: TestGovernanceVerify and its fixtures
		}
		if r == authority.ReasonNotMember {
			continue // consortium membership: TestConsortiumVerify
		}
		if r == authority.ReasonUntrustedExternal || r == authority.ReasonAudienceMismatch {
			continue // external credentials: TestVerifyJWT, TestVerifyX509
		}
		if !seen[r] {
			t.Errorf("no case produced reason %q", r)
		}
	}
}

// TestVerifyGraphAge checks the graph age under WithGraphAsOf, including a
// view claimed current after the judgement time (age never negative).
func TestVerifyGraphAge(t *testing.T) {
	tests := []struct {
		name string
		opts []authority.Option
		want int64
	}{
		{name: "no as-of", opts: []authority.Option{authority.WithTime(now)}, want: 0},
		{name: "one minute", opts: []authority.Option{authority.WithTime(now), authority.WithGraphAsOf(now.Add(-time.Minute))}, want: 60000},
		{name: "same instant", opts: []authority.Option{authority.WithTime(now), authority.WithGraphAsOf(now)}, want: 0},
		{name: "as-of in the future", opts: []authority.Option{authority.WithTime(now), authority.WithGraphAsOf(now.Add(time.Hour))}, want: 0},
		{name: "sub-millisecond truncates", opts: []authority.Option{authority.WithTime(now), authority.WithGraphAsOf(now.Add(-999 * time.Microsecond))}, want: 0},
	}
	w := newWorld(t)
	w.etlRule(t)
	c := w.etlCredential(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := authority.Verify(w.g, w.request(c.Raw), tt.opts...)
			if !d.Allow || d.GraphAgeMS != tt.want {
				t.Fatalf("allow %v (%s), age %d; want allow, age %d", d.Allow, d.Message, d.GraphAgeMS, tt.want)
			}
		})
	}
}

// TestVerifyWithoutTime: Verify has no clock, so a request without WithTime
// fails every window with a start.
func TestVerifyWithoutTime(t *testing.T) {
	w := newWorld(t)
	w.etlRule(t)
	d := authority.Verify(w.g, w.request(w.etlCredential(t).Raw))
	if d.Allow || d.Reason != authority.ReasonNotYetValid {
		t.Fatalf("reason %q (%s), want %q", d.Reason, d.Message, authority.ReasonNotYetValid)
	}
}

// TestVerifyDoesNotModifyRequest: the verifier must not write into the
// caller's credential bytes.
func TestVerifyDoesNotModifyRequest(t *testing.T) {
	w := newWorld(t)
	w.etlRule(t)
	raw := w.etlCredential(t).Raw
	keep := clone(raw)
	authority.Verify(w.g, w.request(raw), authority.WithTime(now))
	if string(raw) != string(keep) {
		t.Fatal("Verify modified the credential bytes")
	}
}

func TestDecisionJSON(t *testing.T) {
	w := newWorld(t)
	r := w.etlRule(t)
	c := w.etlCredential(t)
	tests := []struct {
		name    string
		req     authority.Request
		outcome string
		reason  authority.Reason
		chain   []authority.ID
	}{
		{name: "allow", req: w.request(c.Raw), outcome: "allow", reason: authority.ReasonOK, chain: ids(w.aws.id(), c.ID, w.azure.id(), r.ID)},
		{name: "deny with empty chain", req: w.request([]byte("junk")), outcome: "deny", reason: authority.ReasonMalformed, chain: ids()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := authority.Verify(w.g, tt.req, authority.WithTime(now), authority.WithGraphAsOf(now.Add(-2*time.Second)))
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", b)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"decision", "reason", "message", "chain", "graph_version", "graph_age_ms", "resource", "action", "at"} {
				if _, ok := m[k]; !ok {
					t.Errorf("JSON has no %q field", k)
				}
			}
			for _, k := range []string{"Allow", "allow", "Outcome", "Chain"} {
				if _, ok := m[k]; ok {
					t.Errorf("JSON has unexpected field %q", k)
				}
			}
			if m["decision"] != tt.outcome || m["reason"] != string(tt.reason) {
				t.Errorf("decision, reason = %v, %v; want %s, %s", m["decision"], m["reason"], tt.outcome, tt.reason)
			}
			if m["graph_version"] != float64(w.g.Version()) || m["graph_age_ms"] != float64(2000) {
				t.Errorf("graph_version, graph_age_ms = %v, %v; want %d, 2000", m["graph_version"], m["graph_age_ms"], w.g.Version())
			}
			chain, ok := m["chain"].([]any)
			if !ok {
				t.Fatalf("chain is %T (%v), want a JSON array", m["chain"], m["chain"])
			}
			if len(chain) != len(tt.chain) {
				t.Fatalf("chain has %d entries, want %d", len(chain), len(tt.chain))
			}
			for i, e := range chain {
				if e != tt.chain[i].String() {
					t.Errorf("chain[%d] = %v, want hex %s", i, e, tt.chain[i])
				}
			}
			if tt.outcome == "allow" {
				if m["rule"] != r.ID.String() || m["issuer"] != w.aws.id().String() || m["target"] != w.azure.id().String() || m["subject"] != etlSubject {
					t.Errorf("rule/issuer/target/subject = %v %v %v %v", m["rule"], m["issuer"], m["target"], m["subject"])
				}
			} else {
				for _, k := range []string{"rule", "issuer", "subject"} {
					if _, ok := m[k]; ok {
						t.Errorf("deny before parsing has field %q", k)
					}
				}
			}
			// IDs read back from their JSON form.
			var back struct{ Chain []authority.ID }
			if err := json.Unmarshal(b, &back); err != nil || !slices.Equal(back.Chain, tt.chain) {
				t.Errorf("chain does not round-trip: %v, %v", err, back.Chain)
			}
		})
	}
}

func TestReasonsAreStable(t *testing.T) {
	// Codes are a public interface: this list changes only by appending.
	want := []string{"ok", "no-rule", "subject-not-allowed", "resource-not-allowed", "action-not-allowed",
		"expired", "not-yet-valid", "revoked", "bad-signature", "unknown-authority", "malformed",
		"stale-bundle", "rollback",
		"scope-widening", "hops-exceeded", "condition-failed", "proof-of-possession",
		"threshold-not-met", "key-rotated", "equivocation",
		"untrusted-external", "audience-mismatch", "not-member"}
	got := make([]string, len(authority.Reasons))
	for i, r := range authority.Reasons {
		got[i] = string(r)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Reasons = %v, want %v", got, want)
	}
}

// malleate adds the group order L to the S half of the Ed25519 signature at
// the end of raw: the same signature to a verifier that does not insist on
// canonical S, with other bytes and so another ID.
func malleate(t fataler, raw []byte) []byte {
	t.Helper()
	out := clone(raw)
	sLE := out[len(out)-32:]
	be := make([]byte, 32)
	for i := range 32 {
		be[i] = sLE[31-i]
	}
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	sum := new(big.Int).Add(new(big.Int).SetBytes(be), l)
	if sum.BitLen() > 256 {
		t.Fatalf("S+L overflows")
	}
	sum.FillBytes(be)
	for i := range 32 {
		sLE[i] = be[31-i]
	}
	return out
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// replaceOnce replaces the single occurrence of old in b.
func replaceOnce(t fataler, b, old, new []byte) []byte {
	t.Helper()
	if n := strings.Count(string(b), string(old)); n != 1 {
		t.Fatalf("want exactly one occurrence, found %d", n)
	}
	return []byte(strings.Replace(string(b), string(old), string(new), 1))
}
