package node

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/fednode/fednode/authority"
)

// The sequential model the agreed graph is checked against: one register
// per authority, its chain head. A write of seq s is the declaration at s;
// it takes effect only on top of s-1 (a chain cannot skip). A read returns
// the head.

type headOp struct {
	auth  int    // which authority (the partition key)
	write bool   // a write of seq, else a read
	seq   uint64 // the seq written
}

var headModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(headOp).auth
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(by))
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		head, in := state.(uint64), input.(headOp)
		if in.write {
			return in.seq == head+1, in.seq
		}
		return output.(uint64) == head, head
	},
	DescribeOperation: func(input, output any) string {
		in := input.(headOp)
		if in.write {
			return fmt.Sprintf("a%d: write seq %d", in.auth, in.seq)
		}
		return fmt.Sprintf("a%d: read -> %v", in.auth, output)
	},
}

// The model itself accepts the histories it should and refuses the others,
// so a check against it can fail.
func TestHeadModel(t *testing.T) {
	w := func(call, ret int64, seq uint64) porcupine.Operation {
		return porcupine.Operation{Input: headOp{write: true, seq: seq}, Call: call, Return: ret, Output: uint64(0)}
	}
	r := func(call, ret int64, got uint64) porcupine.Operation {
		return porcupine.Operation{ClientId: 1, Input: headOp{}, Call: call, Return: ret, Output: got}
	}
	tests := []struct {
		name string
		h    []porcupine.Operation
		want porcupine.CheckResult
	}{
		{name: "read after write sees it", h: []porcupine.Operation{w(0, 10, 1), r(11, 12, 1)}, want: porcupine.Ok},
		{name: "stale read after write", h: []porcupine.Operation{w(0, 10, 1), r(11, 12, 0)}, want: porcupine.Illegal},
		{name: "concurrent read may miss it", h: []porcupine.Operation{w(0, 10, 1), r(5, 12, 0)}, want: porcupine.Ok},
		{name: "read goes back in time", h: []porcupine.Operation{w(0, 1, 1), w(2, 20, 2), r(3, 4, 2), r(5, 6, 1)}, want: porcupine.Illegal},
		{name: "unfinished write seen", h: []porcupine.Operation{w(0, math.MaxInt64, 1), r(5, 6, 1)}, want: porcupine.Ok},
		{name: "a chain cannot skip", h: []porcupine.Operation{w(0, 1, 2), r(5, 6, 2)}, want: porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(headModel, tt.h, 5*time.Second); got != tt.want {
				t.Fatalf("check = %v, want %v", got, tt.want)
			}
		})
	}
}

// history records operations from many goroutines.
type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

func (h *history) snapshot() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// cluster of the linearizability test: nodes that faults may kill.
type faultyTrio struct {
	mu    sync.RWMutex // held for reading around every operation on a node
	nodes []*Node
	dead  []bool
}

// pick returns a random live node index, with the read lock held: the
// caller releases it when done with the node.
func (c *faultyTrio) pick(rng *rand.Rand) int {
	c.mu.RLock()
	for {
		i := rng.IntN(len(c.nodes))
		if !c.dead[i] {
			return i
		}
	}
}

// TestLinearizable records concurrent writes (a declaration submitted at
// one node, waited for until agreed there) and linearizable reads (an
// authority's head, at another node) on three real nodes while a follower
// is partitioned and healed and the leader is killed, and checks the
// history with porcupine. The same run also records local reads at the
// partitioned follower after a write that completed without it: that
// history must be refused, so the check is shown able to fail.
func TestLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes under faults: not in -short")
	}
	nodes, homes := startTrio(t)
	const writers = 3
	auths := make([]*outsider, writers+1) // the last one is the probe
	for i := range auths {
		auths[i] = newOutsider(t, fmt.Sprintf("lin%d", i))
		if _, err := nodes[0].Submit(context.Background(), auths[i].gen.Raw); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range auths {
		waitFor(t, waitAgreed, a.name+"'s genesis agreed everywhere", agreedAt(a.id(), nodes...))
	}
	c := &faultyTrio{nodes: nodes, dead: make([]bool, len(nodes))}
	h := &history{start: time.Now()}
	stale := &history{start: h.start} // local reads at the partitioned follower
	source := homes[0].Authority

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 16)

	// write submits d at a live node and waits until it is agreed there.
	// When that node dies first it resubmits elsewhere; a write never seen
	// agreed stays open (Return at infinity): it may or may not have
	// happened.
	write := func(client, auth int, rng *rand.Rand, sd *authority.Signed) bool {
		op := porcupine.Operation{ClientId: client, Input: headOp{auth: auth, write: true, seq: sd.Decl.Seq}, Call: h.now(), Output: uint64(0)}
		for {
			if ctx.Err() != nil {
				op.Return = math.MaxInt64
				h.add(op)
				return false
			}
			i := c.pick(rng)
			n := c.nodes[i]
			if _, err := n.Submit(ctx, sd.Raw); err != nil && ctx.Err() == nil {
				c.mu.RUnlock()
				errs <- fmt.Errorf("writer %d: submit seq %d at node %d: %w", client, sd.Decl.Seq, i+1, err)
				op.Return = math.MaxInt64
				h.add(op)
				return false
			}
			c.mu.RUnlock()
			for ctx.Err() == nil {
				c.mu.RLock()
				if c.dead[i] {
					c.mu.RUnlock()
					break
				}
				if n.Agreed(sd.ID) {
					op.Return = h.now()
					c.mu.RUnlock()
					h.add(op)
					return true
				}
				c.mu.RUnlock()
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	read := func(client, auth int, rng *rand.Rand, at int) {
		if at < 0 {
			at = c.pick(rng)
		} else {
			c.mu.RLock()
			if c.dead[at] {
				c.mu.RUnlock()
				return
			}
		}
		defer c.mu.RUnlock()
		call := h.now()
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		head, _, err := readHead(rctx, c.nodes[at], ConsistencyLinearizable, auths[auth].id())
		cancel()
		if err != nil {
			return // no answer, no observation
		}
		op := porcupine.Operation{ClientId: client, Input: headOp{auth: auth}, Call: call, Output: head, Return: h.now()}
		h.add(op)
		stale.add(op)
	}

	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			a := auths[w]
			prev := a.id()
			for seq := uint64(1); ctx.Err() == nil; seq++ {
				sd := rule(t, a.id(), seq, prev, source, fmt.Sprintf("lin://%d", seq), a.root)
				if !write(w, w, rng, sd) {
					return
				}
				prev = sd.ID
			}
		}()
	}
	const readers = 3
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			for ctx.Err() == nil {
				read(writers+r, rng.IntN(writers), rng, -1)
			}
		}()
	}

	// Faults: partition a follower, prove a stale read there, heal, kill
	// the leader; the workload runs throughout.
	sleep := func(d time.Duration) { time.Sleep(d) }
	sleep(time.Second)
	var li int
	waitFor(t, waitLeader, "one leader", func() bool { li = leaderOf(nodes); return li >= 0 })
	f := (li + 1) % len(nodes)
	t.Logf("partitioning node %d (the leader is node %d)", f+1, li+1)
	for i, n := range nodes {
		if i != f {
			if err := nodes[f].Block(n.PeerID()); err != nil {
				t.Fatal(err)
			}
			if err := n.Block(nodes[f].PeerID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The probe: a write completed at the majority, then reads at the
	// partitioned follower. Its local read is stale; a linearizable one
	// there fails (no quorum), so only the local one enters `stale`.
	probe := writers
	rng := rand.New(rand.NewPCG(99, 3))
	psd := rule(t, auths[probe].id(), 1, auths[probe].id(), source, "probe://*", auths[probe].root)
	pop := porcupine.Operation{ClientId: writers + readers, Input: headOp{auth: probe, write: true, seq: 1}, Call: h.now(), Output: uint64(0)}
	if _, err := nodes[li].Submit(ctx, psd.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the probe agreed at the leader", agreedAt(psd.ID, nodes[li]))
	pop.Return = h.now()
	h.add(pop)
	stale.add(pop)
	call := h.now()
	head, st, _ := readHead(ctx, nodes[f], ConsistencyLocal, auths[probe].id())
	stale.add(porcupine.Operation{ClientId: writers + readers, Input: headOp{auth: probe}, Call: call, Output: head, Return: h.now()})
	t.Logf("local read at the partitioned node: probe head %d (%+v)", head, st)
	for range 5 {
		read(writers+readers, probe, rng, li)
	}
	sleep(1500 * time.Millisecond)
	for i, n := range nodes {
		if i != f {
			_ = nodes[f].Unblock(n.PeerID())
			_ = n.Unblock(nodes[f].PeerID())
			if err := nodes[f].Connect(ctx, n.Addrs()[0]); err != nil {
				t.Logf("reconnect after heal: %v", err)
			}
		}
	}
	t.Log("healed")
	sleep(time.Second)
	waitFor(t, waitLeader, "one leader after the heal", func() bool { li = leaderOf(nodes); return li >= 0 })
	c.mu.Lock()
	c.dead[li] = true
	c.mu.Unlock()
	t.Logf("killing the leader, node %d", li+1)
	_ = nodes[li].Close()
	sleep(2500 * time.Millisecond)
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	ops := h.snapshot()
	var writes, reads, open int
	for _, op := range ops {
		switch {
		case op.Return == math.MaxInt64:
			open++
		case op.Input.(headOp).write:
			writes++
		default:
			reads++
		}
	}
	t.Logf("history: %d completed writes, %d linearizable reads, %d unfinished writes", writes, reads, open)
	if writes < writers || reads < readers {
		t.Fatalf("too few operations to check: %d writes, %d reads", writes, reads)
	}
	if res := porcupine.CheckOperationsTimeout(headModel, ops, 10*time.Second); res != porcupine.Ok {
		t.Fatalf("the history of linearizable reads and writes checks %v, want Ok", res)
	}
	if res := porcupine.CheckOperationsTimeout(headModel, stale.snapshot(), 10*time.Second); res != porcupine.Illegal {
		t.Fatalf("the history with a local read at the partitioned follower checks %v, want Illegal", res)
	}
}
