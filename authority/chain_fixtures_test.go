package authority_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fednode/fednode/authority"
)

// Chain fixtures live in testdata/chains/, one scenario per file, named after
// the defect it holds: the graph (every declaration, in order), the request
// (credential, delegation chain, proof of possession), the verifier's
// challenge and time, and the decision it must give (reason, chain, rule).
// They are generated from chainCases below, as the single-envelope fixtures
// are (go test ./authority -run TestChainFixtures -update), and judged by
// TestChainScenarios from the files alone.

// scenario is the file format of a chain fixture (deterministic CBOR).
type scenario struct {
	Graph      [][]byte         `cbor:"1,keyasint"`
	Credential []byte           `cbor:"2,keyasint"`
	Delegation [][]byte         `cbor:"3,keyasint,omitempty"`
	Target     authority.ID     `cbor:"4,keyasint"`
	Resource   string           `cbor:"5,keyasint"`
	Action     string           `cbor:"6,keyasint"`
	PoP        []byte           `cbor:"7,keyasint,omitempty"`
	Challenge  []byte           `cbor:"8,keyasint,omitempty"`
	At         int64            `cbor:"9,keyasint"`
	Reason     authority.Reason `cbor:"10,keyasint"`
	Chain      []authority.ID   `cbor:"11,keyasint"`
	Rule       authority.ID     `cbor:"12,keyasint,omitzero"`
}

// chainCase builds one scenario: the request against s's graph, the chain
// the decision must report and the rule it must name (nil: none).
type chainCase struct {
	name  string // the fixture's file name, without .cbor
	want  authority.Reason
	build func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed)
}

// delegation3 is a standard three-link chain of aws-prod: a root for
// corp-data read and write held by holder 1, a child for q3* read held by
// holder 2, and a bearer leaf for exactly the standard resource. mod may
// change each link's body before it is signed.
func delegation3(t fataler, s *sb, mod func(i int, cr *authority.Credential)) (root, child, leaf *authority.Signed) {
	t.Helper()
	if mod == nil {
		mod = func(int, *authority.Credential) {}
	}
	cr := holds(t, etlCred(), seedHolder1)
	cr.Resources, cr.Actions = dataPattern, []string{"read", "write"}
	cr.Attributes = sortedAttrs("team", "data", "env", "prod")
	mod(0, &cr)
	root = issue(t, s.aws, cr)
	cc := holds(t, etlCred(), seedHolder2)
	cc.Resources, cc.Actions = "blob://corp-data/q3*", []string{"read"}
	cc.Attributes = sortedAttrs("team", "data")
	mod(1, &cc)
	child = delegate(t, root, seedHolder1, cc)
	lc := etlCred()
	lc.NotBefore, lc.NotAfter = unix(now.Add(-30*time.Minute)), unix(now.Add(30*time.Minute))
	lc.Resources, lc.Actions = dataResource, []string{"read"}
	lc.Attributes = sortedAttrs("team", "data")
	mod(2, &lc)
	leaf = delegate(t, child, seedHolder2, lc)
	return root, child, leaf
}

// twoHop is the standard path aws-prod → gcp-data → azure-corp, with the
// rule bodies changed by gmod and amod.
func twoHop(s *sb, gmod, amod func(r *authority.Rule)) (rg, ra *authority.Signed) {
	g, a := etlRule(s.aws.id(), 0), etlRule(s.gcp.id(), 1)
	if gmod != nil {
		gmod(&g)
	}
	if amod != nil {
		amod(&a)
	}
	return s.rule(s.gcp, g), s.rule(s.azure, a)
}

var chainCases = []chainCase{
	// Paths of rules.
	{name: "valid-two-hop-path", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			rg, ra := twoHop(s, nil, nil)
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), ra
		}},
	{name: "valid-three-hop-path", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			ro := s.rule(s.okta, etlRule(s.aws.id(), 0))
			rg := s.rule(s.gcp, etlRule(s.okta.id(), 1))
			ra := s.rule(s.azure, etlRule(s.gcp.id(), 2))
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), ro, rg, ra), ra
		}},
	{name: "hops-exceeded-path", want: authority.ReasonHopsExceeded,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// azure-corp accepts gcp-data's own principals only.
			rg, ra := twoHop(s, nil, func(r *authority.Rule) { r.Hops = 0 })
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), ra
		}},
	{name: "hops-exceeded-middle-rule", want: authority.ReasonHopsExceeded,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// azure-corp would take two hops, but gcp-data passes on none.
			ro := s.rule(s.okta, etlRule(s.aws.id(), 0))
			rg := s.rule(s.gcp, etlRule(s.okta.id(), 0))
			ra := s.rule(s.azure, etlRule(s.gcp.id(), 2))
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), ro, rg, ra), rg
		}},
	{name: "hops-exceeded-max-path-length", want: authority.ReasonHopsExceeded,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// aws-prod → p1 → p2 → p3 → p4 → azure-corp: five rules, every
			// one passing on plenty of hops, one more than MaxPathLength.
			var ps []*chain
			for i := range 4 {
				ps = append(ps, s.found("p"+string(rune('1'+i)), byte(60+i)))
			}
			src := s.aws.id()
			var rs []*authority.Signed
			for _, p := range append(ps, s.azure) {
				rs = append(rs, s.rule(p, etlRule(src, 9)))
				src = p.id()
			}
			c := issue(t, s.aws, etlCred())
			// The search stops after the four rules from the target's end.
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rs[1:]...), rs[1]
		}},
	{name: "valid-max-path-length", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			var ps []*chain
			for i := range 3 {
				ps = append(ps, s.found("p"+string(rune('1'+i)), byte(60+i)))
			}
			src := s.aws.id()
			var rs []*authority.Signed
			for i, p := range append(ps, s.azure) {
				rs = append(rs, s.rule(p, etlRule(src, uint8(i))))
				src = p.id()
			}
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rs...), rs[3]
		}},
	{name: "rules-examined-exhausted", want: authority.ReasonHopsExceeded,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.explode(8, 3)
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c)), nil
		}},
	{name: "scope-widening-path-resource", want: authority.ReasonScopeWidening,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// gcp-data lets aws-prod's principals at its own data only; a
			// path through it cannot reach azure-corp's.
			rg, ra := twoHop(s, func(r *authority.Rule) { r.Resources = "blob://gcp-data/*" }, nil)
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), rg
		}},
	{name: "scope-widening-path-action", want: authority.ReasonScopeWidening,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			rg, ra := twoHop(s, nil, func(r *authority.Rule) { r.Actions = []string{"read", "write"} })
			c := issue(t, s.aws, etlCred())
			req := s.request(c)
			req.Action = "write"
			return req, pathChain(s.aws.id(), credsOf(c), rg, ra), rg
		}},
	{name: "action-not-allowed-path-target-rule", want: authority.ReasonActionNotAllowed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// Both rules refuse write: the target's is named first.
			rg, ra := twoHop(s, nil, nil)
			c := issue(t, s.aws, etlCred())
			req := s.request(c)
			req.Action = "write"
			return req, pathChain(s.aws.id(), credsOf(c), rg, ra), ra
		}},
	{name: "subject-not-allowed-path-rule", want: authority.ReasonSubjectNotAllowed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			rg, ra := twoHop(s, func(r *authority.Rule) { r.Subjects = adminSubject }, nil)
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), rg
		}},
	{name: "expired-path-rule", want: authority.ReasonExpired,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			rg, ra := twoHop(s, func(r *authority.Rule) { r.NotBefore, r.NotAfter = unix(now.Add(-2*day)), unix(now.Add(-day)) }, nil)
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), rg
		}},
	{name: "not-yet-valid-path-rule", want: authority.ReasonNotYetValid,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			rg, ra := twoHop(s, func(r *authority.Rule) { r.NotBefore, r.NotAfter = unix(now.Add(time.Second)), 0 }, nil)
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), rg
		}},
	{name: "revoked-intermediate-rule", want: authority.ReasonRevoked,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			rg, ra := twoHop(s, nil, nil)
			s.revoke(s.gcp, rg.ID)
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), rg
		}},
	{name: "revoked-intermediate-authority", want: authority.ReasonRevoked,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			rg, ra := twoHop(s, nil, nil)
			s.revoke(s.gcp, s.gcp.id())
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), rg
		}},
	{name: "path-choice-first-in-chain-order", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// Two paths of two rules; azure-corp's rule for okta-corp
			// comes first in its chain, so the path through okta-corp
			// is chosen, whatever the IDs.
			s.rule(s.gcp, etlRule(s.aws.id(), 0))
			ro := s.rule(s.okta, etlRule(s.aws.id(), 0))
			rao := s.rule(s.azure, etlRule(s.okta.id(), 1))
			s.rule(s.azure, etlRule(s.gcp.id(), 1))
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), ro, rao), rao
		}},
	{name: "path-choice-shortest", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// azure-corp's first rule leads to a three-rule path, its
			// second to a two-rule one: the shorter wins.
			rg := s.rule(s.gcp, etlRule(s.aws.id(), 0))
			s.rule(s.okta, etlRule(s.gcp.id(), 1))
			s.rule(s.azure, etlRule(s.okta.id(), 2))
			ra := s.rule(s.azure, etlRule(s.gcp.id(), 1))
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), ra
		}},
	{name: "path-choice-direct-wins", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			twoHop(s, nil, nil)
			rd := s.rule(s.azure, etlRule(s.aws.id(), 0))
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rd), rd
		}},
	{name: "hops-exceeded-beats-direct-subject", want: authority.ReasonHopsExceeded,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// The direct rule refuses the subject; a path that passes
			// everything but a Hops limit is closer.
			rd := etlRule(s.aws.id(), 0)
			rd.Subjects = adminSubject
			s.rule(s.azure, rd)
			rg, ra := twoHop(s, nil, func(r *authority.Rule) { r.Hops = 0 })
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), ra
		}},
	{name: "condition-failed-missing-attribute", want: authority.ReasonConditionFailed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			r := etlRule(s.aws.id(), 0)
			r.Require = sortedAttrs("team", "data")
			ra := s.rule(s.azure, r)
			c := issue(t, s.aws, etlCred())
			return s.request(c), pathChain(s.aws.id(), credsOf(c), ra), ra
		}},
	{name: "condition-failed-different-attribute", want: authority.ReasonConditionFailed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// The requirement is on the intermediate rule of a path.
			rg, ra := twoHop(s, func(r *authority.Rule) { r.Require = sortedAttrs("team", "data") }, nil)
			cr := etlCred()
			cr.Attributes = sortedAttrs("team", "ops")
			c := issue(t, s.aws, cr)
			return s.request(c), pathChain(s.aws.id(), credsOf(c), rg, ra), rg
		}},
	{name: "valid-condition-met", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			r := etlRule(s.aws.id(), 0)
			r.Require = sortedAttrs("team", "data", "env", "prod")
			ra := s.rule(s.azure, r)
			cr := etlCred()
			cr.Attributes = sortedAttrs("team", "data", "env", "prod", "zone", "eu")
			c := issue(t, s.aws, cr)
			return s.request(c), pathChain(s.aws.id(), credsOf(c), ra), ra
		}},

	// Delegation chains.
	{name: "valid-delegation-chain", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			ra := s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, nil)
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child, leaf), ra), ra
		}},
	{name: "valid-delegation-over-path-with-pop", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			rg, ra := twoHop(s, nil, nil)
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 2 {
					*cr = holds(t, *cr, seedHolder3)
				}
			})
			req := s.request(leaf, child, root)
			req.PoP = proof(t, leaf, s.azure.id(), challenge, seedHolder3)
			return req, pathChain(s.aws.id(), credsOf(root, child, leaf), rg, ra), ra
		}},
	{name: "scope-widening-delegation", want: authority.ReasonScopeWidening,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 1 {
					cr.Resources = "*" // wider than the root's corp-data/*
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child)), nil
		}},
	{name: "scope-widening-delegation-leaf-action", want: authority.ReasonScopeWidening,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 2 {
					cr.Actions = []string{"read", "write"} // the child has read only
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child, leaf)), nil
		}},
	{name: "scope-widening-delegation-open-actions", want: authority.ReasonScopeWidening,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 2 {
					cr.Actions = nil // "any" is wider than the child's [read]
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child, leaf)), nil
		}},
	{name: "scope-widening-delegation-window", want: authority.ReasonScopeWidening,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 1 {
					cr.NotAfter = unix(now.Add(2 * hour)) // the root ends in one
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child)), nil
		}},
	{name: "scope-widening-delegation-attribute", want: authority.ReasonScopeWidening,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 2 {
					cr.Attributes = sortedAttrs("team", "data", "clearance", "top")
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child, leaf)), nil
		}},
	{name: "scope-widening-delegation-subject", want: authority.ReasonScopeWidening,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 1 {
					cr.Subject = adminSubject
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child)), nil
		}},
	{name: "expired-parent-credential", want: authority.ReasonExpired,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 0 {
					cr.NotBefore, cr.NotAfter = unix(now.Add(-3*hour)), unix(now.Add(-2*hour))
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root)), nil
		}},
	{name: "not-yet-valid-parent-credential", want: authority.ReasonNotYetValid,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 1 {
					cr.NotBefore = unix(now.Add(time.Minute))
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child)), nil
		}},
	{name: "expired-delegated-credential", want: authority.ReasonExpired,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, func(i int, cr *authority.Credential) {
				if i == 2 {
					cr.NotAfter = unix(now)
				}
			})
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child, leaf)), nil
		}},
	{name: "revoked-parent-credential", want: authority.ReasonRevoked,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, nil)
			rev := s.revoke(s.aws, child.ID)
			return s.request(leaf, child, root), append(pathChain(s.aws.id(), credsOf(root, child)), rev.ID), nil
		}},
	{name: "revoked-delegated-credential", want: authority.ReasonRevoked,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, nil)
			rev := s.revoke(s.aws, leaf.ID)
			return s.request(leaf, child, root), append(pathChain(s.aws.id(), credsOf(root, child, leaf)), rev.ID), nil
		}},
	{name: "bad-signature-delegation-by-authority-key", want: authority.ReasonBadSignature,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// A delegated credential must be signed by its parent's holder
			// key; the authority's own key does not do.
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, _, _ := delegation3(t, s, nil)
			cr := etlCred()
			cr.Resources, cr.Actions, cr.Parent = dataResource, []string{"read"}, root.ID
			leaf := mustSign(t, authority.Declaration{Kind: authority.KindCredential, Authority: s.aws.id(), IssuedAt: unix(now.Add(-hour)), Credential: &cr}, s.aws.key)
			return s.request(leaf, root), pathChain(s.aws.id(), credsOf(root)), nil
		}},
	{name: "bad-signature-delegation-by-thief", want: authority.ReasonBadSignature,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, _, _ := delegation3(t, s, nil)
			leaf := delegate(t, root, seedThief, etlCred())
			return s.request(leaf, root), pathChain(s.aws.id(), credsOf(root)), nil
		}},
	{name: "bad-signature-parent-without-holder-key", want: authority.ReasonBadSignature,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root := issue(t, s.aws, etlCred()) // a bearer credential: cannot delegate
			leaf := delegate(t, root, seedHolder1, etlCred())
			return s.request(leaf, root), pathChain(s.aws.id(), credsOf(root)), nil
		}},
	{name: "malformed-delegation-missing-parent", want: authority.ReasonMalformed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			_, child, leaf := delegation3(t, s, nil)
			return s.request(leaf, child), ids(), nil
		}},
	{name: "malformed-delegation-wrong-order", want: authority.ReasonMalformed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, leaf := delegation3(t, s, nil)
			return s.request(leaf, root, child), ids(), nil
		}},
	{name: "malformed-delegation-for-root-credential", want: authority.ReasonMalformed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root, child, _ := delegation3(t, s, nil)
			return s.request(root, child), ids(), nil
		}},
	{name: "malformed-delegation-across-authorities", want: authority.ReasonMalformed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// A gcp-data credential cannot be the parent of an aws-prod one.
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			root := issue(t, s.gcp, holds(t, etlCred(), seedHolder1))
			cr := etlCred()
			cr.Parent = root.ID
			leaf := mustSign(t, authority.Declaration{Kind: authority.KindCredential, Authority: s.aws.id(), IssuedAt: unix(now.Add(-hour)), Credential: &cr}, fixedKey(t, seedHolder1))
			return s.request(leaf, root), ids(), nil
		}},
	{name: "condition-failed-dropped-attribute", want: authority.ReasonConditionFailed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// Delegation may drop an attribute; a rule requiring it then
			// refuses the delegated credential.
			r := etlRule(s.aws.id(), 0)
			r.Require = sortedAttrs("env", "prod")
			ra := s.rule(s.azure, r)
			root, child, leaf := delegation3(t, s, nil) // the child keeps team only
			return s.request(leaf, child, root), pathChain(s.aws.id(), credsOf(root, child, leaf), ra), ra
		}},
	{name: "resource-not-allowed-credential-scope", want: authority.ReasonResourceNotAllowed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			cr := etlCred()
			cr.Resources = "blob://corp-data/q4*"
			c := issue(t, s.aws, cr)
			return s.request(c), pathChain(s.aws.id(), credsOf(c)), nil
		}},
	{name: "action-not-allowed-credential-scope", want: authority.ReasonActionNotAllowed,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			r := etlRule(s.aws.id(), 0)
			r.Actions = []string{"read", "list"}
			s.rule(s.azure, r)
			cr := etlCred()
			cr.Actions = []string{"list"}
			c := issue(t, s.aws, cr)
			return s.request(c), pathChain(s.aws.id(), credsOf(c)), nil
		}},

	// Proofs of possession.
	{name: "valid-proof-of-possession", want: authority.ReasonOK,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			ra := s.rule(s.azure, etlRule(s.aws.id(), 0))
			c := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
			req := s.request(c)
			req.PoP = proof(t, c, s.azure.id(), challenge, seedHolder1)
			return req, pathChain(s.aws.id(), credsOf(c), ra), ra
		}},
	{name: "pop-missing", want: authority.ReasonProofOfPossession,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			c := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
			return s.request(c), pathChain(s.aws.id(), credsOf(c)), nil
		}},
	{name: "pop-wrong-audience", want: authority.ReasonProofOfPossession,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// A proof made for gcp-data's verifier, replayed to azure-corp.
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			c := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
			req := s.request(c)
			req.PoP = proof(t, c, s.gcp.id(), challenge, seedHolder1)
			return req, pathChain(s.aws.id(), credsOf(c)), nil
		}},
	{name: "pop-wrong-challenge", want: authority.ReasonProofOfPossession,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			c := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
			req := s.request(c)
			req.PoP = proof(t, c, s.azure.id(), []byte("an old challenge"), seedHolder1)
			return req, pathChain(s.aws.id(), credsOf(c)), nil
		}},
	{name: "pop-wrong-key", want: authority.ReasonProofOfPossession,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// A thief with the credential's bytes but not its key signs a
			// perfect proof payload with its own key.
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			c := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
			req := s.request(c)
			req.PoP = sealProof(t, authority.Proof{Context: authority.ProofContext, Credential: c.ID, Audience: s.azure.id(), Challenge: challenge, IssuedAt: unix(now)}, seedThief)
			return req, pathChain(s.aws.id(), credsOf(c)), nil
		}},
	{name: "pop-other-credential", want: authority.ReasonProofOfPossession,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			// The holder's proof for another of its credentials.
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			c := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
			other := etlCred()
			other.Serial = []byte("other")
			o := issue(t, s.aws, holds(t, other, seedHolder1))
			req := s.request(c)
			req.PoP = proof(t, o, s.azure.id(), challenge, seedHolder1)
			return req, pathChain(s.aws.id(), credsOf(c)), nil
		}},
	{name: "pop-wrong-context", want: authority.ReasonProofOfPossession,
		build: func(t fataler, s *sb) (authority.Request, []authority.ID, *authority.Signed) {
			s.rule(s.azure, etlRule(s.aws.id(), 0))
			c := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
			req := s.request(c)
			req.PoP = sealProof(t, authority.Proof{Context: "fednode-pop-v0", Credential: c.ID, Audience: s.azure.id(), Challenge: challenge, IssuedAt: unix(now)}, seedHolder1)
			return req, pathChain(s.aws.id(), credsOf(c)), nil
		}},
}

// sealProof seals a proof payload by hand with key n: how the tests make
// proofs that MakeProof refuses to.
func sealProof(t fataler, p authority.Proof, n byte) []byte {
	t.Helper()
	payload, err := detEnc(t).Marshal(p)
	if err != nil {
		t.Fatalf("encode proof: %v", err)
	}
	b, err := authority.Seal(payload, fixedKey(t, n))
	if err != nil {
		t.Fatalf("seal proof: %v", err)
	}
	return b
}

func detEnc(t fataler) cbor.EncMode {
	t.Helper()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatalf("cbor: %v", err)
	}
	return em
}

// makeChainFixtures builds every chain fixture.
func makeChainFixtures(t fataler) []fixture {
	t.Helper()
	em := detEnc(t)
	var out []fixture
	for _, c := range chainCases {
		s := newSB(t)
		req, chain, rule := c.build(t, s)
		sc := scenario{Graph: s.raws, Credential: req.Credential, Delegation: req.Delegation, Target: req.Target,
			Resource: req.Resource, Action: req.Action, PoP: req.PoP, Challenge: challenge, At: now.Unix(), Reason: c.want, Chain: chain}
		if rule != nil {
			sc.Rule = rule.ID
		}
		b, err := em.Marshal(sc)
		if err != nil {
			t.Fatalf("%s: encode: %v", c.name, err)
		}
		out = append(out, fixture{name: c.name + ".cbor", raw: b})
	}
	return out
}

func TestChainFixtures(t *testing.T) {
	checkGolden(t, "TestChainFixtures", filepath.Join("testdata", "chains"), makeChainFixtures)
}

// loadScenario decodes a chain fixture and builds its graph.
func loadScenario(t fataler, path string) (scenario, *authority.Graph) {
	t.Helper()
	var sc scenario
	if err := cbor.Unmarshal(readFile(t, path), &sc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	g := authority.NewGraph()
	for i, raw := range sc.Graph {
		s, err := authority.Parse(raw)
		if err != nil {
			t.Fatalf("%s: graph[%d]: %v", path, i, err)
		}
		if err := g.Apply(s); err != nil {
			t.Fatalf("%s: graph[%d]: %v", path, i, err)
		}
	}
	return sc, g
}

func (sc scenario) request() authority.Request {
	return authority.Request{Credential: sc.Credential, Delegation: sc.Delegation, Target: sc.Target, Resource: sc.Resource, Action: sc.Action, PoP: sc.PoP}
}

func (sc scenario) options() []authority.Option {
	return []authority.Option{authority.WithTime(time.Unix(sc.At, 0).UTC()), authority.WithChallenge(sc.Challenge)}
}

// TestChainScenarios judges every chain fixture from its file alone.
func TestChainScenarios(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "chains", "*.cbor"))
	if len(paths) < len(chainCases) {
		t.Fatalf("%d chain fixtures for %d cases (run: go test ./authority -run TestChainFixtures -update)", len(paths), len(chainCases))
	}
	seen := map[authority.Reason]bool{}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			sc, g := loadScenario(t, p)
			d, n := authority.VerifyCounting(g, sc.request(), sc.options()...)
			t.Logf("%s: %s", d.Reason, d.Message)
			seen[d.Reason] = true
			if d.Reason != sc.Reason || d.Allow != (sc.Reason == authority.ReasonOK) {
				t.Fatalf("reason %q (%s), want %q", d.Reason, d.Message, sc.Reason)
			}
			if !slices.Equal(d.Chain, sc.Chain) {
				t.Errorf("chain = %s, want %s", fmtIDs(d.Chain), fmtIDs(sc.Chain))
			}
			if d.Rule != sc.Rule {
				t.Errorf("rule = %s, want %s", d.Rule.Short(), sc.Rule.Short())
			}
			if n.Examined > authority.MaxRulesExamined || n.Scanned > authority.MaxRulesScanned {
				t.Errorf("examined %d rules, scanned %d: over the bounds", n.Examined, n.Scanned)
			}
			checkPathField(t, d)
		})
	}
	for _, r := range []authority.Reason{authority.ReasonScopeWidening, authority.ReasonHopsExceeded, authority.ReasonConditionFailed, authority.ReasonProofOfPossession} {
		if !seen[r] {
			t.Errorf("no chain fixture produced %q", r)
		}
	}
}

// checkPathField checks that Path is exactly the rules of Chain, in order,
// and is set exactly when Rule is, and that Rule is on it.
func checkPathField(t *testing.T, d authority.Decision) {
	t.Helper()
	if d.Rule.IsZero() != (len(d.Path) == 0) {
		t.Fatalf("rule %s with path %s", d.Rule.Short(), fmtIDs(d.Path))
	}
	if d.Rule.IsZero() {
		return
	}
	if !slices.Contains(d.Path, d.Rule) {
		t.Errorf("rule %s is not on the path %s", d.Rule.Short(), fmtIDs(d.Path))
	}
	tail := d.Chain[len(d.Chain)-2*len(d.Path):]
	for i, r := range d.Path {
		if tail[2*i+1] != r {
			t.Errorf("path %s is not the rules at the end of the chain %s", fmtIDs(d.Path), fmtIDs(d.Chain))
			break
		}
	}
	if d.Allow && d.Rule != d.Path[len(d.Path)-1] {
		t.Errorf("allow names rule %s, not the target's rule %s", d.Rule.Short(), d.Path[len(d.Path)-1].Short())
	}
}
