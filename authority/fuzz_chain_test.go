package authority_test

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fednode/fednode/authority"
)

// FuzzVerifyChain fuzzes the presented credential, the first delegation link
// and the proof of possession of every chain fixture, each against its own
// graph (with the rest of its delegation chain, challenge and time).
func FuzzVerifyChain(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "chains", "*.cbor"))
	if len(paths) == 0 {
		f.Fatal("no chain fixtures")
	}
	type world struct {
		sc scenario
		g  *authority.Graph
	}
	var worlds []world
	for i, p := range paths {
		sc, g := loadScenario(f, p)
		worlds = append(worlds, world{sc, g})
		var link []byte
		if len(sc.Delegation) > 0 {
			link = sc.Delegation[0]
		}
		f.Add(uint8(i), sc.Credential, link, sc.PoP, sc.Resource, sc.Action)
	}
	f.Fuzz(func(t *testing.T, which uint8, cred, link, pop []byte, resource, action string) {
		w := worlds[int(which)%len(worlds)]
		req := w.sc.request()
		req.Credential, req.PoP, req.Resource, req.Action = cred, pop, resource, action
		req.Delegation = slices.Clone(req.Delegation)
		if len(req.Delegation) > 0 {
			req.Delegation[0] = link
		} else if link != nil {
			req.Delegation = [][]byte{link}
		}
		keep := [][]byte{clone(cred), clone(link), clone(pop)}
		d, n := authority.VerifyCounting(w.g, req, w.sc.options()...)
		if !slices.Contains(authority.Reasons, d.Reason) || d.Allow != (d.Reason == authority.ReasonOK) || d.Chain == nil || d.Message == "" {
			t.Fatalf("decision %+v", d)
		}
		if !bytes.Equal(keep[0], cred) || !bytes.Equal(keep[1], link) || !bytes.Equal(keep[2], pop) {
			t.Fatal("Verify modified its input")
		}
		if n.Examined > authority.MaxRulesExamined || n.Scanned > authority.MaxRulesScanned {
			t.Fatalf("examined %d rules, scanned %d", n.Examined, n.Scanned)
		}
		if d.Rule.IsZero() != (len(d.Path) == 0) {
			t.Fatalf("rule %s, path %s", d.Rule.Short(), fmtIDs(d.Path))
		}
		if !d.Allow {
			return
		}
		// An allow names the presented credential, its parents and a
		// path ending at the target, all of them really there.
		s, err := authority.Parse(cred)
		if err != nil || s.Decl.Kind != authority.KindCredential {
			t.Fatalf("allowed bytes that are no credential: %v", err)
		}
		creds := len(d.Chain) - 1 - 2*len(d.Path)
		if creds != 1+len(req.Delegation) || d.Chain[creds] != s.ID {
			t.Fatalf("allow with chain %s for %d presented credentials", fmtIDs(d.Chain), 1+len(req.Delegation))
		}
		if d.Chain[len(d.Chain)-2] != req.Target || d.Rule != d.Path[len(d.Path)-1] {
			t.Fatalf("allow with chain %s rule %s", fmtIDs(d.Chain), d.Rule.Short())
		}
		if _, ok := w.g.Authority(d.Chain[0]); !ok {
			t.Fatalf("allow rooted in unknown authority %s", d.Chain[0].Short())
		}
		if hk := s.Decl.Credential.HolderKey; hk != nil && len(pop) == 0 {
			t.Fatal("allowed a holder-bound credential without a proof")
		}
	})
}

// FuzzGlobSubset: GlobSubset never claims a subset that a string disproves.
// The strings tried are the input and the child with its wildcards filled
// in from it (so they match the child).
func FuzzGlobSubset(f *testing.F) {
	for _, s := range [][3]string{
		{dataResource, dataPattern, ""}, {"blob://corp-data/q3*", dataPattern, "x"}, {"a*", "a*a", "a"},
		{"*/q3.parquet", "*.parquet", "é"}, {"ab?c", "a*c", "\xff"}, {"x", "***", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, child, parent, fill string) {
		if len(child) > 64 || len(parent) > 64 || len(fill) > 16 || !authority.GlobSubset(child, parent) {
			return
		}
		var filled []byte
		for i := 0; i < len(child); i++ {
			switch child[i] {
			case '*':
				filled = append(filled, fill...)
			case '?':
				if fill == "" {
					filled = append(filled, 'a')
				} else {
					filled = append(filled, fill[0])
				}
			default:
				filled = append(filled, child[i])
			}
		}
		for _, s := range []string{fill, string(filled)} {
			if authority.Match(child, s) && !authority.Match(parent, s) {
				t.Fatalf("GlobSubset(%q, %q), but %q matches the child only", child, parent, s)
			}
		}
	})
}
