package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fednode/fednode/node"
)

func TestBenchGossipCLI(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{name: "one node", args: []string{"--nodes", "1"}, code: 2},
		{name: "zero trials", args: []string{"--trials", "0"}, code: 2},
		{name: "negative burst", args: []string{"--burst", "-1"}, code: 2},
		{name: "small run", args: []string{"--nodes", "2", "--trials", "2", "--burst", "20", "--json", "--dir", t.TempDir()}, code: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errText, code := runFednode(t, append([]string{"bench", "gossip"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d (%s), want %d", code, errText, tc.code)
			}
			if code != 0 {
				return
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, out)
			}
			for _, k := range []string{"p50_ms", "p99_ms", "max_ms", "rtt_ms", "trials", "nodes", "burst"} {
				if _, ok := got[k]; !ok {
					t.Errorf("no %q in %s", k, out)
				}
			}
			if got["nodes"] != 2.0 || got["trials"] != 2.0 {
				t.Errorf("nodes %v trials %v, want 2 and 2", got["nodes"], got["trials"])
			}
		})
	}
}

// TestStatusJSONWire: `status --json` names the node's peer ID, listen
// addresses and topics, as the wire section asks.
func TestStatusJSONWire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "aws-prod")
	if _, err := node.Init(dir, node.InitOptions{Name: "aws-prod", Kind: "aws", Now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(context.Background(), node.Config{Home: dir, Bootstrap: true, API: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	out, errText, code := runFednode(t, "status", "--api", n.APIAddr(), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	var st struct {
		PeerID      string   `json:"peer_id"`
		ListenAddrs []string `json:"listen_addrs"`
		Topics      []string `json:"topics"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.PeerID != n.PeerID() || !slices.Equal(st.ListenAddrs, n.Addrs()) {
		t.Errorf("peer_id %q listen_addrs %v, want %q %v", st.PeerID, st.ListenAddrs, n.PeerID(), n.Addrs())
	}
	if !slices.Contains(st.Topics, "/fednode/declarations/1") {
		t.Errorf("topics %v lack /fednode/declarations/1", st.Topics)
	}
}
