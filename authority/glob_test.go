package authority_test

import (
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/fednode/fednode/authority"
)

func TestMatch(t *testing.T) {
	long := strings.Repeat("a", 10000)
	tests := []struct {
		name       string
		pattern, s string
		want       bool
	}{
		{name: "empty both", pattern: "", s: "", want: true},
		{name: "empty pattern", pattern: "", s: "a", want: false},
		{name: "empty string, literal", pattern: "a", s: "", want: false},
		{name: "empty string, star", pattern: "*", s: "", want: true},
		{name: "empty string, stars", pattern: "***", s: "", want: true},
		{name: "empty string, question", pattern: "?", s: "", want: false},
		{name: "star matches all", pattern: "*", s: "anything/at all", want: true},
		{name: "literal", pattern: "read", s: "read", want: true},
		{name: "literal prefix only", pattern: "read", s: "reader", want: false},
		{name: "literal longer", pattern: "reader", s: "read", want: false},
		{name: "case matters", pattern: "Read", s: "read", want: false},
		{name: "trailing star", pattern: "etl-*", s: "etl-", want: true},
		{name: "trailing star, more", pattern: "etl-*", s: "etl-loader", want: true},
		{name: "leading star", pattern: "*.parquet", s: "q3.parquet", want: true},
		{name: "leading star, wrong suffix", pattern: "*.parquet", s: "q3.parquet.bak", want: false},
		{name: "inner star", pattern: "a*c", s: "abbbc", want: true},
		{name: "inner star needs backtracking", pattern: "a*bc", s: "abcbc", want: true},
		{name: "two stars", pattern: "*b*d", s: "abcd", want: true},
		{name: "two stars, no match", pattern: "*b*d", s: "abcde", want: false},
		{name: "question", pattern: "a?c", s: "abc", want: true},
		{name: "question needs one", pattern: "a?c", s: "ac", want: false},
		{name: "question only one", pattern: "a?c", s: "abbc", want: false},
		{name: "question and star", pattern: "?*", s: "x", want: true},
		{name: "question and star, empty", pattern: "?*", s: "", want: false},
		{name: "star then question", pattern: "*?", s: "ab", want: true},
		{name: "arn", pattern: etlPattern, s: etlSubject, want: true},
		{name: "arn admin", pattern: etlPattern, s: adminSubject, want: false},
		{name: "arn other account", pattern: etlPattern, s: "arn:aws:iam::999999999999:role/etl-loader", want: false},
		{name: "star crosses slashes", pattern: "blob://corp-data/*", s: "blob://corp-data/a/b/c", want: true},
		{name: "no escaping: backslash is literal", pattern: `a\*`, s: `a\xyz`, want: true},
		{name: "no escaping: backslash star vs star", pattern: `a\*`, s: `a*`, want: false},
		{name: "no classes: brackets are literal", pattern: "[ab]", s: "a", want: false},
		{name: "no classes: brackets match themselves", pattern: "[ab]", s: "[ab]", want: true},
		{name: "star in subject is literal", pattern: "a", s: "*", want: false},
		{name: "unicode literal", pattern: "données/é", s: "données/é", want: true},
		{name: "question is one rune", pattern: "caf?", s: "café", want: true},
		{name: "question is one rune, not one byte", pattern: "caf??", s: "café", want: false},
		{name: "question on a four-byte rune", pattern: "?", s: "𝄞", want: true},
		{name: "star over unicode", pattern: "*é*", s: "ééé", want: true},
		{name: "unicode mismatch", pattern: "é", s: "e", want: false},
		{name: "combining accent is two runes", pattern: "?", s: "e\u0301", want: false},
		{name: "newline", pattern: "a*b", s: "a\nb", want: true},
		{name: "many stars, long, no match", pattern: "*a*a*a*a*a*b", s: long, want: false},
		{name: "many stars, long, match", pattern: "*a*a*a*a*a*b", s: long + "b", want: true},
		{name: "many questions against long", pattern: strings.Repeat("?", 500) + "*b", s: long, want: false},
		{name: "alternating", pattern: strings.Repeat("a*", 200) + "b", s: long, want: false},
		{name: "long literal", pattern: long, s: long, want: true},
		{name: "long literal off by one", pattern: long, s: long[1:], want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := authority.Match(tt.pattern, tt.s); got != tt.want {
				t.Fatalf("Match(%.40q, %.40q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
			// The naive model agrees (where it is defined: valid UTF-8).
			if got := globRegexp(tt.pattern).MatchString(tt.s); got != tt.want {
				t.Fatalf("model(%.40q, %.40q) = %v, want %v (the table is wrong)", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

// TestMatchInvalidUTF8: a literal character matches only itself. Rule
// patterns are valid UTF-8, but the resource of a request is whatever the
// requester sends; decoding both sides as runes turns every invalid byte into
// U+FFFD, so a pattern holding a literal U+FFFD (or any invalid byte) matched
// any invalid byte.
func TestMatchInvalidUTF8(t *testing.T) {
	tests := []struct {
		name       string
		pattern, s string
		want       bool
	}{
		{name: "replacement character is not an invalid byte", pattern: "blob://\uFFFD", s: "blob://\xff", want: false},
		{name: "replacement character matches itself", pattern: "blob://\uFFFD", s: "blob://\uFFFD", want: true},
		{name: "invalid byte matches itself", pattern: "\xff", s: "\xff", want: true},
		{name: "two invalid bytes differ", pattern: "\xfe", s: "\xff", want: false},
		{name: "star still matches invalid bytes", pattern: "blob://*", s: "blob://\xff\xfe", want: true},
		{name: "question takes one invalid byte", pattern: "a?b", s: "a\xffb", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := authority.Match(tt.pattern, tt.s); got != tt.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

// TestMatchModel compares Match with the regexp model on random patterns
// and strings over a small alphabet, where collisions are likely.
func TestMatchModel(t *testing.T) {
	patterns := rapid.StringOfN(rapid.RuneFrom([]rune{'a', 'b', 'é', '*', '?', '/'}), 0, 12, -1)
	strs := rapid.StringOfN(rapid.RuneFrom([]rune{'a', 'b', 'é', '/', '*', '?'}), 0, 16, -1)
	rapid.Check(t, func(t *rapid.T) {
		p, s := patterns.Draw(t, "pattern"), strs.Draw(t, "s")
		if got, want := authority.Match(p, s), globRegexp(p).MatchString(s); got != want {
			t.Fatalf("Match(%q, %q) = %v, model says %v", p, s, got, want)
		}
	})
}
