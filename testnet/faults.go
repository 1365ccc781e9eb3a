package testnet

// Fault scenarios: the `raft` form that tunes every node's Raft (small
// snapshot thresholds make log compaction happen within a scenario), a
// burst that kills a node half-way (`burst AUTH N kill=NODE`), and the
// check expect-converged adds: every declaration any node acknowledged
// (202, accepted) is agreed at every live node.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// RaftCmd is `raft [snapshot-threshold=N] [trailing-logs=M]
// [snapshot-interval=DUR]`: the Raft settings of every node the scenario
// starts (and restarts). It must come before the first authority line,
// since the nodes start there.
type RaftCmd struct {
	SnapshotThreshold uint64        // 0: consensus's default
	TrailingLogs      uint64        // 0: consensus's default
	SnapshotInterval  time.Duration // 0: 1s when a threshold is set, else the default
}

// maxRaftTuning bounds the raft form's counts.
const maxRaftTuning = 1 << 20

// meshSyncInterval is the testnet nodes' mean anti-entropy period: short,
// so that a scenario's faults are repaired within its deadlines.
const meshSyncInterval = 2 * time.Second

var raftOp = &opSpec{
	op: "raft",
	keys: []keySpec{
		{name: "snapshot-threshold", meta: "N", parse: countValue(maxRaftTuning)},
		{name: "trailing-logs", meta: "M", parse: countValue(maxRaftTuning)},
		{name: "snapshot-interval", meta: "DUR", parse: positiveDuration},
	},
	build: func(a *stepArgs) (any, error) {
		c := &RaftCmd{
			SnapshotThreshold: uint64(keyVal[int](a, "snapshot-threshold")),
			TrailingLogs:      uint64(keyVal[int](a, "trailing-logs")),
			SnapshotInterval:  keyVal[time.Duration](a, "snapshot-interval"),
		}
		if c.SnapshotInterval == 0 && c.SnapshotThreshold > 0 {
			c.SnapshotInterval = time.Second
		}
		return c, nil
	},
	check: func(p *scenarioParser, _ any) error {
		if len(p.syms[symAuthority.ns()]) > 0 {
			return fmt.Errorf("raft must come before the first authority line: the nodes start there and read their Raft settings once")
		}
		return nil
	},
}

func init() {
	opTable = append(opTable, raftOp)
	opIndex = indexOps(opTable)
}

// SetRaft sets the Raft tuning of the nodes the mesh starts or restarts
// from now on.
func (m *Mesh) SetRaft(t node.RaftTuning) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.raft = t
}

func (m *Mesh) raftTuning() node.RaftTuning {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.raft
}

func (r *runner) raftStep(s Step, c *RaftCmd) {
	r.mesh.SetRaft(node.RaftTuning{SnapshotThreshold: c.SnapshotThreshold, TrailingLogs: c.TrailingLogs, SnapshotInterval: c.SnapshotInterval})
	r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Got: fmt.Sprintf("snapshot-threshold=%d trailing-logs=%d snapshot-interval=%s", c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval)})
	r.printf("  ✓ raft: every node snapshots after %d entries, keeps %d trailing entries, checks every %s\n", c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval)
}

// ack remembers a declaration a node acknowledged (accepted, 202).
func (r *runner) ack(id authority.ID) { r.acked = append(r.acked, id) }

// missingAcked lists, for the live nodes, how many acknowledged or
// declared IDs each lacks; empty when every node holds all of them.
func (r *runner) missingAcked(names []string, nodes []*node.Node) []string {
	var out []string
	for i, n := range nodes {
		lack := 0
		var first authority.ID
		for _, list := range [][]authority.ID{r.declared, r.acked} {
			for _, id := range list {
				if !n.Agreed(id) {
					if lack == 0 {
						first = id
					}
					lack++
				}
			}
		}
		if lack > 0 {
			out = append(out, fmt.Sprintf("%s lacks %d acknowledged declaration(s), e.g. %s", names[i], lack, first.Short()))
		}
	}
	return out
}

// killDuringBurst kills c.Kill once half the burst is submitted.
func (r *runner) killDuringBurst(s Step, c *BurstCmd) {
	victim := r.mesh.Node(c.Kill)
	if victim == nil {
		r.printf("  · %s is not running; nothing to kill during the burst\n", c.Kill)
		return
	}
	role := "a follower"
	if victim.IsLeader() {
		role = "the Raft leader"
	}
	if err := r.mesh.Kill(c.Kill); err != nil {
		r.fail(s, c.Kill, "kill during the burst: %v", err)
		return
	}
	r.printf("  · killed %s (%s) half-way through the burst\n", c.Kill, role)
}

func joinNonEmpty(parts []string) string { return strings.Join(parts, "; ") }

// waitSnapshot waits until a restarted node has installed a Raft snapshot:
// restart NODE snapshot=yes says the node was away past log compaction.
func (r *runner) waitSnapshot(ctx context.Context, name string) error {
	n := r.mesh.Node(name)
	deadline := time.Now().Add(catchUpTimeout)
	for n.SnapshotsRestored() == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s caught up without installing a snapshot in %s: was it away past log compaction? (raft snapshot-threshold= and trailing-logs= set how soon the log compacts)", name, catchUpTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	r.printf("  · %s installed a Raft snapshot from the leader (%d so far)\n", name, n.SnapshotsRestored())
	return nil
}
