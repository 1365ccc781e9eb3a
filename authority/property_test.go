package authority_test

import (
	"fmt"
	"slices"
	"testing"

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
	hops           uint8
	require        []authority.Attr
	// order is the rule's place among all rules made; among one
	// declarer's rules it is their chain order.
	order int
}

// modelLink is what the naive model knows of one credential of the
// presented chain.
type modelLink struct {
	s *authority.Signed
	c authority.Credential
	// sigOK: signed by the key the verifier must check it against (the
	// issuer's for the root, the parent's holder key for the others).
	sigOK bool
}

type revocation struct{ target, issuer authority.ID }

// inWindow is the model of a validity window [nbf, naf) with open zero bounds.
func inWindow(nbf, naf, at int64) bool {
	return (nbf == 0 || at >= nbf) && (naf == 0 || at < naf)
}

// modelWithin is the model of one window lying within another, zero bounds
// open (+-infinity).
func modelWithin(cnbf, cnaf, pnbf, pnaf int64) bool {
	lo := func(x int64) int64 {
		if x == 0 {
			return -1 << 62
		}
		return x
	}
	hi := func(x int64) int64 {
		if x == 0 {
			return 1 << 62
		}
		return x
	}
	return lo(cnbf) >= lo(pnbf) && hi(cnaf) <= hi(pnaf)
}

func hasAll(want, have []authority.Attr) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// modelChainOK states the credential chain's contract without the
// verifier's code: the issuer is known and has not revoked itself; every
// link is signed by the right key, unrevoked, in its window, and within its
// parent (same subject, window within, resources a GlobSubset, actions and
// attributes subsets; empty scope means any); every link's own scope covers
// the request; a holder-bound leaf comes with a good proof.
func modelChainOK(known map[authority.ID]bool, revoked map[revocation]bool, links []modelLink, popOK bool, req authority.Request, at int64) bool {
	issuer := links[0].s.Decl.Authority
	if !known[issuer] || revoked[revocation{issuer, issuer}] {
		return false
	}
	for i, l := range links {
		c := l.c
		if !l.sigOK || revoked[revocation{l.s.ID, issuer}] || !inWindow(c.NotBefore, c.NotAfter, at) {
			return false
		}
		if i > 0 {
			p := links[i-1].c
			if c.Subject != p.Subject || !modelWithin(c.NotBefore, c.NotAfter, p.NotBefore, p.NotAfter) ||
				(p.Resources != "" && (c.Resources == "" || !authority.GlobSubset(c.Resources, p.Resources))) ||
				(len(p.Actions) > 0 && (len(c.Actions) == 0 || !hasAllStrings(c.Actions, p.Actions))) ||
				!hasAll(c.Attributes, p.Attributes) {
				return false
			}
		}
		if c.Resources != "" && !globRegexp(c.Resources).MatchString(req.Resource) {
			return false
		}
		if len(c.Actions) > 0 && !slices.Contains(c.Actions, req.Action) {
			return false
		}
	}
	leaf := links[len(links)-1].c
	return leaf.HolderKey == nil || popOK
}

func hasAllStrings(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// modelRuleOK is one rule's contract, beneath rules below it on the path.
func modelRuleOK(r modelRule, revoked map[revocation]bool, leaf authority.Credential, req authority.Request, at int64, beneath int) bool {
	return int(r.hops) >= beneath && !revoked[revocation{r.id, r.target}] && !revoked[revocation{r.target, r.target}] &&
		inWindow(r.nbf, r.naf, at) && slices.Contains(r.actions, req.Action) &&
		globRegexp(r.subjects).MatchString(leaf.Subject) && globRegexp(r.res).MatchString(req.Resource) &&
		hasAll(r.require, leaf.Attributes)
}

// modelPaths enumerates every path of rules from home to target of at most
// MaxPathLength rules through distinct authorities, each rule passing its
// contract, and returns the one Verify must choose (home end first): the
// shortest, then the first comparing rules from the target's end by order.
func modelPaths(rules []modelRule, revoked map[revocation]bool, leaf authority.Credential, home authority.ID, req authority.Request, at int64) ([]modelRule, bool) {
	var all [][]modelRule // each from the target's end
	var walk func(x authority.ID, stack []modelRule, visited []authority.ID)
	walk = func(x authority.ID, stack []modelRule, visited []authority.ID) {
		if len(stack) == authority.MaxPathLength {
			return
		}
		for _, r := range rules {
			if r.target != x {
				continue
			}
			next := append(slices.Clone(stack), r)
			if r.source == home {
				// Only a single rule may lead from an authority to itself.
				if len(stack) == 0 || home != req.Target {
					all = append(all, next)
				}
				continue
			}
			if slices.Contains(visited, r.source) {
				continue
			}
			walk(r.source, next, append(slices.Clone(visited), r.source))
		}
	}
	walk(req.Target, nil, []authority.ID{req.Target})
	var best []modelRule
	for _, p := range all {
		ok := true
		for i, r := range p {
			if !modelRuleOK(r, revoked, leaf, req, at, len(p)-1-i) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if best == nil || len(p) < len(best) || (len(p) == len(best) && lessByOrder(p, best)) {
			best = p
		}
	}
	if best == nil {
		return nil, false
	}
	slices.Reverse(best)
	return best, true
}

func lessByOrder(a, b []modelRule) bool {
	for i := range a {
		if a[i].order != b[i].order {
			return a[i].order < b[i].order
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
	universe := []authority.Attr{{Key: "env", Value: "a"}, {Key: "env", Value: "b"}, {Key: "team", Value: "a"}, {Key: "zone", Value: "b"}}
	// attrs draws a valid attribute list (sorted, one value per key).
	attrs := func(t *rapid.T, label string, from []authority.Attr) []authority.Attr {
		var out []authority.Attr
		for i, a := range from {
			if len(out) > 0 && out[len(out)-1].Key == a.Key {
				continue
			}
			if rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("%s.%d", label, i)) == 0 {
				out = append(out, a)
			}
		}
		return out
	}
	window := func(t *rapid.T, label string) (int64, int64) {
		var nbf, naf int64
		if rapid.IntRange(0, 2).Draw(t, label+".bounded") == 0 {
			nbf = rapid.SampledFrom(bounds).Draw(t, label+".nbf")
			naf = rapid.SampledFrom(bounds).Draw(t, label+".naf")
		}
		if naf != 0 && naf <= nbf {
			naf = 0
		}
		return nbf, naf
	}
	// Keys are made once: the property is about the graph, not key parsing.
	var chains0 []*chain
	for i := range 6 {
		chains0 = append(chains0, newChain(t, fmt.Sprintf("auth-%d", i), byte(20+i)))
	}
	holderSeeds := []byte{80, 81, 82, 83}
	holderKeys := map[byte]authority.PublicKey{}
	for _, n := range holderSeeds {
		holderKeys[n] = fixedKey(t, n).Public()
	}
	var allows, pathAllows, delegatedAllows, popAllows, exhausted int
	reasons := map[authority.Reason]int{}

	rapid.Check(t, func(t *rapid.T) {
		// rapid favours small numbers, so rare is true at most about p
		// times in a hundred, and often at least p times.
		rare := func(label string, p int) bool { return rapid.IntRange(1, 100).Draw(t, label) > 100-p }
		often := func(label string, p int) bool { return !rare(label, 100-p) }
		n := rapid.IntRange(2, 5).Draw(t, "authorities")
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
			if rare(label+".outsider", 5) {
				return chains[n]
			}
			return pick(label, inGraph)
		}
		// patternFor draws a pattern that matches v.
		patternFor := func(label, v string) string {
			r := []rune(v)
			k := rapid.IntRange(0, len(r)).Draw(t, label+".cut")
			switch rapid.IntRange(0, 3).Draw(t, label+".form") {
			case 0:
				return "*"
			case 1:
				return string(r[:k]) + "*"
			case 2:
				if k < len(r) {
					return string(r[:k]) + "?" + string(r[k+1:])
				}
			}
			return v
		}

		// The request, drawn first so that rules can be aimed at it.
		home, target := anyone("home"), anyone("target")
		subject, resource := values.Draw(t, "subject"), values.Draw(t, "resource")
		action := rapid.SampledFrom(actions).Draw(t, "action")

		var rules []modelRule
		var targets []authority.ID // what revocations may name
		addRule := func(l string, decl, source *chain, aimed bool, minHops int) {
			nbf, naf := window(t, l)
			acts := rapid.SliceOfNDistinct(rapid.SampledFrom(actions), 1, 2, rapid.ID[string]).Draw(t, l+".actions")
			subj, res := patterns.Draw(t, l+".subjects"), patterns.Draw(t, l+".resources")
			if aimed {
				// Usually fits the request; the draws decide the rest.
				if often(l+".fit", 90) {
					subj, res = patternFor(l+".fs", subject), patternFor(l+".fr", resource)
					if !slices.Contains(acts, action) {
						acts = append(acts, action)
					}
					nbf, naf = 0, 0
				}
			}
			hops := uint8(rapid.IntRange(0, 3).Draw(t, l+".hops"))
			if aimed && often(l+".enough", 90) {
				hops = uint8(max(int(hops), minHops))
			}
			req := attrs(t, l+".require", universe)
			if often(l+".norequire", 75) {
				req = nil
			}
			r := authority.Rule{Source: source.id(), Subjects: subj, Resources: res, Actions: acts, NotBefore: nbf, NotAfter: naf, Hops: hops, Require: req}
			s := decl.next(t, authority.Declaration{Kind: authority.KindRule, Rule: &r})
			if err := g.Apply(s); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			rules = append(rules, modelRule{id: s.ID, target: decl.id(), source: source.id(), subjects: subj, res: res, actions: acts,
				nbf: nbf, naf: naf, hops: hops, require: req, order: len(rules)})
			targets = append(targets, s.ID)
		}
		// A planted path from home to target through distinct
		// authorities, then noise.
		if often("planted", 80) && home != target {
			var mids []*chain
			for _, c := range inGraph {
				if c != home && c != target && often("mid."+c.name, 50) && len(mids) < authority.MaxPathLength-1 {
					mids = append(mids, c)
				}
			}
			hopsFrom := append([]*chain{home}, mids...)
			to := append(slices.Clone(mids), target)
			for i := range to {
				if known[to[i].id()] {
					addRule(fmt.Sprintf("plant%d", i), to[i], hopsFrom[i], true, i)
				}
			}
		}
		for i := range rapid.IntRange(0, 4).Draw(t, "rules") {
			addRule(fmt.Sprintf("rule%d", i), pick(fmt.Sprintf("rule%d.decl", i), inGraph), anyone(fmt.Sprintf("rule%d.source", i)), rapid.Bool().Draw(t, fmt.Sprintf("rule%d.aimed", i)), 0)
		}

		// The credential chain: a root of home, then 0 to 2 delegations.
		depth := rapid.IntRange(1, 3).Draw(t, "depth")
		var links []modelLink
		for i := range depth {
			l := fmt.Sprintf("link%d", i)
			var c authority.Credential
			if i == 0 {
				c.Subject = subject
				if rare(l+".othersubject", 5) {
					c.Subject = values.Draw(t, l+".subject")
				}
				c.NotBefore, c.NotAfter = window(t, l)
				c.Attributes = attrs(t, l+".attrs", universe)
				if rapid.Bool().Draw(t, l+".scoped") {
					c.Resources = rapid.SampledFrom([]string{"*", resource, "a*", "*b"}).Draw(t, l+".res")
					c.Actions = rapid.SliceOfNDistinct(rapid.SampledFrom(actions), 1, 3, rapid.ID[string]).Draw(t, l+".acts")
				}
			} else {
				p := links[i-1].c
				c = p
				c.HolderKey, c.Serial = nil, nil
				// Usually narrow, sometimes widen one thing.
				switch 19 - rapid.IntRange(0, 19).Draw(t, l+".change") {
				case 0:
					c.Subject = values.Draw(t, l+".subject")
				case 1:
					c.NotBefore, c.NotAfter = window(t, l)
				case 2:
					c.Resources = rapid.SampledFrom([]string{"", "*", resource, "a*"}).Draw(t, l+".res")
				case 3:
					c.Actions = rapid.SliceOfNDistinct(rapid.SampledFrom(actions), 0, 3, rapid.ID[string]).Draw(t, l+".acts")
				case 4:
					c.Attributes = attrs(t, l+".attrs", universe)
				case 5:
					c.Attributes = attrs(t, l+".attrs", p.Attributes)
					if p.Resources != "" {
						c.Resources = resource
					}
				}
			}
			last := i == depth-1
			holder := byte(0)
			if !last || often(l+".bound", 40) {
				if last || !rare(l+".bearer", 5) {
					holder = rapid.SampledFrom(holderSeeds).Draw(t, l+".holder")
					k := holderKeys[holder]
					c.HolderKey = &k
				}
			}
			c.Serial = []byte{byte(i), holder}
			var s *authority.Signed
			sigOK := true
			if i == 0 {
				key := home.key
				if rare(l+".forged", 3) {
					key, sigOK = fixedKey(t, seedStranger), false
				}
				s = mustSign(t, authority.Declaration{Kind: authority.KindCredential, Authority: home.id(), Credential: &c}, key)
			} else {
				parent := links[i-1]
				signer := holderSeeds[0]
				if parent.c.HolderKey != nil {
					signer = holderSeedOf(holderKeys, *parent.c.HolderKey)
				} else {
					sigOK = false
				}
				if rare(l+".wrongsigner", 5) {
					signer = rapid.SampledFrom(holderSeeds).Draw(t, l+".signer")
					sigOK = sigOK && holderKeys[signer].Alg == parent.c.HolderKey.Alg && string(holderKeys[signer].Key) == string(parent.c.HolderKey.Key)
				}
				c.Parent = parent.s.ID
				s = mustSign(t, authority.Declaration{Kind: authority.KindCredential, Authority: home.id(), Credential: &c}, fixedKey(t, signer))
			}
			links = append(links, modelLink{s: s, c: c, sigOK: sigOK})
			targets = append(targets, s.ID)
		}
		leaf := links[len(links)-1]
		for _, c := range chains {
			targets = append(targets, c.id())
		}

		revoked := map[revocation]bool{}
		for i := range rapid.SampledFrom([]int{0, 0, 0, 0, 0, 1, 1, 2}).Draw(t, "revocations") {
			l := fmt.Sprintf("rev%d", i)
			by := pick(l+".by", inGraph)
			what := rapid.SampledFrom(targets).Draw(t, l+".target")
			if err := g.Apply(by.revoke(t, what)); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			revoked[revocation{what, by.id()}] = true
		}

		req := authority.Request{Credential: leaf.s.Raw, Target: target.id(), Resource: resource, Action: action}
		for i := len(links) - 2; i >= 0; i-- {
			req.Delegation = append(req.Delegation, links[i].s.Raw)
		}
		popOK := false
		if leaf.c.HolderKey != nil {
			seed := holderSeedOf(holderKeys, *leaf.c.HolderKey)
			switch 4 - rapid.IntRange(0, 4).Draw(t, "pop") {
			case 0: // none
			case 1:
				req.PoP = proof(t, leaf.s, chains[0].id(), challenge, seed) // maybe the wrong audience
				popOK = chains[0].id() == target.id()
			default:
				req.PoP = proof(t, leaf.s, target.id(), challenge, seed)
				popOK = true
			}
		}

		d, cost := authority.VerifyCounting(g, req, authority.WithTime(now), authority.WithChallenge(challenge))
		examined := cost.Examined
		if cost.Scanned > authority.MaxRulesScanned {
			t.Fatalf("scanned %d rule entries", cost.Scanned)
		}
		reasons[d.Reason]++
		if d.Allow != (d.Reason == authority.ReasonOK) || !slices.Contains(authority.Reasons, d.Reason) {
			t.Fatalf("reason %q with allow=%v", d.Reason, d.Allow)
		}
		if d.GraphVersion != g.Version() {
			t.Fatalf("graph version %d, want %d", d.GraphVersion, g.Version())
		}
		if examined > authority.MaxRulesExamined {
			t.Fatalf("examined %d rules", examined)
		}
		chainOK := modelChainOK(known, revoked, links, popOK, req, at)
		var path []modelRule
		want := false
		if chainOK && known[target.id()] && !revoked[revocation{target.id(), target.id()}] {
			path, want = modelPaths(rules, revoked, leaf.c, home.id(), req, at)
		}
		if examined == authority.MaxRulesExamined {
			// The search ran out: deny is all that is promised.
			exhausted++
			if d.Allow && !want {
				t.Fatalf("allow (%s) beyond the model after an exhausted search", d.Message)
			}
			return
		}
		if d.Allow != want {
			t.Fatalf("Verify allow=%v (%s: %s), model says %v (chain ok %v)", d.Allow, d.Reason, d.Message, want, chainOK)
		}
		if !d.Allow {
			return
		}
		// allow ⇒ every link verifies, and the request lies within the
		// intersection of the chosen path's scopes.
		var wantPath []authority.ID
		for _, r := range path {
			wantPath = append(wantPath, r.id)
		}
		if !slices.Equal(d.Path, wantPath) {
			t.Fatalf("path %s, model chooses %s", fmtIDs(d.Path), fmtIDs(wantPath))
		}
		for i, r := range path {
			if !modelRuleOK(r, revoked, leaf.c, req, at, i) {
				t.Fatalf("allowed over rule %s outside its scope", r.id.Short())
			}
		}
		for _, l := range links {
			if !l.sigOK {
				t.Fatalf("allowed with a badly signed link %s", l.s.ID.Short())
			}
		}
		wantChain := []authority.ID{home.id()}
		for _, l := range links {
			wantChain = append(wantChain, l.s.ID)
		}
		for _, r := range path {
			wantChain = append(wantChain, r.target, r.id)
		}
		if !slices.Equal(d.Chain, wantChain) || d.Rule != path[len(path)-1].id {
			t.Fatalf("allow with chain %s rule %s, want %s", fmtIDs(d.Chain), d.Rule.Short(), fmtIDs(wantChain))
		}
		allows++
		if len(path) > 1 {
			pathAllows++
		}
		if len(links) > 1 {
			delegatedAllows++
		}
		if req.PoP != nil {
			popAllows++
		}
	})
	t.Logf("allows %d (over paths %d, delegated %d, with proof %d), exhausted searches %d; reasons %v", allows, pathAllows, delegatedAllows, popAllows, exhausted, reasons)
	if allows == 0 || pathAllows == 0 || delegatedAllows == 0 || popAllows == 0 {
		t.Errorf("the generator makes too few allows of some kind: %d, %d, %d, %d", allows, pathAllows, delegatedAllows, popAllows)
	}
}

// holderSeedOf finds the seed of a holder key.
func holderSeedOf(keys map[byte]authority.PublicKey, k authority.PublicKey) byte {
	for n, h := range keys {
		if h.Alg == k.Alg && string(h.Key) == string(k.Key) {
			return n
		}
	}
	panic("unknown holder key")
}
