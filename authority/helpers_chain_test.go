package authority_test

import (
	"fmt"
	"slices"
	"time"

	"github.com/fednode/fednode/authority"
)

// Helpers for paths of rules, delegation chains and proofs of possession.

// More fixture key seeds: authorities beyond the standard two, and holder
// keys (held by workloads, never declared by any authority).
const (
	seedOkta    byte = 5
	seedPKI     byte = 6
	seedHolder1 byte = 41
	seedHolder2 byte = 42
	seedHolder3 byte = 43
	seedThief   byte = 49
	// seedExplode is the first of the seeds of the graphs built to explode.
	seedExplode byte = 100
)

var (
	hour = time.Hour
	day  = 24 * time.Hour
)

// challenge is the nonce the fixture verifiers issue.
var challenge = []byte("fixture-challenge-0001")

// sb builds a scenario graph: four authorities (aws-prod, the home of the
// principals; gcp-data and okta-corp, intermediates; azure-corp, the
// target), recording every declaration applied, in order.
type sb struct {
	t                     fataler
	g                     *authority.Graph
	raws                  [][]byte
	aws, gcp, okta, azure *chain
}

func newSB(t fataler) *sb {
	t.Helper()
	s := &sb{t: t, g: authority.NewGraph(),
		aws: newChain(t, "aws-prod", seedAWS), gcp: newChain(t, "gcp-data", seedGCP),
		okta: newChain(t, "okta-corp", seedOkta), azure: newChain(t, "azure-corp", seedAzure)}
	for _, c := range []*chain{s.aws, s.gcp, s.okta, s.azure} {
		s.add(c.genesis)
	}
	return s
}

// add applies x to the graph and records it.
func (s *sb) add(x *authority.Signed) *authority.Signed {
	s.t.Helper()
	if err := s.g.Apply(x); err != nil {
		s.t.Fatalf("apply %v %s: %v", x.Decl.Kind, x.ID.Short(), err)
	}
	s.raws = append(s.raws, x.Raw)
	return x
}

// found adds the genesis of a further authority.
func (s *sb) found(name string, seed byte) *chain {
	s.t.Helper()
	c := newChain(s.t, name, seed)
	s.add(c.genesis)
	return c
}

// etlRule is the standard rule body: etl roles may read corp-data, a day
// either side of now, accepting source, passing on hops further hops.
func etlRule(source authority.ID, hops uint8) authority.Rule {
	return authority.Rule{Source: source, Subjects: etlPattern, Resources: dataPattern, Actions: []string{"read"},
		NotBefore: unix(now.Add(-day)), NotAfter: unix(now.Add(day)), Hops: hops}
}

// rule signs r as c's next declaration and applies it.
func (s *sb) rule(c *chain, r authority.Rule) *authority.Signed {
	s.t.Helper()
	return s.add(c.next(s.t, authority.Declaration{Kind: authority.KindRule, Rule: &r}))
}

// revoke has c revoke id.
func (s *sb) revoke(c *chain, id authority.ID) *authority.Signed {
	s.t.Helper()
	return s.add(c.revoke(s.t, id))
}

// etlCred is the standard credential body: the etl loader, an hour either
// side of now.
func etlCred() authority.Credential {
	return authority.Credential{Subject: etlSubject, NotBefore: unix(now.Add(-hour)), NotAfter: unix(now.Add(hour))}
}

// holds returns cr bound to the holder key of seed n.
func holds(t fataler, cr authority.Credential, n byte) authority.Credential {
	t.Helper()
	k := fixedKey(t, n).Public()
	cr.HolderKey = &k
	return cr
}

// issue signs cr as a root credential of c.
func issue(t fataler, c *chain, cr authority.Credential) *authority.Signed {
	t.Helper()
	return mustSign(t, authority.Declaration{Kind: authority.KindCredential, Authority: c.id(), IssuedAt: unix(now.Add(-2 * hour)), Credential: &cr}, c.key)
}

// delegate signs cr as a child of parent with the key of seed by (the
// parent's holder key, unless a test wants otherwise).
func delegate(t fataler, parent *authority.Signed, by byte, cr authority.Credential) *authority.Signed {
	t.Helper()
	cr.Parent = parent.ID
	return mustSign(t, authority.Declaration{Kind: authority.KindCredential, Authority: parent.Decl.Authority, IssuedAt: unix(now.Add(-hour)), Credential: &cr}, fixedKey(t, by))
}

// proof makes the proof of possession of cred for target with holder key n.
func proof(t fataler, cred *authority.Signed, target authority.ID, ch []byte, n byte) []byte {
	t.Helper()
	p, err := authority.MakeProof(cred, target, ch, now, fixedKey(t, n))
	if err != nil {
		t.Fatalf("make proof: %v", err)
	}
	return p
}

// raws returns the envelopes of links, in the order given.
func raws(links ...*authority.Signed) [][]byte {
	out := make([][]byte, len(links))
	for i, l := range links {
		out[i] = l.Raw
	}
	return out
}

// pathChain is the decision chain of a credential chain (root first) over
// a path of rules (home end first).
func pathChain(home authority.ID, creds []*authority.Signed, rules ...*authority.Signed) []authority.ID {
	out := []authority.ID{home}
	for _, c := range creds {
		out = append(out, c.ID)
	}
	for _, r := range rules {
		out = append(out, r.Decl.Authority, r.ID)
	}
	return out
}

func credsOf(c ...*authority.Signed) []*authority.Signed { return c }

// request asks the target to let cred read the standard resource.
func (s *sb) request(cred *authority.Signed, delegation ...*authority.Signed) authority.Request {
	return authority.Request{Credential: cred.Raw, Delegation: raws(delegation...), Target: s.azure.id(), Resource: dataResource, Action: "read"}
}

// sortedAttrs builds an attribute list from key, value pairs, sorted.
func sortedAttrs(kv ...string) []authority.Attr {
	var out []authority.Attr
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, authority.Attr{Key: kv[i], Value: kv[i+1]})
	}
	slices.SortFunc(out, func(a, b authority.Attr) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out
}

// countingView wraps a View and counts the rules RulesFor hands out: the
// work the path search does, measured from outside.
type countingView struct {
	authority.View
	calls, rules int
}

func (c *countingView) RulesFor(target authority.ID) []*authority.RuleInfo {
	rs := c.View.RulesFor(target)
	c.calls++
	c.rules += len(rs)
	return rs
}

// explode builds, on s, a layered graph that a naive search would take
// exponential time over: azure-corp accepts each of `width` authorities of
// layer 1, each of which accepts each of layer 2, and so on for `layers`
// layers, every rule matching the standard request and passing on every
// hop; the last layer accepts nobody (rules for an authority that is not
// in the graph). No path reaches aws-prod.
func (s *sb) explode(width, layers int) {
	s.t.Helper()
	seed := seedExplode
	var layer []*chain
	for l := range layers {
		var next []*chain
		for i := range width {
			next = append(next, s.found(fmt.Sprintf("x-%d-%d", l, i), seed))
			seed++
		}
		uppers := layer
		if l == 0 {
			uppers = []*chain{s.azure}
		}
		for _, u := range uppers {
			for _, n := range next {
				s.rule(u, etlRule(n.id(), authority.MaxPathLength))
			}
		}
		layer = next
	}
	for _, n := range layer {
		s.rule(n, etlRule(authority.ID{0xee}, 0))
	}
}

func ptr[T any](v T) *T { return &v }
