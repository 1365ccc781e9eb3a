package node

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/fednode/fednode/gossip"
	"github.com/fednode/fednode/tlog"
)

// TestWitnessing: every node of a trio ends up with the checkpoint of the
// common size cosigned by all three; a checkpoint of that size with another
// root, signed by a member, is a split view at the others: kept as
// evidence, shown in status and metrics, and bundle export is refused.
func TestWitnessing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	nodes, homes := startTrio(t)
	sd := nextRule(t, homes[1], nodes[1], homes[0].Authority, "s3://logs/*")
	waitFor(t, waitAgreed, "the rule agreed everywhere", agreedAt(sd.ID, nodes...))

	names := []string{homes[0].Config.Name, homes[1].Config.Name, homes[2].Config.Name}
	waitFor(t, waitAgreed, "every checkpoint cosigned by all three", func() bool {
		var size uint64
		for i, n := range nodes {
			cp, signers, err := n.WitnessedCheckpoint()
			if err != nil || (i > 0 && cp.Size != size) {
				return false
			}
			size = cp.Size
			for _, name := range names {
				if !slices.Contains(signers, name) {
					return false
				}
			}
		}
		return true
	})
	for _, n := range nodes {
		if st := n.Status(); st.Checkpoint == nil || len(st.Checkpoint.Signers) != 3 || st.SplitView != nil {
			t.Fatalf("%s status checkpoint %+v split %+v, want 3 signers and no split view", describe(n), st.Checkpoint, st.SplitView)
		}
	}

	// okta signs a checkpoint of the same size with a different root.
	cp, _, err := nodes[0].WitnessedCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: bytes.Repeat([]byte{0xee}, 32)}, homes[1].Config.Name, homes[1].Root)
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].host.PublishTo(context.Background(), gossip.CheckpointsTopic, forged); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{nodes[0], nodes[2]} {
		waitFor(t, waitAgreed, describe(n)+" sees the split view", func() bool { return n.SplitView() != nil })
		if _, err := n.ExportBundle(context.Background(), ExportOptions{}); !errors.Is(err, ErrSplitView) {
			t.Fatalf("%s exported a bundle despite a split view: %v", describe(n), err)
		}
		if st := n.Status(); st.SplitView == nil || st.SplitView.Theirs != string(forged) {
			t.Fatalf("%s status does not carry the evidence", describe(n))
		}
	}
}
