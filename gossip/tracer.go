package gossip

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// tracer follows GossipSub's mesh for our topics and counts the ways
// GossipSub loses messages, which it otherwise does silently. pubsub calls
// it from its event loop, so every method is short and never blocks.
type tracer struct{ g *Host }

var _ pubsub.RawTracer = tracer{}

func (t tracer) Graft(p peer.ID, topic string) {
	if t.g.topics[topic] == nil {
		return
	}
	t.g.mu.Lock()
	m := t.g.mesh[topic]
	if m == nil {
		m = make(map[string]struct{})
		t.g.mesh[topic] = m
	}
	m[p.String()] = struct{}{}
	t.g.mu.Unlock()
}

func (t tracer) Prune(p peer.ID, topic string) {
	t.g.mu.Lock()
	delete(t.g.mesh[topic], p.String())
	t.g.mu.Unlock()
}

// OnClosedOutboundStream is how gossipsub drops a departed peer from its
// mesh, without a Prune.
func (t tracer) OnClosedOutboundStream(p peer.ID) {
	t.g.mu.Lock()
	for _, m := range t.g.mesh {
		delete(m, p.String())
	}
	t.g.mu.Unlock()
}

// counters returns the counters of m's topic. pubsub only queues and
// delivers messages of topics we subscribe to, so nil (not counted) should
// not happen.
func (t tracer) counters(m *pubsub.Message) *counters {
	if ts := t.g.topics[m.GetTopic()]; ts != nil {
		return &ts.n
	}
	return nil
}

func (t tracer) RejectMessage(m *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull, pubsub.RejectValidationThrottled:
		if c := t.counters(m); c != nil {
			c.throttled.Add(1)
		}
	}
}

func (t tracer) UndeliverableMessage(m *pubsub.Message) {
	if c := t.counters(m); c != nil {
		c.undeliverable.Add(1)
	}
}

func (t tracer) DropRPC(*pubsub.RPC, peer.ID)                         { t.g.droppedRPCs.Add(1) }
func (t tracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t tracer) Join(string)                                          {}
func (t tracer) Leave(string)                                         {}
func (t tracer) ValidateMessage(*pubsub.Message)                      {}
func (t tracer) DeliverMessage(*pubsub.Message)                       {}
func (t tracer) DuplicateMessage(*pubsub.Message)                     {}
func (t tracer) ThrottlePeer(peer.ID)                                 {}
func (t tracer) RecvRPC(*pubsub.RPC)                                  {}
func (t tracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t tracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
