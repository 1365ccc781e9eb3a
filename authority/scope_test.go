package authority_test

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fednode/fednode/authority"
)

func TestGlobSubset(t *testing.T) {
	tests := []struct {
		name          string
		child, parent string
		want          bool
	}{
		{name: "equal literals", child: "a", parent: "a", want: true},
		{name: "equal patterns", child: "a*b?", parent: "a*b?", want: true},
		{name: "star covers all", child: "anything*?", parent: "*", want: true},
		{name: "stars cover all", child: "x", parent: "***", want: true},
		{name: "literal under prefix", child: dataResource, parent: dataPattern, want: true},
		{name: "literal not under prefix", child: "blob://hr/x", parent: dataPattern, want: false},
		{name: "literal under inner pattern", child: "abc", parent: "a?c", want: true},
		{name: "prefix under prefix", child: "blob://corp-data/q3*", parent: dataPattern, want: true},
		{name: "prefix under shorter prefix", child: "ab*", parent: "a*", want: true},
		{name: "wider prefix", child: "a*", parent: "ab*", want: false},
		{name: "suffix under suffix", child: "*/q3.parquet", parent: "*.parquet", want: true},
		{name: "prefix and suffix", child: "a/x*y.csv", parent: "a/*.csv", want: true},
		{name: "prefix and suffix overlapping in the child", child: "a*", parent: "a*a", want: false},
		{name: "question in the child under a star", child: "a?", parent: "a*", want: true},
		{name: "question child vs question parent is not proved", child: "a?", parent: "?" + "?", want: false},
		{name: "star child vs literal parent", child: "a*", parent: "a", want: false},
		{name: "star child vs question parent", child: "*", parent: "?", want: false},
		{name: "two stars in the parent are not proved", child: "axbyc*", parent: "a*b*", want: false},
		{name: "child starting with a wildcard under a prefix", child: "*x", parent: "a*", want: false},
		{name: "child ending with a wildcard under a suffix", child: "x?", parent: "*x", want: false},
		{name: "empty parent", child: "a", parent: "", want: false},
		{name: "empty child", child: "", parent: "*", want: true},
		{name: "unicode prefix", child: "données/é*", parent: "données/*", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := authority.GlobSubset(tt.child, tt.parent); got != tt.want {
				t.Fatalf("GlobSubset(%q, %q) = %v, want %v", tt.child, tt.parent, got, tt.want)
			}
		})
	}
}

// TestGlobSubsetSound: whenever GlobSubset says child ⊆ parent, every string
// child matches is matched by parent. Strings are drawn from instances of
// the child (so they match it) over an alphabet with a multi-byte rune and
// an invalid byte.
func TestGlobSubsetSound(t *testing.T) {
	alpha := []rune{'a', 'b', 'é', '*', '?'}
	pattern := rapid.StringOfN(rapid.RuneFrom(alpha), 1, 6, -1)
	rapid.Check(t, func(t *rapid.T) {
		parent := pattern.Draw(t, "parent")
		child := rapid.OneOf(
			pattern,
			// Narrowings of parent: a literal in place of a star, a
			// prefix added, a star replaced by a longer pattern.
			rapid.Custom(func(t *rapid.T) string {
				repl := rapid.SampledFrom([]string{"", "a", "é", "b*", "?", "*a"}).Draw(t, "repl")
				return strings.Replace(parent, "*", repl, 1)
			}),
		).Draw(t, "child")
		if !authority.GlobSubset(child, parent) {
			return
		}
		for i := range 20 {
			s := instanceOf(t, child, i)
			if authority.Match(child, s) && !authority.Match(parent, s) {
				t.Fatalf("GlobSubset(%q, %q) but %q matches the child only", child, parent, s)
			}
		}
	})
}

// instanceOf draws a string that pattern p matches.
func instanceOf(t *rapid.T, p string, n int) string {
	var b strings.Builder
	for i, r := range p {
		switch r {
		case '*':
			b.WriteString(rapid.SampledFrom([]string{"", "a", "é", "\xff", "ab", "*", "éa\xc3"}).Draw(t, "star"+string(rune('0'+n))+string(rune('0'+i%10))))
		case '?':
			b.WriteString(rapid.SampledFrom([]string{"a", "é", "\xff", "?"}).Draw(t, "q"+string(rune('0'+n))))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestNewFieldsValidate: the new fields of rules and credentials are checked
// when signing (and so when parsing: Parse validates the same way).
func TestNewFieldsValidate(t *testing.T) {
	w := newWorld(t)
	good := authority.PublicKey{Alg: authority.AlgEd25519, Key: fixedKey(t, seedHolder1).Public().Key}
	tests := []struct {
		name string
		rule *authority.Rule
		cred *authority.Credential
		ok   bool
	}{
		{name: "rule with hops and sorted requirements", ok: true,
			rule: &authority.Rule{Source: w.aws.id(), Subjects: "*", Resources: "*", Actions: []string{"read"}, Hops: 255, Require: sortedAttrs("a", "1", "b", "x, y z")}},
		{name: "rule requirements unsorted",
			rule: &authority.Rule{Source: w.aws.id(), Subjects: "*", Resources: "*", Actions: []string{"read"}, Require: []authority.Attr{{Key: "b", Value: "1"}, {Key: "a", Value: "1"}}}},
		{name: "rule requirement twice",
			rule: &authority.Rule{Source: w.aws.id(), Subjects: "*", Resources: "*", Actions: []string{"read"}, Require: []authority.Attr{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}}},
		{name: "rule requirement key with a space",
			rule: &authority.Rule{Source: w.aws.id(), Subjects: "*", Resources: "*", Actions: []string{"read"}, Require: []authority.Attr{{Key: "a b", Value: "1"}}}},
		{name: "rule requirement value not UTF-8",
			rule: &authority.Rule{Source: w.aws.id(), Subjects: "*", Resources: "*", Actions: []string{"read"}, Require: []authority.Attr{{Key: "a", Value: "\xff"}}}},
		{name: "credential with every new field", ok: true,
			cred: &authority.Credential{Subject: "s", Attributes: sortedAttrs("team", "data"), Resources: "blob://*", Actions: []string{"read", "list"}, HolderKey: &good, Parent: authority.ID{1}}},
		{name: "credential with an empty-valued attribute", ok: true,
			cred: &authority.Credential{Subject: "s", Attributes: []authority.Attr{{Key: "flag", Value: ""}}}},
		{name: "credential attributes unsorted",
			cred: &authority.Credential{Subject: "s", Attributes: []authority.Attr{{Key: "z", Value: ""}, {Key: "a", Value: ""}}}},
		{name: "credential with too many attributes",
			cred: &authority.Credential{Subject: "s", Attributes: func() []authority.Attr {
				var a []authority.Attr
				for i := range authority.MaxAttrs + 1 {
					a = append(a, authority.Attr{Key: string(rune('a' + i)), Value: "v"})
				}
				return a
			}()}},
		{name: "credential action twice",
			cred: &authority.Credential{Subject: "s", Actions: []string{"read", "read"}}},
		{name: "credential action with a comma",
			cred: &authority.Credential{Subject: "s", Actions: []string{"read,write"}}},
		{name: "credential resources too long",
			cred: &authority.Credential{Subject: "s", Resources: strings.Repeat("a", authority.MaxPatternLen+1)}},
		{name: "credential holder key of the wrong size",
			cred: &authority.Credential{Subject: "s", HolderKey: &authority.PublicKey{Alg: authority.AlgEd25519, Key: good.Key[:31]}}},
		{name: "credential holder key of no algorithm",
			cred: &authority.Credential{Subject: "s", HolderKey: &authority.PublicKey{Alg: 0, Key: good.Key}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := authority.Declaration{Kind: authority.KindRule, Authority: w.azure.id(), Seq: 1, Prev: w.azure.id(), Rule: tt.rule}
			if tt.cred != nil {
				d = authority.Declaration{Kind: authority.KindCredential, Authority: w.aws.id(), Credential: tt.cred}
			}
			s, err := authority.Sign(d, w.aws.key)
			if (err == nil) != tt.ok {
				t.Fatalf("Sign: %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				t.Log(err)
				return
			}
			again, err := authority.Parse(clone(s.Raw))
			if err != nil || again.ID != s.ID {
				t.Fatalf("Parse of a signed %v: %v", d.Kind, err)
			}
		})
	}
}

// TestOldEnvelopesUnchanged: declarations without the new fields encode as
// before (omitempty/omitzero), so the fixtures signed before them keep their
// bytes and IDs: the same check as TestFixtures, on the standard world.
func TestOldEnvelopesUnchanged(t *testing.T) {
	g, target := loadFixtureGraph(t)
	for _, a := range g.Authorities() {
		for _, r := range g.RulesFor(a.ID) {
			if r.Rule.Hops != 0 || r.Rule.Require != nil {
				t.Errorf("fixture rule %s decodes with Hops %d Require %v", r.ID.Short(), r.Rule.Hops, r.Rule.Require)
			}
		}
	}
	raw := readFile(t, "testdata/valid-credential.cbor")
	s, err := authority.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Decl.Credential
	if c.Attributes != nil || c.Resources != "" || c.Actions != nil || c.HolderKey != nil || !c.Parent.IsZero() {
		t.Errorf("old credential decodes with new fields: %+v", c)
	}
	w := newWorld(t)
	again := w.aws.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour))
	if again.ID != s.ID {
		t.Errorf("re-signing the fixture credential gives %s, want %s", again.ID.Short(), s.ID.Short())
	}
	if d := authority.Verify(g, fixtureRequest(target, raw), authority.WithTime(now)); !d.Allow || len(d.Path) != 1 {
		t.Errorf("fixture credential: %s (%s), path %s", d.Reason, d.Message, fmtIDs(d.Path))
	}
}
