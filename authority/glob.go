package authority

import "unicode/utf8"

// Match reports whether s matches the glob pattern as a whole: `*` matches any
// run of characters (including none) and `?` exactly one character; every
// other character matches itself. There is no escaping and no character class,
// so a pattern means the same thing to every reader.
//
// It runs in O(len(pattern) × len(s)) time in the worst case and allocates
// nothing (the classic greedy match with one backtrack point), so a hostile
// pattern cannot blow up the way a backtracking regexp can.
func Match(pattern, s string) bool {
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				_, w := utf8.DecodeRuneInString(s[i:])
				p++
				i += w
				continue
			default:
				// Compare bytes, not decoded runes: decoding maps every
				// invalid byte to U+FFFD, which would make them all equal
				// (and equal to a literal U+FFFD). For valid UTF-8 the two
				// are the same, as a rune's encoding is unique.
				if pattern[p] == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last star absorb one more character and retry after it.
		_, w := utf8.DecodeRuneInString(s[starI:])
		starI += w
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
