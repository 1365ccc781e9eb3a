package node

// Equivocation at node level: an authority that signs two different
// declarations at one chain position. The graph (authority/equivocation.go)
// judges a pair and marks the authority; this file is how a node comes to
// hold a pair and makes every replica hold it:
//
//   - Detection outside Raft: a submitted or gossiped declaration that is
//     validly signed for a position the agreed graph or the pending pool
//     already fills with another one. The pair goes to the evidence pool
//     and out on EvidenceTopic (validated, both halves, before any relay).
//   - Ordering: the leader proposes each pending pair as a cmdEvidence
//     entry (a follower forwards it); the FSM applies it through
//     chainstore.ApplyEvidence, so every replica records it at the same
//     point. A conflicting declaration that reaches Raft itself is recorded
//     by chainstore.ApplyDeclarations (the graph's *EquivocationError).
//   - Effect: Verify denies with reason equivocation on every node once the
//     pair is agreed, until the authority rotates its root (threshold).
//     Status lists the evidence (equivocations) and the counter
//     fednode_equivocation_evidence_total counts it by source.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/consensus"
	"github.com/fednode/fednode/gossip"
)

// EvidenceTopic carries proofs of equivocation: each message is the CBOR
// array of the two declaration envelopes (definite lengths, byte strings).
// A wire interface, like gossip.DeclarationsTopic.
const EvidenceTopic = "/fednode/evidence/1"

// cmdEvidence is the Raft command that carries one proof of equivocation
// (body: the EvidenceTopic message). A wire format: keep the number.
const cmdEvidence consensus.CommandType = 2

const (
	// MaxEvidenceMessage bounds an evidence message: two declarations and
	// the array around them.
	MaxEvidenceMessage = 2*authority.MaxDeclarationSize + 16
	// maxPendingEvidence bounds the evidence pool: each entry needs two
	// valid signatures of one authority, but a faulty authority can sign
	// many positions.
	maxPendingEvidence = 1024
)

// equivocations is the node's evidence pool and its counter. The zero value
// is not ready: initEquivocation sets it up.
type equivocations struct {
	mu sync.Mutex
	// pending holds proofs not yet agreed, by position. Invariant: each
	// verified (CheckEvidence) when added.
	pending map[posKey]*pendingEvidence
	// npending is len(pending), read without the lock by Verify's hot path.
	npending atomic.Int64
	// forwarding is set while a forward of evidence to the leader is in
	// flight.
	forwarding atomic.Bool
	counter    *prometheus.CounterVec
}

type pendingEvidence struct {
	a, b        []byte
	ids         [2]authority.ID
	added       time.Time
	forwarded   time.Time
	forwardedTo string
}

// initEquivocation prepares the evidence pool and registers its counter.
func (n *Node) initEquivocation() {
	n.eq.pending = map[posKey]*pendingEvidence{}
	n.eq.counter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fednode_equivocation_evidence_total",
		Help: "Proofs of equivocation by source: local (seen here by submit or gossip), gossip (received on the evidence topic), agreed (recorded by this replica's agreed graph).",
	}, []string{"source"})
	n.met.reg.MustRegister(n.eq.counter)
}

// evidenceTopic is the gossip configuration of EvidenceTopic.
func (n *Node) evidenceTopic() gossip.TopicConfig {
	return gossip.TopicConfig{Name: EvidenceTopic, MaxSize: MaxEvidenceMessage, Validate: n.validateEvidence, Deliver: n.deliverEvidence}
}

var evidenceDec, _ = cbor.DecOptions{
	MaxArrayElements: 16,
	MaxNestedLevels:  4,
	IndefLength:      cbor.IndefLengthForbidden,
	TagsMd:           cbor.TagsForbidden,
}.DecMode()

// ErrBadEvidence: bytes that are not an evidence message.
var ErrBadEvidence = errors.New("node: malformed evidence message")

// EncodeEvidence is the EvidenceTopic message (and cmdEvidence body) of a
// pair of envelopes.
func EncodeEvidence(a, b []byte) []byte {
	out, err := cbor.Marshal([][]byte{a, b})
	if err != nil {
		panic(err) // two byte strings always encode
	}
	return out
}

// DecodeEvidence parses an evidence message: exactly two non-empty byte
// strings of at most authority.MaxDeclarationSize, in the one encoding
// EncodeEvidence gives (so one proof has one gossip message ID). It checks
// the shape only; the graph judges the envelopes.
func DecodeEvidence(msg []byte) (a, b []byte, err error) {
	if len(msg) > MaxEvidenceMessage {
		return nil, nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrBadEvidence, len(msg), MaxEvidenceMessage)
	}
	var pair [][]byte
	if err := evidenceDec.Unmarshal(msg, &pair); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadEvidence, err)
	}
	if len(pair) != 2 {
		return nil, nil, fmt.Errorf("%w: %d elements, want the two envelopes", ErrBadEvidence, len(pair))
	}
	for i, e := range pair {
		if len(e) == 0 || len(e) > authority.MaxDeclarationSize {
			return nil, nil, fmt.Errorf("%w: envelope %d is %d bytes, want 1 to %d", ErrBadEvidence, i+1, len(e), authority.MaxDeclarationSize)
		}
	}
	if !bytes.Equal(EncodeEvidence(pair[0], pair[1]), msg) {
		return nil, nil, fmt.Errorf("%w: not the canonical encoding", ErrBadEvidence)
	}
	return pair[0], pair[1], nil
}

// checkEvidence judges a pair against the agreed graph without recording
// it (authority.Graph.CheckEvidence).
func (n *Node) checkEvidence(a, b []byte) (authority.Evidence, error) {
	var ev authority.Evidence
	err := fmt.Errorf("node: the store's view cannot judge evidence")
	n.store.View(func(v authority.View) {
		if g, ok := v.(interface {
			CheckEvidence(a, b []byte) (authority.Evidence, error)
		}); ok {
			ev, err = g.CheckEvidence(a, b)
		}
	})
	return ev, err
}

// validateEvidence runs on every evidence message before delivery or relay:
// both halves must verify for one position. A pair that proves nothing is
// rejected (and scores its sender); one this replica cannot judge yet (an
// unknown authority, a position ahead of its head) or already holds is
// ignored.
func (n *Node) validateEvidence(_ context.Context, from string, data []byte) gossip.Verdict {
	a, b, err := DecodeEvidence(data)
	if err == nil {
		_, err = n.checkEvidence(a, b)
	}
	switch {
	case err == nil:
		return gossip.Accept
	case errors.Is(err, authority.ErrDuplicate), errors.Is(err, authority.ErrGap), errors.Is(err, authority.ErrUnknownAuthority):
		return gossip.Ignore
	default:
		n.log.Debug("gossip: bad evidence", "from", from, "err", err)
		return gossip.Reject
	}
}

func (n *Node) deliverEvidence(_ string, data []byte) {
	a, b, err := DecodeEvidence(data)
	if err != nil {
		return
	}
	n.addEvidence(a, b, "gossip")
}

// addEvidence puts a pair that CheckEvidence accepts into the evidence
// pool, so the proposer orders it, and reports whether it was new here.
// source labels the counter; a pair found here ("local") is also gossiped.
func (n *Node) addEvidence(a, b []byte, source string) bool {
	ev, err := n.checkEvidence(a, b)
	if err != nil {
		if !errors.Is(err, authority.ErrDuplicate) {
			n.log.Debug("evidence not recorded", "source", source, "err", err)
		}
		return false
	}
	k := posKey{ev.A.Decl.Authority, ev.A.Decl.Seq}
	n.eq.mu.Lock()
	_, dup := n.eq.pending[k]
	if !dup && len(n.eq.pending) < maxPendingEvidence {
		n.eq.pending[k] = &pendingEvidence{a: ev.A.Raw, b: ev.B.Raw, ids: [2]authority.ID{ev.A.ID, ev.B.ID}, added: time.Now()}
		n.eq.npending.Store(int64(len(n.eq.pending)))
	}
	n.eq.mu.Unlock()
	if dup {
		return false
	}
	n.eq.counter.WithLabelValues(source).Inc()
	n.log.Warn("EQUIVOCATION: an authority signed two different declarations at one chain position; recording the evidence",
		"authority", ev.A.Decl.Authority.Short(), "seq", ev.A.Decl.Seq, "a", ev.A.ID.Short(), "b", ev.B.ID.Short(), "source", source)
	if source == "local" {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		if err := n.host.PublishTo(ctx, EvidenceTopic, EncodeEvidence(ev.A.Raw, ev.B.Raw)); err != nil && !errors.Is(err, gossip.ErrClosed) {
			n.log.Debug("publish evidence", "err", err)
		}
	}
	n.poke()
	return true
}

// conflictEvidence is admit's and gossip delivery's hook: sd is validly
// signed (checkSignature passed) and its position is taken, by the agreed
// graph or by pending, another declaration there (nil if none). If the two
// prove equivocation, the pair is recorded; it reports whether they do.
func (n *Node) conflictEvidence(sd *authority.Signed, pending *authority.Signed) bool {
	if sd.Decl.Kind == authority.KindGenesis || !sd.Decl.Kind.OnChain() {
		return false
	}
	var other []byte
	n.store.View(func(v authority.View) {
		g, ok := v.(interface{ Check(*authority.Signed) error })
		if !ok {
			return
		}
		var eq *authority.EquivocationError
		if err := g.Check(sd); errors.As(err, &eq) {
			other = eq.Evidence.A.Raw
		}
	})
	if other == nil && pending != nil && pending.ID != sd.ID {
		other = pending.Raw
	}
	if other == nil {
		return false
	}
	n.addEvidence(other, sd.Raw, "local")
	return true
}

// applyEvidence is the FSM handler of cmdEvidence. Deterministic: it
// decodes the pair and lets the store judge and record it.
func (n *Node) applyEvidence(index uint64, body []byte) any {
	a, b, err := DecodeEvidence(body)
	if err != nil {
		if err := n.store.MarkApplied(index); err != nil {
			panic(fmt.Sprintf("node: mark index %d applied: %v", index, err))
		}
		return err
	}
	err = n.store.ApplyEvidence(index, a, b)
	if err == nil {
		n.eq.counter.WithLabelValues("agreed").Inc()
		n.poke()
	}
	return err
}

// noteApplied is applyDeclarations' hook: the store had before proofs
// before the batch; a committed declaration refused as equivocation at a
// new position made the graph record the pair (chainstore persisted it).
func (n *Node) noteApplied(before int) {
	if d := n.store.EvidenceCount() - before; d > 0 {
		n.eq.counter.WithLabelValues("agreed").Add(float64(d))
		n.log.Warn("EQUIVOCATION: a committed declaration conflicts, validly signed, with the one at its position; the agreed graph keeps the pair", "new_proofs", d)
	}
}

// agreedEvidence is the set of positions the agreed graph holds evidence
// for.
func (n *Node) agreedEvidence() map[posKey]bool {
	out := map[posKey]bool{}
	for _, e := range n.store.Evidence() {
		out[posKey{e.Authority, e.Seq}] = true
	}
	return out
}

// proposeEvidence carries pending proofs to Raft: the leader proposes
// each, a follower forwards them to the leader. It drops what the agreed
// graph holds and what stayed pending too long.
func (n *Node) proposeEvidence() {
	agreed := n.agreedEvidence()
	now := time.Now()
	type item struct {
		k posKey
		p *pendingEvidence
	}
	var todo []item
	n.eq.mu.Lock()
	for k, p := range n.eq.pending {
		if agreed[k] || now.Sub(p.added) > pendingTTL {
			delete(n.eq.pending, k)
			n.eq.npending.Store(int64(len(n.eq.pending)))
			continue
		}
		todo = append(todo, item{k, p})
	}
	n.eq.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	if n.raft.IsLeader() {
		for _, it := range todo {
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			res, _, err := n.raft.Apply(ctx, consensus.Command{Type: cmdEvidence, Body: EncodeEvidence(it.p.a, it.p.b)})
			cancel()
			if err != nil {
				n.log.Debug("propose evidence", "err", err)
				return
			}
			e, _ := res.(error)
			switch {
			case errors.Is(e, authority.ErrGap), errors.Is(e, authority.ErrUnknownAuthority):
				// The chain has not reached the position here yet: retry.
				continue
			case e != nil && !errors.Is(e, authority.ErrDuplicate):
				n.log.Warn("the agreed graph refused evidence", "authority", it.k.a.Short(), "seq", it.k.seq, "err", e)
			}
			n.eq.mu.Lock()
			delete(n.eq.pending, it.k)
			n.eq.npending.Store(int64(len(n.eq.pending)))
			n.eq.mu.Unlock()
		}
		return
	}
	leader := n.raft.Leader()
	if leader == "" || leader == n.host.PeerID() {
		return
	}
	var pairs [][][]byte
	n.eq.mu.Lock()
	for _, it := range todo {
		if it.p.forwardedTo != leader || now.Sub(it.p.forwarded) >= forwardRetry {
			it.p.forwardedTo, it.p.forwarded = leader, now
			pairs = append(pairs, [][]byte{it.p.a, it.p.b})
		}
	}
	n.eq.mu.Unlock()
	if len(pairs) == 0 || !n.eq.forwarding.CompareAndSwap(false, true) {
		return
	}
	n.wg.Go(func() {
		defer n.eq.forwarding.Store(false)
		ctx, cancel := context.WithTimeout(n.ctx, forwardTimeout)
		defer cancel()
		var resp forwardResponse
		if err := n.call(ctx, leader, ProtoForward, forwardRequest{Evidence: pairs}, &resp); err != nil {
			n.log.Debug("forward evidence to leader", "leader", leader, "n", len(pairs), "err", err)
		}
	})
}

// admitForwardedEvidence is handleForward's hook for the pairs a follower
// forwarded; it returns one error text per pair that is not evidence.
func (n *Node) admitForwardedEvidence(pairs [][][]byte) []string {
	var errs []string
	for i, p := range pairs {
		if len(p) != 2 {
			errs = append(errs, fmt.Sprintf("evidence %d: %d envelopes, want 2", i+1, len(p)))
			continue
		}
		if _, err := n.checkEvidence(p[0], p[1]); err != nil && !errors.Is(err, authority.ErrDuplicate) {
			errs = append(errs, fmt.Sprintf("evidence %d: %v", i+1, err))
			continue
		}
		n.addEvidence(p[0], p[1], "gossip")
	}
	return errs
}

// EquivocationStatus is one proof of equivocation a node holds: the JSON of
// an element of Status's equivocations.
type EquivocationStatus struct {
	Authority authority.ID `json:"authority"`
	Name      string       `json:"name,omitempty"`
	Seq       uint64       `json:"seq"`
	// IDs are the two declarations: first the one the chain holds at Seq,
	// if it holds either.
	IDs [2]authority.ID `json:"ids"`
	// Agreed: the agreed graph holds it (every replica denies on it);
	// false: seen here, on its way through Raft.
	Agreed bool `json:"agreed"`
}

// Equivocations lists the evidence this node holds: agreed first, in
// recording order, then pending.
func (n *Node) Equivocations() []EquivocationStatus {
	out := []EquivocationStatus{}
	agreed := map[posKey]bool{}
	for _, e := range n.store.Evidence() {
		agreed[posKey{e.Authority, e.Seq}] = true
		out = append(out, EquivocationStatus{Authority: e.Authority, Seq: e.Seq, IDs: [2]authority.ID{e.A, e.B}, Agreed: true})
	}
	var pending []EquivocationStatus
	n.eq.mu.Lock()
	for k, p := range n.eq.pending {
		if !agreed[k] {
			pending = append(pending, EquivocationStatus{Authority: k.a, Seq: k.seq, IDs: p.ids})
		}
	}
	n.eq.mu.Unlock()
	slices.SortFunc(pending, func(x, y EquivocationStatus) int {
		if c := bytes.Compare(x.Authority[:], y.Authority[:]); c != 0 {
			return c
		}
		return cmp.Compare(x.Seq, y.Seq)
	})
	out = append(out, pending...)
	n.store.View(func(v authority.View) {
		for i := range out {
			if a, ok := v.Authority(out[i].Authority); ok {
				out[i].Name = a.Name
			}
		}
	})
	return out
}

// Authority is the agreed graph's, marked equivocating also from evidence
// seen here and not yet agreed: like a revocation from gossip, a verified
// proof denies at once rather than wait for Raft (fail safe). A rotation
// after the position clears a pending mark as it clears an agreed one.
func (o overlay) Authority(id authority.ID) (*authority.AuthorityInfo, bool) {
	a, ok := o.View.Authority(id)
	if !ok || o.eq == nil || o.eq.npending.Load() == 0 {
		return a, ok
	}
	at := o.eq.lowestPending(a)
	if at == 0 || (a.EquivocatedAt != 0 && a.EquivocatedAt <= at) {
		return a, ok
	}
	marked := *a
	marked.EquivocatedAt = at
	return &marked, true
}

// lowestPending is the lowest seq of a pending proof against a that no
// rotation of a comes after; 0 if none.
func (e *equivocations) lowestPending(a *authority.AuthorityInfo) uint64 {
	var lastRotation uint64
	if len(a.Roots) > 0 {
		lastRotation = a.Roots[len(a.Roots)-1].Since
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var low uint64
	for k := range e.pending {
		if k.a == a.ID && k.seq >= lastRotation && (low == 0 || k.seq < low) {
			low = k.seq
		}
	}
	return low
}
