package testnet

import (
	"context"
	"crypto/rand"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// meshDeadline bounds eventual conditions in the mesh tests; generous for a
// loaded 2-core machine under -race.
const meshDeadline = 60 * time.Second

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(meshDeadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", meshDeadline, what)
		}
		time.Sleep(pollInterval)
	}
}

// declareRule has the named node's authority declare a rule accepting
// itself on resource, and returns its ID.
func declareRule(t *testing.T, ctx context.Context, m *Mesh, name, resource string) authority.ID {
	t.Helper()
	n := m.Node(name)
	sd, err := node.SignNext(ctx, n.Home(), n, time.Now(), func(d *authority.Declaration) {
		d.Kind = authority.KindRule
		d.Rule = &authority.Rule{Source: n.Authority(), Subjects: "*", Resources: resource, Actions: []string{"read"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	return sd.ID
}

func sortedPeers(m *Mesh, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, m.Node(n).PeerID())
	}
	sort.Strings(out)
	return out
}

// TestPartitionMesh cuts one node of three off, checks what each side sees
// (the blocks, who agrees what, the cut-off node's growing graph age),
// restarts the cut-off node (it stays cut off), and heals.
func TestPartitionMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node mesh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := NewMesh(MeshOptions{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Add(ctx, []AuthorityCmd{{Name: "a"}, {Name: "b"}, {Name: "c"}}); err != nil {
		t.Fatal(err)
	}
	r := &runner{mesh: m}
	for _, name := range []string{"a", "b", "c"} {
		if err := r.waitAgreed(ctx, name, m.Node(name).Authority()); err != nil {
			t.Fatal(err)
		}
	}
	ha, err := m.Home("a")
	if err != nil {
		t.Fatal(err)
	}
	serial, err := authority.NewSerial(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	cred, err := authority.Sign(authority.Declaration{
		Kind: authority.KindCredential, Authority: ha.Authority, IssuedAt: now.Unix(),
		Credential: &authority.Credential{Subject: "s", NotBefore: now.Unix(), NotAfter: now.Add(time.Hour).Unix(), Serial: serial},
	}, ha.Root)
	if err != nil {
		t.Fatal(err)
	}
	verifyAt := func(name string) authority.Decision {
		// Graph age is real time since the replica was last current.
		return m.Node(name).Verify(cred.Raw, "a", "r", "read", time.Now())
	}

	if err := m.Partition([]string{"c"}, nil); err != nil {
		t.Fatal(err)
	}
	checkBlocks := func() {
		t.Helper()
		for _, tt := range []struct {
			name string
			want []string
		}{
			{"a", sortedPeers(m, "c")},
			{"b", sortedPeers(m, "c")},
			{"c", sortedPeers(m, "a", "b")},
		} {
			if got := m.Node(tt.name).Blocked(); !slices.Equal(got, tt.want) {
				t.Errorf("%s blocks %v, want %v", tt.name, got, tt.want)
			}
		}
	}
	checkBlocks()
	if !m.CutOff("a", "c") || !m.CutOff("c", "b") || m.CutOff("a", "b") || !m.Partitioned() {
		t.Fatal("CutOff or Partitioned disagrees with the partition")
	}
	if names, _ := m.Reachable("c"); !slices.Equal(names, []string{"c"}) {
		t.Fatalf("Reachable(c) = %v, want [c]", names)
	}
	if names, _ := m.Reachable("a"); !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("Reachable(a) = %v, want [a b]", names)
	}

	// The cut-off node still decides, from a graph whose age grows.
	first := verifyAt("c")
	eventually(t, "c's graph age to grow by a second", func() bool {
		return verifyAt("c").GraphAgeMS > first.GraphAgeMS+1000
	})

	// The majority agrees a new declaration; c, cut off, cannot have it.
	during := declareRule(t, ctx, m, "a", "part://during")
	if err := r.waitAgreed(ctx, "a", during); err != nil {
		t.Fatal(err)
	}
	if m.Node("c").Agreed(during) {
		t.Fatal("c agreed a declaration made while it was cut off")
	}

	// A restart does not lift the partition.
	if err := m.Kill("c"); err != nil {
		t.Fatal(err)
	}
	if err := m.Restart(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	checkBlocks()
	after := declareRule(t, ctx, m, "b", "part://after-restart")
	if err := r.waitAgreed(ctx, "b", after); err != nil {
		t.Fatal(err)
	}
	if c := m.Node("c"); c.Agreed(during) || c.Agreed(after) {
		t.Fatal("c caught up while cut off")
	}

	if err := m.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Partitioned() || m.CutOff("a", "c") {
		t.Fatal("a partition is still in force after Heal")
	}
	for _, name := range []string{"a", "b", "c"} {
		if got := m.Node(name).Blocked(); len(got) != 0 {
			t.Errorf("%s still blocks %v after Heal", name, got)
		}
	}
	eventually(t, "c to catch up after healing", func() bool {
		c := m.Node("c")
		return c.Agreed(during) && c.Agreed(after) && c.GraphVersion() == m.Node("a").GraphVersion()
	})
	eventually(t, "c's graph to be current again", func() bool {
		return verifyAt("c").GraphAgeMS < first.GraphAgeMS+1000
	})
}

// TestPartitionRefusesUnknownNodes: Partition names only mesh members.
func TestPartitionRefusesUnknownNodes(t *testing.T) {
	m, err := NewMesh(MeshOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Partition([]string{"ghost"}, nil); err == nil {
		t.Fatal("Partition of an unknown node succeeded")
	}
	if m.Partitioned() {
		t.Fatal("a refused Partition left a partition")
	}
}
