package gossip

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// CheckpointsTopic carries signed transparency-log checkpoints (C2SP signed
// notes) and their cosignatures. Like DeclarationsTopic it is a wire
// interface. A Host joins it only when Config.Topics names it.
const CheckpointsTopic = "/fednode/checkpoints/1"

// TopicConfig is an extra topic a Host joins at start, besides
// DeclarationsTopic.
type TopicConfig struct {
	// Name is the topic; a wire interface, like DeclarationsTopic.
	Name string
	// MaxSize is the largest message (payload bytes) accepted on this topic:
	// PublishTo refuses bigger ones with ErrTooLarge, and bigger ones from
	// peers are rejected (and penalised) before Validate is called. 0 means
	// MaxMessageSize; more than MaxMessageSize, or negative, is refused by
	// New.
	MaxSize int
	// Validate is as Config.Validate, for this topic. nil accepts everything.
	Validate func(ctx context.Context, from string, data []byte) Verdict
	// Deliver is as Config.Deliver, for this topic: messages from other peers
	// only, from one goroutine per topic, in arrival order.
	Deliver func(from string, data []byte)
}

// Topic errors.
var (
	// ErrBadTopic: a Config.Topics entry is unusable (empty or duplicate
	// name, DeclarationsTopic, MaxSize out of range); New refuses it.
	ErrBadTopic = errors.New("gossip: bad topic config")
	// ErrUnknownTopic: PublishTo or TopicStats was given a topic the Host has
	// not joined (one not in Config.Topics).
	ErrUnknownTopic = errors.New("gossip: topic not joined")
)

// topicState is one joined topic with its callbacks and counters.
type topicState struct {
	name     string
	maxSize  int // Invariant: 0 < maxSize <= MaxMessageSize.
	validate func(ctx context.Context, from string, data []byte) Verdict
	deliver  func(from string, data []byte)
	// topic and sub are set by start before any goroutine reads them.
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	n     counters
}

// counters are one topic's share of Stats. The pubsub event loop (through
// tracer), validators and the deliver loop update them concurrently.
type counters struct {
	accepted, rejected, ignored, oversize, panics, delivered atomic.Uint64
	throttled, undeliverable                                 atomic.Uint64
	replays, rateLimited                                     atomic.Uint64
}

func (c *counters) addTo(s *Stats) {
	s.Accepted += c.accepted.Load()
	s.Rejected += c.rejected.Load()
	s.Ignored += c.ignored.Load()
	s.Oversize += c.oversize.Load()
	s.Panics += c.panics.Load()
	s.Delivered += c.delivered.Load()
	s.Throttled += c.throttled.Load()
	s.Undeliverable += c.undeliverable.Load()
	s.Replays += c.replays.Load()
	s.RateLimited += c.rateLimited.Load()
}

// newTopics checks cfg.Topics and returns the state of every topic to join,
// DeclarationsTopic included, keyed by name.
func newTopics(cfg Config) (map[string]*topicState, error) {
	topics := map[string]*topicState{
		DeclarationsTopic: {
			name:     DeclarationsTopic,
			maxSize:  MaxMessageSize,
			validate: cfg.Validate,
			deliver:  cfg.Deliver,
		},
	}
	for i, tc := range cfg.Topics {
		switch {
		case tc.Name == "":
			return nil, fmt.Errorf("%w: Topics[%d] has no name", ErrBadTopic, i)
		case tc.Name == DeclarationsTopic:
			return nil, fmt.Errorf("%w: Topics[%d] is %s, which every Host joins already (use Config.Validate and Config.Deliver)", ErrBadTopic, i, DeclarationsTopic)
		case topics[tc.Name] != nil:
			return nil, fmt.Errorf("%w: Topics[%d]: %s appears twice", ErrBadTopic, i, tc.Name)
		case tc.MaxSize < 0 || tc.MaxSize > MaxMessageSize:
			return nil, fmt.Errorf("%w: Topics[%d] (%s): MaxSize %d, want 0 (for MaxMessageSize) to %d", ErrBadTopic, i, tc.Name, tc.MaxSize, MaxMessageSize)
		}
		max := tc.MaxSize
		if max == 0 {
			max = MaxMessageSize
		}
		topics[tc.Name] = &topicState{name: tc.Name, maxSize: max, validate: tc.Validate, deliver: tc.Deliver}
	}
	return topics, nil
}

// sortedTopics returns the topics in name order, so that start joins them in
// a stable order.
func sortedTopics(m map[string]*topicState) []*topicState {
	out := make([]*topicState, 0, len(m))
	for _, ts := range m {
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b *topicState) int { return strings.Compare(a.name, b.name) })
	return out
}

func topicNames(m map[string]*topicState) []string {
	out := make([]string, 0, len(m))
	for _, ts := range sortedTopics(m) {
		out = append(out, ts.name)
	}
	return out
}

// topicMessageID is the message ID on an extra topic: the topic name, a zero
// byte, then the SHA-256 of the payload. Still a content hash (the same
// message relayed by different peers is one message), but separated by
// topic, because GossipSub keeps one seen-cache for all topics and marks a
// message seen before validating it: with plain sha256(data) everywhere, a
// peer could send a checkpoint's bytes on DeclarationsTopic (rejected there)
// and so make us drop the real checkpoint for two minutes as a duplicate. A
// declarations ID (messageID, 32 bytes, unchanged for wire compatibility)
// never equals one of these, which are longer, and two of these are equal
// only for the same topic and payload.
func topicMessageID(topic string) pubsub.MsgIdFunction {
	prefix := topic + "\x00"
	return func(m *pb.Message) string {
		sum := sha256.Sum256(m.GetData())
		return prefix + string(sum[:])
	}
}

// PublishTo is Publish for topic, which must be DeclarationsTopic or one of
// Config.Topics (else ErrUnknownTopic). The local check uses that topic's
// MaxSize and Validate: it returns ErrTooLarge, ErrRejected or ErrIgnored
// when they refuse the message. As with Publish, a nil error means queued,
// a message already delivered within two minutes is not sent again, and
// data must not be modified afterwards.
func (g *Host) PublishTo(ctx context.Context, topic string, data []byte) error {
	ts, ok := g.topics[topic]
	if !ok {
		return fmt.Errorf("%w: %q (joined: %v)", ErrUnknownTopic, topic, topicNames(g.topics))
	}
	return g.publish(ctx, ts, data)
}

// TopicStats returns the counters of one joined topic (DeclarationsTopic or
// one of Config.Topics), and false for any other. DroppedRPCs is always 0
// there: an RPC carries messages of several topics, so drops are counted
// only in Stats.
func (g *Host) TopicStats(topic string) (Stats, bool) {
	ts, ok := g.topics[topic]
	if !ok {
		return Stats{}, false
	}
	var s Stats
	ts.n.addTo(&s)
	return s, true
}

// sizeError is ErrTooLarge for a topic whose limit is below MaxMessageSize,
// with a message that names the real limit.
type sizeError struct {
	topic     string
	size, max int
}

func (e *sizeError) Error() string {
	return fmt.Sprintf("gossip: message rejected: %d bytes, more than the %d that %s accepts", e.size, e.max, e.topic)
}

func (e *sizeError) Unwrap() error { return ErrTooLarge }

func (ts *topicState) tooLarge(size int) error {
	if ts.maxSize == MaxMessageSize {
		return fmt.Errorf("%w (got %d)", ErrTooLarge, size)
	}
	return &sizeError{topic: ts.name, size: size, max: ts.maxSize}
}
