package authority_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fednode/fednode/authority"
)

// modelRule is what the naive model knows of a rule.
type modelRule struct {
	id             authority.ID
	target, source authority.ID
	subjects, res  string
	actions        []string
	nbf, naf       int64
}

// modelCred is what the naive model knows of a credential.
type modelCred struct {
	s        *authority.Signed
	issuer   authority.ID
	subject  string
	nbf, naf int64
}

type revocation struct{ target, issuer authority.ID }

// inWindow is the model of a validity window [nbf, naf) with open zero bounds.
func inWindow(nbf, naf, at int64) bool {
	return (nbf == 0 || at >= nbf) && (naf == 0 || at < naf)
}

// modelAllows states the verifier's contract without its code: some rule of
// the target for the issuer, not revoked by the target and in its window,
// matches subject, resource and action; the credential is the issuer's,
// signed, in its window and not revoked by the issuer; neither authority has
// revoked itself.
func modelAllows(known map[authority.ID]bool, rules []modelRule, revoked map[revocation]bool, c modelCred, req authority.Request, at int64) bool {
	if !known[c.issuer] || !known[req.Target] {
		return false
	}
	if revoked[revocation{c.issuer, c.issuer}] || revoked[revocation{req.Target, req.Target}] || revoked[revocation{c.s.ID, c.issuer}] {
		return false
	}
	if !inWindow(c.nbf, c.naf, at) {
		return false
	}
	for _, r := range rules {
		if r.target == req.Target && r.source == c.issuer && !revoked[revocation{r.id, r.target}] &&
			inWindow(r.nbf, r.naf, at) && slices.Contains(r.actions, req.Action) &&
			globRegexp(r.subjects).MatchString(c.subject) && globRegexp(r.res).MatchString(req.Resource) {
			return true
		}
	}
	return false
}

func TestVerifyMatchesModel(t *testing.T) {
	at := now.Unix()
	// Bounds near now, including now itself (valid from, expired at).
	bounds := []int64{0, at - 7200, at - 1, at, at + 1, at + 7200}
	// Patterns and values are drawn mostly from short lists that often
	// match each other, so that allows and every kind of deny are common.
	patterns := rapid.OneOf(
		rapid.SampledFrom([]string{"*", "a*", "*b", "a?", "?", "é*", "a", "ab", "*a*", "??", "*?*"}),
		rapid.StringOfN(rapid.RuneFrom([]rune{'a', 'b', 'é', '*', '?'}), 1, 5, -1),
	)
	values := rapid.OneOf(
		rapid.SampledFrom([]string{"a", "b", "ab", "aé", "ba", "é", "aa"}),
		rapid.StringOfN(rapid.RuneFrom([]rune{'a', 'b', 'é'}), 1, 4, -1),
	)
	actions := []string{"read", "write", "list"}
	window := func(t *rapid.T, label string) (time.Time, time.Time) {
		var nbf, naf int64
		if rapid.IntRange(0, 2).Draw(t, label+".bounded") == 0 {
			nbf = rapid.SampledFrom(bounds).Draw(t, label+".nbf")
			naf = rapid.SampledFrom(bounds).Draw(t, label+".naf")
		}
		if naf != 0 && naf <= nbf {
			naf = 0
		}
		toTime := func(u int64) time.Time {
			if u == 0 {
				return time.Time{}
			}
			return time.Unix(u, 0)
		}
		return toTime(nbf), toTime(naf)
	}
	// Keys are made once: the property is about the graph, not key parsing.
	var chains0 []*chain
	for i := range 5 {
		chains0 = append(chains0, newChain(t, fmt.Sprintf("auth-%d", i), byte(20+i)))
	}

	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "authorities")
		g := authority.NewGraph()
		known := map[authority.ID]bool{}
		chains := make([]*chain, 0, n+1)
		for i := range n + 1 {
			c := *chains0[i] // a fresh head for every run
			chains = append(chains, &c)
			if i < n { // the last one stays out of the graph
				if err := g.Apply(c.genesis); err != nil {
					t.Fatalf("genesis: %v", err)
				}
				known[c.id()] = true
			}
		}
		inGraph := chains[:n]
		pick := func(label string, cs []*chain) *chain {
			return cs[rapid.IntRange(0, len(cs)-1).Draw(t, label)]
		}
		// anyone is usually an authority of the graph, rarely the outsider.
		anyone := func(label string) *chain {
			if rapid.IntRange(0, 9).Draw(t, label+".outsider") == 0 {
				return chains[n]
			}
			return pick(label, inGraph)
		}
		byID := map[authority.ID]*chain{}
		for _, c := range chains {
			byID[c.id()] = c
		}
		// instance draws a string that pattern p usually matches.
		instance := func(label, p string) string {
			if rapid.IntRange(0, 3).Draw(t, label+".random") == 0 {
				return values.Draw(t, label)
			}
			var out []rune
			for i, r := range p {
				switch r {
				case '*':
					out = append(out, []rune(rapid.SampledFrom([]string{"", "a", "bé"}).Draw(t, fmt.Sprintf("%s.star%d", label, i)))...)
				case '?':
					out = append(out, 'b')
				default:
					out = append(out, r)
				}
			}
			if len(out) == 0 {
				return "a"
			}
			return string(out)
		}

		var rules []modelRule
		var targets []authority.ID // what revocations may name
		for i := range rapid.IntRange(0, 6).Draw(t, "rules") {
			l := fmt.Sprintf("rule%d", i)
			target, source := pick(l+".target", inGraph), anyone(l+".source")
			nbf, naf := window(t, l)
			acts := rapid.SliceOfNDistinct(rapid.SampledFrom(actions), 1, 2, rapid.ID[string]).Draw(t, l+".actions")
			subj, res := patterns.Draw(t, l+".subjects"), patterns.Draw(t, l+".resources")
			s := target.rule(t, source.id(), subj, res, acts, nbf, naf)
			if err := g.Apply(s); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			rules = append(rules, modelRule{id: s.ID, target: target.id(), source: source.id(), subjects: subj, res: res, actions: acts, nbf: unixOrZero(nbf), naf: unixOrZero(naf)})
			targets = append(targets, s.ID)
		}

		// The request is usually aimed at one rule: its source issues the
		// credential, its target is asked, and subject, resource and
		// action usually fit it; the graph and the windows decide the rest.
		issuer, target := anyone("cred.issuer"), anyone("req.target")
		subject, resource := values.Draw(t, "cred.subject"), values.Draw(t, "req.resource")
		action := rapid.SampledFrom(actions).Draw(t, "req.action")
		if len(rules) > 0 && rapid.IntRange(0, 3).Draw(t, "aimed") > 0 {
			r := rapid.SampledFrom(rules).Draw(t, "aim")
			issuer, target = byID[r.source], byID[r.target]
			subject, resource = instance("cred.subject", r.subjects), instance("req.resource", r.res)
			if rapid.IntRange(0, 3).Draw(t, "aim.action") > 0 {
				action = rapid.SampledFrom(r.actions).Draw(t, "req.action")
			}
		}
		nbf, naf := window(t, "cred")
		cs := issuer.credential(t, subject, nbf, naf)
		cred := modelCred{s: cs, issuer: issuer.id(), subject: subject, nbf: unixOrZero(nbf), naf: unixOrZero(naf)}
		targets = append(targets, cs.ID)
		for _, c := range chains {
			targets = append(targets, c.id())
		}

		revoked := map[revocation]bool{}
		for i := range rapid.IntRange(0, 2).Draw(t, "revocations") {
			l := fmt.Sprintf("rev%d", i)
			by := pick(l+".by", inGraph)
			what := rapid.SampledFrom(targets).Draw(t, l+".target")
			if err := g.Apply(by.revoke(t, what)); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			revoked[revocation{what, by.id()}] = true
		}

		req := authority.Request{
			Credential: cs.Raw,
			Target:     target.id(),
			Resource:   resource,
			Action:     action,
		}
		d := authority.Verify(g, req, authority.WithTime(now))
		want := modelAllows(known, rules, revoked, cred, req, at)
		if d.Allow != want {
			t.Fatalf("Verify allow=%v (%s: %s), model says %v", d.Allow, d.Reason, d.Message, want)
		}
		if d.Allow != (d.Reason == authority.ReasonOK) || !slices.Contains(authority.Reasons, d.Reason) {
			t.Fatalf("reason %q with allow=%v", d.Reason, d.Allow)
		}
		if d.Allow && (len(d.Chain) != 4 || d.Chain[0] != cred.issuer || d.Chain[1] != cs.ID || d.Chain[2] != req.Target) {
			t.Fatalf("allow with chain %s", fmtIDs(d.Chain))
		}
		if d.GraphVersion != g.Version() {
			t.Fatalf("graph version %d, want %d", d.GraphVersion, g.Version())
		}
	})
}
