package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fednode/fednode/node"
)

// TestConsortiumCommands drives a consortium's life through the CLI against
// real nodes: charter, ratify, an applicant approved 2 of 2, removed, the
// status in text and JSON, and the usage errors (exit 2).
func TestConsortiumCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	homes := map[string]string{}
	nodes := map[string]*node.Node{}
	start := func(name string, cfg node.Config) {
		t.Helper()
		home := filepath.Join(dir, name)
		mustRun(t, "init", "--home", home, "--name", name)
		cfg.Home = home
		n, err := node.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		homes[name], nodes[name] = home, n
	}
	start("alpha", node.Config{Bootstrap: true})
	waitUntil(t, "alpha's genesis agreed", func() bool { return nodes["alpha"].Agreed(nodes["alpha"].Authority()) })
	start("beta", node.Config{Join: nodes["alpha"].Addrs()})
	waitUntil(t, "beta's genesis agreed", func() bool { return nodes["alpha"].Agreed(nodes["beta"].Authority()) })

	if out := mustRun(t, "consortium", "status", "--home", homes["alpha"]); !strings.Contains(out, "no charter") {
		t.Fatalf("status before any charter: %s", out)
	}
	mustRun(t, "consortium", "charter", "--home", homes["alpha"], "--members", "alpha,beta", "--threshold", "2")
	mustRun(t, "consortium", "ratify", "--home", homes["beta"])
	waitUntil(t, "the charter active at both", func() bool {
		for _, n := range nodes {
			if cs := n.ConsortiumStatus(); cs == nil || !cs.Active {
				return false
			}
		}
		return true
	})

	start("gamma", node.Config{Join: nodes["beta"].Addrs()})
	waitUntil(t, "gamma's admission request at alpha", func() bool { return len(nodes["alpha"].Admissions()) == 1 })
	mustRun(t, "consortium", "approve", "gamma", "--home", homes["alpha"])
	var cs node.ConsortiumStatus
	if err := json.Unmarshal([]byte(mustRun(t, "consortium", "status", "--home", homes["beta"], "--json")), &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.Pending) != 1 || cs.Pending[0].Name != "gamma" || len(cs.Pending[0].Approvals) != 1 || cs.Pending[0].Approvals[0].Name != "alpha" || cs.Threshold != 2 {
		t.Fatalf("status --json after one approval: %+v", cs)
	}
	mustRun(t, "consortium", "approve", nodes["gamma"].Authority().String(), "--home", homes["beta"])
	waitUntil(t, "gamma agreed at every node, its own included", func() bool {
		for _, n := range nodes {
			if !n.Agreed(nodes["gamma"].Authority()) {
				return false
			}
		}
		return true
	})
	out := mustRun(t, "consortium", "status", "--home", homes["gamma"])
	if !strings.Contains(out, "charter") || strings.Count(out, "member ") != 3 || !strings.Contains(out, "gamma") {
		t.Fatalf("status at gamma after its admission:\n%s", out)
	}

	usageErrors := []struct {
		name string
		args []string
		frag string
	}{
		{"approve without an authority", []string{"consortium", "approve", "--home", homes["alpha"]}, "want one AUTHORITY"},
		{"approve a member", []string{"consortium", "approve", "gamma", "--home", homes["alpha"]}, "a member already"},
		{"approve nobody", []string{"consortium", "approve", "nobody", "--home", homes["alpha"]}, "neither a pending applicant"},
		{"remove oneself", []string{"consortium", "remove", "alpha", "--home", homes["alpha"]}, "consortium leave"},
		{"ratify twice", []string{"consortium", "ratify", "--home", homes["beta"]}, "active already"},
		{"charter without members", []string{"consortium", "charter", "--home", homes["alpha"], "--threshold", "1"}, "are required"},
		{"status without a node", []string{"consortium", "status"}, "one of --api or --home"},
		{"join without an address", []string{"join", "--home", homes["alpha"]}, "exactly one MULTIADDR"},
		{"no subcommand", []string{"consortium"}, "name a subcommand"},
	}
	for _, tt := range usageErrors {
		t.Run(tt.name, func(t *testing.T) {
			_, errText, code := runFednode(t, tt.args...)
			if code != 2 || !strings.Contains(errText, tt.frag) {
				t.Fatalf("exit %d: %s; want exit 2 and ...%s...", code, errText, tt.frag)
			}
		})
	}

	mustRun(t, "consortium", "remove", "gamma", "--home", homes["alpha"])
	mustRun(t, "consortium", "remove", "gamma", "--home", homes["beta"])
	if err := json.Unmarshal([]byte(mustRun(t, "consortium", "status", "--home", homes["alpha"], "--json")), &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.Members) != 2 || len(cs.Removed) != 1 || cs.Removed[0].Name != "gamma" {
		t.Fatalf("status --json after the removal: %+v", cs)
	}
	if _, errText, code := runFednode(t, "consortium", "leave", "--home", homes["alpha"]); code != 2 || !strings.Contains(errText, "fewer than the threshold") {
		t.Fatalf("leave below the threshold: exit %d: %s", code, errText)
	}
}
