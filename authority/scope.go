package authority

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxAttrs bounds the attributes of a credential and the requirements of a
// rule.
const MaxAttrs = 16

// Attr is one attribute: a fact an issuer states about a principal
// (Credential.Attributes) or one a rule requires (Rule.Require). Matching is
// exact, byte for byte: no patterns, no case folding.
type Attr struct {
	Key   string `cbor:"1,keyasint"`
	Value string `cbor:"2,keyasint"`
}

// String returns key=value, for messages.
func (a Attr) String() string { return a.Key + "=" + a.Value }

// validAttrs checks a list of attributes: at most MaxAttrs, keys names
// (validName), values at most MaxPatternLen bytes of UTF-8 (they may hold
// commas and spaces, as a directory group name does), sorted by key with no
// key twice. Sorted and unique, because signed bytes must have one form: a
// list in another order, or with a key twice, would be a second encoding of
// the same set (or an unsatisfiable one).
func validAttrs(what string, attrs []Attr) error {
	if len(attrs) > MaxAttrs {
		return fmt.Errorf("%s: %d attributes, over %d", what, len(attrs), MaxAttrs)
	}
	for i, a := range attrs {
		if err := validName(what+" key", a.Key); err != nil {
			return err
		}
		if len(a.Value) > MaxPatternLen || !utf8.ValidString(a.Value) {
			return fmt.Errorf("%s %q: value longer than %d bytes or not UTF-8", what, a.Key, MaxPatternLen)
		}
		if i > 0 && attrs[i-1].Key >= a.Key {
			return fmt.Errorf("%s: keys must be sorted and unique: %q then %q", what, attrs[i-1].Key, a.Key)
		}
	}
	return nil
}

// validateScope checks the fields of a credential that narrow it and bind it
// to a holder or a parent.
func (c *Credential) validateScope() error {
	if err := validAttrs("credential attribute", c.Attributes); err != nil {
		return err
	}
	if c.Resources != "" {
		if err := validPattern("credential resources", c.Resources); err != nil {
			return err
		}
	}
	if len(c.Actions) > MaxActions {
		return fmt.Errorf("credential lists %d actions, over %d", len(c.Actions), MaxActions)
	}
	for i, a := range c.Actions {
		if err := validName("credential action", a); err != nil {
			return err
		}
		for _, b := range c.Actions[:i] {
			if a == b {
				return fmt.Errorf("credential action %q is listed twice", a)
			}
		}
	}
	if c.HolderKey != nil {
		if err := c.HolderKey.validate(); err != nil {
			return fmt.Errorf("credential holder key: %w", err)
		}
	}
	return nil
}

// attrsHold reports whether have carries every attribute of want exactly,
// and if not, the first one it misses (with have's value, if any).
// Both lists are sorted by key (validAttrs), so one merge pass suffices.
func attrsHold(want, have []Attr) (missing Attr, got string, present, ok bool) {
	i := 0
	for _, w := range want {
		for i < len(have) && have[i].Key < w.Key {
			i++
		}
		if i == len(have) || have[i].Key != w.Key {
			return w, "", false, false
		}
		if have[i].Value != w.Value {
			return w, have[i].Value, true, false
		}
	}
	return Attr{}, "", false, true
}

// GlobSubset reports whether every string that pattern child matches is
// also matched by pattern parent (see Match). It is conservative: true only
// when that is provable by one of these rules, false otherwise, including
// for some pairs where it does hold:
//
//   - child == parent;
//   - parent is made of stars only (it matches everything);
//   - child has no wildcard and parent matches it as a string;
//   - parent is P*S with exactly one star and no '?' (P and S literal), and
//     child begins with the literal bytes P and ends with the literal bytes
//     S, the two not overlapping: then every match of child is P, then
//     something, then S.
//
// That covers the narrowing delegators write ("blob://data/*" to
// "blob://data/q3/*" or to "blob://data/q3.parquet"). It errs only towards
// "not a subset", which denies a delegation (scope-widening) rather than
// allowing a wider one; and Verify checks the request against every link's
// own pattern as well, so even a wrong "true" would not widen a decision.
func GlobSubset(child, parent string) bool {
	if child == parent {
		return true
	}
	if parent != "" && strings.Trim(parent, "*") == "" {
		return true
	}
	if !strings.ContainsAny(child, "*?") {
		return Match(parent, child)
	}
	star := strings.IndexByte(parent, '*')
	if star < 0 || strings.Count(parent, "*") != 1 || strings.IndexByte(parent, '?') >= 0 {
		return false
	}
	p, s := parent[:star], parent[star+1:]
	// p and s are literal (no wildcard), so a child beginning with p begins
	// with literal bytes, which every match of child reproduces; likewise
	// for s at the end. Non-overlap makes the two regions distinct tokens.
	return len(p)+len(s) <= len(child) && strings.HasPrefix(child, p) && strings.HasSuffix(child, s)
}

// actionsSubset reports whether the action list child narrows parent: empty
// means "any", so an empty parent admits everything and an empty child is
// wider than any non-empty parent.
func actionsSubset(child, parent []string) bool {
	if len(parent) == 0 {
		return true
	}
	if len(child) == 0 {
		return false
	}
	for _, a := range child {
		found := false
		for _, b := range parent {
			if a == b {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// resourcesSubset is GlobSubset with empty meaning "any".
func resourcesSubset(child, parent string) bool {
	if parent == "" {
		return true
	}
	if child == "" {
		return false
	}
	return GlobSubset(child, parent)
}

// attrsSubset reports whether every attribute of child is also parent's:
// a delegated credential may drop attributes, never add or change one.
func attrsSubset(child, parent []Attr) bool {
	_, _, _, ok := attrsHold(child, parent)
	return ok
}

// windowWithin reports whether [cnbf, cnaf) lies within [pnbf, pnaf), zero
// bounds being open.
func windowWithin(cnbf, cnaf, pnbf, pnaf int64) bool {
	if pnbf != 0 && (cnbf == 0 || cnbf < pnbf) {
		return false
	}
	if pnaf != 0 && (cnaf == 0 || cnaf > pnaf) {
		return false
	}
	return true
}
