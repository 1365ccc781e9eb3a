// Package fednode_test holds repository-wide tests: the import boundaries
// that keep the layering of ARCHITECTURE.md true.
package fednode_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/fednode/fednode"

type pkg struct {
	ImportPath   string
	Imports      []string
	Deps         []string
	XTestImports []string
}

func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}

var (
	libp2p  = []string{"github.com/libp2p"}
	raft    = []string{"github.com/hashicorp/raft"}
	badger  = []string{"github.com/dgraph-io/badger"}
	nethttp = []string{"net/http"}
)

// TestImportBoundaries fails if a package reaches for I/O it must not have.
func TestImportBoundaries(t *testing.T) {
	pkgs := listPackages(t)
	// The core and the offline edge verifier: no network, consensus or disk
	// store, anywhere in their dependency graph.
	for _, name := range []string{"authority", "bundle", "tlog", "cmd/fedverify"} {
		p, ok := pkgs[name]
		if !ok {
			t.Fatalf("package %s not found", name)
		}
		for _, d := range p.Deps {
			if hasPrefixAny(d, libp2p) || hasPrefixAny(d, raft) || hasPrefixAny(d, badger) || hasPrefixAny(d, nethttp) {
				t.Errorf("%s depends on %s: the core must stay free of I/O libraries", name, d)
			}
		}
	}
	// authority imports nothing of ours; bundle only authority.
	allowedOurs := map[string][]string{"authority": {}, "bundle": {"authority", "tlog"}, "tlog": {"authority"},
		"cmd/fedverify": {"authority", "tlog", "bundle"}}
	for name, allowed := range allowedOurs {
		for _, d := range pkgs[name].Deps {
			if rest, ok := strings.CutPrefix(d, module+"/"); ok {
				// authority's internal packages are part of authority.
				if strings.HasPrefix(rest, "authority/internal/") && (name == "authority" || slices.Contains(allowed, "authority")) {
					continue
				}
				if !slices.Contains(allowed, rest) {
					t.Errorf("%s depends on %s; it may depend only on %v of this module", name, d, allowed)
				}
			}
		}
	}
	// The interop tests check our output with other people's code alone.
	for _, imp := range pkgs["interop"].XTestImports {
		if strings.HasPrefix(imp, module) {
			t.Errorf("interop's tests import %s: they must check fednode's output without fednode's code", imp)
		}
	}
	// Each I/O library has exactly one importer.
	owners := []struct {
		lib   []string
		owner string
	}{{badger, "chainstore"}, {libp2p, "gossip"}, {raft, "consensus"}}
	for name, p := range pkgs {
		for _, imp := range p.Imports {
			for _, o := range owners {
				if hasPrefixAny(imp, o.lib) && name != o.owner {
					t.Errorf("%s imports %s: only %s may", name, imp, o.owner)
				}
			}
			if imp == module+"/node" && name != "cmd/fednode" && name != "testnet" && name != "bench" {
				t.Errorf("%s imports node: only cmd/fednode, testnet and bench may", name)
			}
		}
	}
}
