package authority_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fednode/fednode/authority"
)

// addFixtureSeeds seeds f with every testdata/*.cbor, via add.
func addFixtureSeeds(f *testing.F, add func(b []byte)) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.cbor"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixtures to seed with: %v", err)
	}
	for _, p := range paths {
		add(readFile(f, p))
	}
}

func FuzzParse(f *testing.F) {
	addFixtureSeeds(f, func(b []byte) { f.Add(b) })
	f.Add([]byte{})
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := authority.Parse(b)
		if err != nil {
			if s != nil || !errors.Is(err, authority.ErrMalformed) || !strings.HasPrefix(err.Error(), "authority: ") {
				t.Fatalf("Parse = %v, %v; want nil and a wrapped ErrMalformed", s, err)
			}
			return
		}
		if !bytes.Equal(s.Raw, b) || s.ID != authority.IDOf(s.Raw) {
			t.Fatalf("Raw/ID do not describe the input")
		}
		again, err := authority.Parse(clone(s.Raw))
		if err != nil {
			t.Fatalf("Parse(s.Raw) = %v after Parse(b) succeeded", err)
		}
		if again.ID != s.ID || !reflect.DeepEqual(again.Decl, s.Decl) || again.Alg != s.Alg || !bytes.Equal(again.KeyID, s.KeyID) {
			t.Fatalf("Parse is not stable: %+v vs %+v", again.Decl, s.Decl)
		}
		if len(b) > authority.MaxDeclarationSize || len(s.KeyID) != authority.KeyIDSize {
			t.Fatalf("accepted %d bytes with a %d-byte kid", len(b), len(s.KeyID))
		}
		if s.Decl.Kind.String() == "" || (s.Decl.Kind != authority.KindGenesis && s.Decl.Authority.IsZero()) {
			t.Fatalf("accepted a %v without issuer", s.Decl.Kind)
		}
		if err := s.VerifyWith(nil); !errors.Is(err, authority.ErrBadSignature) {
			t.Fatalf("VerifyWith(nil) = %v", err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	g, target := loadFixtureGraph(f)
	issuer, _ := authority.ResolveAuthority(g, "aws-prod")
	info, _ := g.Authority(issuer)
	addFixtureSeeds(f, func(b []byte) {
		f.Add(b, dataResource, "read")
		f.Add(b, "blob://hr-data/x", "write")
	})
	f.Fuzz(func(t *testing.T, cred []byte, resource, action string) {
		keep := clone(cred)
		req := authority.Request{Credential: cred, Target: target, Resource: resource, Action: action}
		d := authority.Verify(g, req, authority.WithTime(now))
		if !slices.Contains(authority.Reasons, d.Reason) {
			t.Fatalf("unknown reason %q", d.Reason)
		}
		if d.Allow != (d.Reason == authority.ReasonOK) || d.Outcome != map[bool]string{true: "allow", false: "deny"}[d.Allow] {
			t.Fatalf("allow %v, outcome %q, reason %q", d.Allow, d.Outcome, d.Reason)
		}
		if d.Chain == nil || d.Message == "" || d.GraphVersion != g.Version() {
			t.Fatalf("decision incomplete: %+v", d)
		}
		if !bytes.Equal(cred, keep) {
			t.Fatal("Verify modified the credential bytes")
		}
		if !d.Allow {
			return
		}
		// An allow needs a real credential of the graph's aws-prod.
		s, err := authority.Parse(cred)
		if err != nil {
			t.Fatalf("allowed bytes that do not parse: %v", err)
		}
		if s.Decl.Kind != authority.KindCredential || s.Decl.Authority != issuer {
			t.Fatalf("allowed a %v of %s", s.Decl.Kind, s.Decl.Authority.Short())
		}
		if err := s.VerifyWith(info.RootKeys); err != nil {
			t.Fatalf("allowed a credential whose signature does not verify: %v", err)
		}
		if len(d.Chain) != 4 || d.Chain[1] != s.ID {
			t.Fatalf("allow with chain %s", fmtIDs(d.Chain))
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{etlPattern, etlSubject}, {"*", ""}, {"?", "é"}, {"*a*a*a*b", "aaaaaaaaaaaa"}, {"a\uFFFD", "a\xff"}, {"", ""}, {"**?*", "x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := authority.Match(pattern, s)
		if !authority.Match("*", s) {
			t.Fatalf("Match(*, %q) = false", s)
		}
		if !strings.ContainsAny(s, "*?") && !authority.Match(s, s) {
			t.Fatalf("Match(%q, itself) = false", s)
		}
		// Without wildcards a pattern matches exactly itself, byte for byte.
		if !strings.ContainsAny(pattern, "*?") && got != (pattern == s) {
			t.Fatalf("Match(%q, %q) = %v for a pattern without wildcards", pattern, s, got)
		}
		if !authority.Match(strings.Repeat("?", utf8.RuneCountInString(s)), s) {
			t.Fatalf("one ? per rune of %q does not match", s)
		}
		if utf8.ValidString(pattern) && utf8.ValidString(s) && len(pattern) <= 64 && len(s) <= 256 {
			if want := globRegexp(pattern).MatchString(s); got != want {
				t.Fatalf("Match(%q, %q) = %v, model says %v", pattern, s, got, want)
			}
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	f.Add(keyFile(seedAWS))
	f.Add(keyFile(0))
	f.Add(keyFile(seedAWS)[:10])
	f.Add([]byte{0xa2, 0x01, 0x07, 0x02, 0x41, 0x00})
	f.Add([]byte("garbage garbage garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := authority.ParsePrivateKey(b)
		if err != nil {
			if k != nil || !strings.HasPrefix(err.Error(), "authority: ") {
				t.Fatalf("ParsePrivateKey = %v, %v", k, err)
			}
			if len(b) >= 16 && (strings.Contains(err.Error(), string(b)) || strings.Contains(err.Error(), hex.EncodeToString(b))) {
				t.Fatalf("error %q quotes the input", err)
			}
			return
		}
		// Decoding is strict, so the only accepted form is the one
		// MarshalPrivateKey writes.
		again, err := authority.MarshalPrivateKey(k)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("MarshalPrivateKey(ParsePrivateKey(%x)) = %x, %v", b, again, err)
		}
	})
}
