package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// checkpointMax is the MaxSize the tests give CheckpointsTopic: well below
// MaxMessageSize, so that per-topic limits are what is exercised.
const checkpointMax = 4 << 10

// topicPeersOf returns the peers h knows to be subscribed to topic.
func topicPeersOf(h *Host, topic string) []string {
	return peerStrings(h.topics[topic].topic.ListPeers())
}

// linkTopic waits until a and b (already connected) know each other to be
// subscribed to topic.
func linkTopic(t testing.TB, a, b *Host, topic string) {
	t.Helper()
	eventually(t, topic+" subscriptions to propagate", func() bool {
		return slices.Contains(topicPeersOf(a, topic), b.PeerID()) && slices.Contains(topicPeersOf(b, topic), a.PeerID())
	})
}

func topicStats(t testing.TB, h *Host, topic string) Stats {
	t.Helper()
	s, ok := h.TopicStats(topic)
	if !ok {
		t.Fatalf("TopicStats(%q): not joined", topic)
	}
	return s
}

func TestNewRejectsBadTopics(t *testing.T) {
	tests := []struct {
		name   string
		topics []TopicConfig
	}{
		{name: "empty name", topics: []TopicConfig{{Name: ""}}},
		{name: "declarations topic", topics: []TopicConfig{{Name: DeclarationsTopic}}},
		{name: "duplicate", topics: []TopicConfig{{Name: CheckpointsTopic}, {Name: CheckpointsTopic, MaxSize: 10}}},
		{name: "negative MaxSize", topics: []TopicConfig{{Name: CheckpointsTopic, MaxSize: -1}}},
		{name: "MaxSize over MaxMessageSize", topics: []TopicConfig{{Name: CheckpointsTopic, MaxSize: MaxMessageSize + 1}}},
	}
	id := mustIdentity(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(context.Background(), Config{Identity: id, Logger: testLogger(t), Topics: tt.topics})
			if err == nil {
				h.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, ErrBadTopic) || !strings.HasPrefix(err.Error(), "gossip: ") {
				t.Fatalf("err = %v, want ErrBadTopic with the gossip: prefix", err)
			}
		})
	}
}

// TestTopicsKeptApart: two hosts on both topics. Each message reaches the
// other host's Deliver of its own topic only, also when the same bytes go
// out on both topics, and the counters are kept per topic.
func TestTopicsKeptApart(t *testing.T) {
	type pair struct{ decl, cp *recorder }
	mk := func() (*Host, pair) {
		r := pair{decl: newRecorder(), cp: newRecorder()}
		h := newHost(t, Config{
			Deliver: r.decl.deliver,
			Topics:  []TopicConfig{{Name: CheckpointsTopic, MaxSize: checkpointMax, Deliver: r.cp.deliver}},
		})
		return h, r
	}
	a, ra := mk()
	b, rb := mk()
	link(t, a, b)
	linkTopic(t, a, b, CheckpointsTopic)

	want := []string{CheckpointsTopic, DeclarationsTopic}
	for _, h := range []*Host{a, b} {
		if got := h.Topics(); !slices.Equal(got, want) {
			t.Fatalf("Topics = %v, want %v", got, want)
		}
	}

	ctx := context.Background()
	publish := func(h *Host, topic, msg string) {
		t.Helper()
		if err := h.PublishTo(ctx, topic, []byte(msg)); err != nil {
			t.Fatalf("PublishTo(%s, %q): %v", topic, msg, err)
		}
	}
	if err := a.Publish(ctx, []byte("declaration from A")); err != nil {
		t.Fatal(err)
	}
	publish(a, CheckpointsTopic, "checkpoint from A")
	publish(b, CheckpointsTopic, "checkpoint from B")
	publish(b, DeclarationsTopic, "declaration from B") // PublishTo takes DeclarationsTopic too
	// Message IDs are content hashes per topic: the same bytes on the other
	// topic are a different message, not a duplicate.
	publish(a, DeclarationsTopic, "same bytes")
	publish(a, CheckpointsTopic, "same bytes")

	tests := []struct {
		name string
		rec  *recorder
		want map[string]int
	}{
		{name: "B declarations", rec: rb.decl, want: map[string]int{"declaration from A": 1, "same bytes": 1}},
		{name: "B checkpoints", rec: rb.cp, want: map[string]int{"checkpoint from A": 1, "same bytes": 1}},
		{name: "A declarations", rec: ra.decl, want: map[string]int{"declaration from B": 1}},
		{name: "A checkpoints", rec: ra.cp, want: map[string]int{"checkpoint from B": 1}},
	}
	for _, tt := range tests {
		eventually(t, tt.name+" deliveries", func() bool { return tt.rec.distinct() == len(tt.want) })
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.snapshot(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("delivered %v, want %v", got, tt.want)
			}
		})
	}

	if s := topicStats(t, b, CheckpointsTopic); s.Delivered != 2 || s.Accepted != 3 {
		t.Errorf("B checkpoint stats %+v, want 2 delivered, 3 accepted (one local)", s)
	}
	if s := topicStats(t, b, DeclarationsTopic); s.Delivered != 2 || s.Accepted != 3 {
		t.Errorf("B declaration stats %+v, want 2 delivered, 3 accepted (one local)", s)
	}
	if s := b.Stats(); s.Delivered != 4 || s.Accepted != 6 {
		t.Errorf("B total stats %+v, want the sum of both topics", s)
	}
	if _, ok := b.TopicStats("/fednode/unknown/1"); ok {
		t.Error("TopicStats of an unknown topic reported ok")
	}
}

func TestPublishToLocalVerdicts(t *testing.T) {
	const anyTopic = "/fednode/test/1" // MaxSize 0: MaxMessageSize
	h := newHost(t, Config{
		Topics: []TopicConfig{
			{
				Name:    CheckpointsTopic,
				MaxSize: checkpointMax,
				Validate: func(_ context.Context, _ string, data []byte) Verdict {
					switch string(data) {
					case "reject":
						return Reject
					case "ignore":
						return Ignore
					case "panic":
						panic("validator bug")
					}
					return Accept
				},
			},
			{Name: anyTopic},
		},
	})
	tests := []struct {
		name    string
		topic   string
		data    []byte
		wantErr []error
	}{
		{name: "accept", topic: CheckpointsTopic, data: []byte("fine")},
		{name: "largest allowed", topic: CheckpointsTopic, data: make([]byte, checkpointMax)},
		{name: "reject", topic: CheckpointsTopic, data: []byte("reject"), wantErr: []error{ErrRejected}},
		{name: "ignore", topic: CheckpointsTopic, data: []byte("ignore"), wantErr: []error{ErrIgnored}},
		{name: "panic counts as reject", topic: CheckpointsTopic, data: []byte("panic"), wantErr: []error{ErrRejected}},
		{name: "over MaxSize", topic: CheckpointsTopic, data: make([]byte, checkpointMax+1), wantErr: []error{ErrTooLarge, ErrRejected}},
		{name: "MaxSize 0 allows MaxMessageSize", topic: anyTopic, data: make([]byte, MaxMessageSize)},
		{name: "MaxSize 0 refuses more", topic: anyTopic, data: make([]byte, MaxMessageSize+1), wantErr: []error{ErrTooLarge, ErrRejected}},
		{name: "declarations keep their own limit", topic: DeclarationsTopic, data: make([]byte, checkpointMax+1)},
		{name: "unknown topic", topic: "/fednode/unknown/1", data: []byte("fine"), wantErr: []error{ErrUnknownTopic}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.PublishTo(context.Background(), tt.topic, tt.data)
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("PublishTo: %v", err)
			}
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) || !strings.HasPrefix(err.Error(), "gossip: ") {
					t.Fatalf("PublishTo: err = %v, want %v with the gossip: prefix", err, want)
				}
			}
		})
	}
	if err := h.PublishTo(context.Background(), CheckpointsTopic, make([]byte, checkpointMax+1)); !strings.Contains(err.Error(), fmt.Sprint(checkpointMax)) {
		t.Errorf("oversize error %q does not name the topic's limit", err)
	}
	if s := topicStats(t, h, CheckpointsTopic); s.Panics != 1 || s.Ignored != 1 || s.Rejected != 2 || s.Accepted != 2 {
		t.Errorf("checkpoint stats %+v, want 2 accepted, 2 rejected (one panic), 1 ignored", s)
	}
	if s := topicStats(t, h, DeclarationsTopic); s.Panics != 0 || s.Rejected != 0 || s.Accepted != 1 {
		t.Errorf("declaration stats %+v, want 1 accepted and nothing else", s)
	}
}

// TestTopicLineRelay: A-B-C in a line, all on CheckpointsTopic. A checkpoint
// B rejects reaches neither B's Deliver nor C and costs A score at B; one B
// accepts reaches C through B.
func TestTopicLineRelay(t *testing.T) {
	recs := make([]*recorder, 3)
	hosts := make([]*Host, 3)
	for i := range hosts {
		recs[i] = newRecorder()
		cfg := Config{
			Deliver: func(from string, data []byte) { t.Errorf("declaration Deliver got %q", data) },
			Topics:  []TopicConfig{{Name: CheckpointsTopic, MaxSize: checkpointMax, Deliver: recs[i].deliver}},
		}
		if i == 1 {
			cfg.Topics[0].Validate = func(_ context.Context, _ string, data []byte) Verdict {
				if bytes.HasPrefix(data, []byte("reject:")) {
					return Reject
				}
				return Accept
			}
		}
		hosts[i] = newHost(t, cfg)
	}
	a, b, c := hosts[0], hosts[1], hosts[2]
	link(t, a, b)
	link(t, b, c)
	linkTopic(t, a, b, CheckpointsTopic)
	linkTopic(t, b, c, CheckpointsTopic)
	eventually(t, "the B-C checkpoints mesh", func() bool {
		return slices.Contains(b.meshPeers(CheckpointsTopic), c.PeerID()) && slices.Contains(c.meshPeers(CheckpointsTopic), b.PeerID())
	})

	ctx := context.Background()
	if err := a.PublishTo(ctx, CheckpointsTopic, []byte("reject:1")); err != nil {
		t.Fatalf("A accepts what B rejects, PublishTo: %v", err)
	}
	eventually(t, "B to reject the checkpoint", func() bool { return topicStats(t, b, CheckpointsTopic).Rejected == 1 })
	if err := a.PublishTo(ctx, CheckpointsTopic, []byte("checkpoint 1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "C to get A's checkpoint", func() bool { return recs[2].times("checkpoint 1") == 1 })
	if from := recs[2].sender("checkpoint 1"); from != b.PeerID() {
		t.Errorf("C got A's checkpoint from %s, want the relay B %s", from, b.PeerID())
	}
	for i, want := range []map[string]int{{}, {"checkpoint 1": 1}, {"checkpoint 1": 1}} {
		if got := recs[i].snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("host %d delivered %v, want %v", i, got, want)
		}
	}
	if s := topicStats(t, b, DeclarationsTopic); s.Rejected != 0 {
		t.Errorf("B counted the checkpoint rejection on declarations: %+v", s)
	}
	eventually(t, "B's score of A to show the rejection", func() bool {
		s, ok := b.PeerScore(a.PeerID())
		return ok && s < 0
	})
}

// TestTopicRogue: a raw GossipSub peer on CheckpointsTopic. Its message one
// byte over MaxSize is rejected before Validate, one of exactly MaxSize is
// delivered; the same bytes sent first on DeclarationsTopic (and rejected
// there) do not suppress the checkpoint; and a flood of invalid checkpoints
// graylists it as invalid declarations would.
func TestTopicRogue(t *testing.T) {
	var validated atomic.Int64
	rb := newRecorder()
	b := newHost(t, Config{
		Validate: func(context.Context, string, []byte) Verdict { return Reject },
		Topics: []TopicConfig{{
			Name:    CheckpointsTopic,
			MaxSize: checkpointMax,
			Validate: func(_ context.Context, _ string, data []byte) Verdict {
				if len(data) > checkpointMax {
					t.Errorf("Validate called with %d bytes", len(data))
				}
				validated.Add(1)
				if bytes.HasPrefix(data, []byte("bad")) {
					return Reject
				}
				return Accept
			},
			Deliver: rb.deliver,
		}},
	})
	r := newRogue(t, b, CheckpointsTopic)
	cp := r.topics[CheckpointsTopic]
	ctx := context.Background()

	big := bytes.Repeat([]byte{'x'}, checkpointMax+1)
	if err := cp.Publish(ctx, big); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to reject the oversize checkpoint", func() bool { return topicStats(t, b, CheckpointsTopic).Oversize == 1 })
	largest := bytes.Repeat([]byte{'y'}, checkpointMax)
	if err := cp.Publish(ctx, largest); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to deliver the largest allowed checkpoint", func() bool { return rb.times(string(largest)) == 1 })
	if rb.times(string(big)) != 0 || validated.Load() != 1 {
		t.Fatalf("oversize delivered %d times; Validate ran %d times, want 1", rb.times(string(big)), validated.Load())
	}

	shared := []byte("a checkpoint also sent as a declaration")
	if err := r.topic.Publish(ctx, shared); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to reject it as a declaration", func() bool { return topicStats(t, b, DeclarationsTopic).Rejected == 1 })
	if err := cp.Publish(ctx, shared); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to deliver it as a checkpoint", func() bool { return rb.times(string(shared)) == 1 })

	// With the oversize one, 7 invalid checkpoints graylist (see score.go);
	// once graylisted the rest are dropped unread.
	for i := range 8 {
		if err := cp.Publish(ctx, fmt.Appendf(nil, "bad checkpoint %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "B to graylist the rogue", func() bool {
		s, ok := b.PeerScore(r.id)
		return ok && s <= GraylistThreshold
	})
	s, _ := b.PeerScore(r.id)
	t.Logf("rogue's score at B: %v; B checkpoint stats %+v", s, topicStats(t, b, CheckpointsTopic))
}
