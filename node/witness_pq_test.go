package node

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// TestWitnessingAlgorithmsAndRotation: members whose root keys are
// Ed25519, ML-DSA-65 and hybrid sign and cosign one another's checkpoints;
// after one of them rotates and installs its new key, the others verify its
// signatures with the new key and the checkpoints are cosigned by all three
// again.
func TestWitnessingAlgorithmsAndRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	var homes []*Home
	for _, m := range []struct {
		name string
		alg  authority.Alg
	}{{"aws-prod", authority.AlgEd25519}, {"okta", authority.AlgMLDSA65}, {"gcp-prod", authority.AlgHybrid}} {
		h, err := Init(filepath.Join(t.TempDir(), m.name), InitOptions{Name: m.name, Kind: "sovereign", Now: t0, Alg: m.alg})
		if err != nil {
			t.Fatal(err)
		}
		homes = append(homes, h)
	}
	nodes := make([]*Node, 3)
	nodes[0] = startNode(t, homes[0], Config{Bootstrap: true, API: "127.0.0.1:0"})
	waitFor(t, waitAgreed, "the first genesis agreed", func() bool { return nodes[0].Agreed(homes[0].Authority) })
	for i := 1; i < 3; i++ {
		nodes[i] = startNode(t, homes[i], Config{Join: nodes[0].Addrs(), API: "127.0.0.1:0"})
	}
	for _, h := range homes {
		waitFor(t, waitAgreed, h.Config.Name+"'s genesis agreed everywhere", agreedAt(h.Authority, nodes...))
	}
	names := []string{"aws-prod", "okta", "gcp-prod"}
	cosignedByAll := func(minSize uint64) func() bool {
		return func() bool {
			for _, n := range nodes {
				cp, signers, err := n.WitnessedCheckpoint()
				if err != nil || cp.Size < minSize {
					return false
				}
				for _, name := range names {
					if !slices.Contains(signers, name) {
						return false
					}
				}
			}
			return true
		}
	}
	sd := nextRule(t, homes[0], nodes[0], homes[1].Authority, "s3://a/*")
	waitFor(t, waitAgreed, "the rule agreed everywhere", agreedAt(sd.ID, nodes...))
	waitFor(t, waitAgreed, "a checkpoint cosigned by all three algorithms", cosignedByAll(nodes[0].store.Version()))

	// okta rotates to a new ML-DSA-65 key and installs it.
	ctx := context.Background()
	s, err := NewRotation(authority.AlgMLDSA65, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := SignNextWith(ctx, homes[1], nodes[1], t0, func(d *authority.Declaration) {
		d.Kind, d.Rotation = authority.KindRotation, s.Rotation()
	}, SignOptions{Before: func(sd *authority.Signed) error { return homes[1].StageSigned(s, sd) }})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the rotation agreed everywhere", agreedAt(rot.ID, nodes...))
	if _, err := homes[1].CommitRotation(); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	sd = nextRule(t, homes[0], nodes[0], homes[2].Authority, "s3://b/*")
	waitFor(t, waitAgreed, "the second rule agreed everywhere", agreedAt(sd.ID, nodes...))
	waitFor(t, waitAgreed, "checkpoints after the rotation cosigned by all three", cosignedByAll(nodes[0].store.Version()))
	cp, _, err := nodes[0].WitnessedCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: "okta", Key: s.Keys[0].Public()}}); err != nil {
		t.Fatalf("okta's cosignature is not by its new key: %v", err)
	}
}
