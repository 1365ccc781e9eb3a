package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// deadline is how long eventual conditions get; generous for a loaded
// 2-core machine under -race. Passing tests take a fraction of it.
const deadline = 20 * time.Second

// tlog routes slog output to t.Log, and drops what libp2p goroutines log
// after the test has finished (t.Log would panic).
type tlog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &tlog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: testLogLevel}))
}

func mustIdentity(t testing.TB) []byte {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newHost starts a host on loopback; Close runs at cleanup.
func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	if cfg.Identity == nil {
		cfg.Identity = mustIdentity(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close %s: %v", h.PeerID(), err)
		}
	})
	return h
}

// recorder is a Deliver callback that remembers what it saw.
type recorder struct {
	mu    sync.Mutex
	count map[string]int
	from  map[string]string
	total int
}

func newRecorder() *recorder {
	return &recorder{count: make(map[string]int), from: make(map[string]string)}
}

func (r *recorder) deliver(from string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count[string(data)]++
	r.from[string(data)] = from
	r.total++
}

func (r *recorder) times(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[msg]
}

func (r *recorder) sender(msg string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.from[msg]
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.count)
}

func (r *recorder) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.count))
	for k, v := range r.count {
		out[k] = v
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// link connects a to b and waits until each knows the other is subscribed
// to DeclarationsTopic, so publishes reach it.
func link(t testing.TB, a, b *Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	id, err := a.Connect(ctx, b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if id != b.PeerID() {
		t.Fatalf("Connect returned %s, want %s", id, b.PeerID())
	}
	eventually(t, "topic subscriptions to propagate", func() bool {
		return slices.Contains(a.TopicPeers(), b.PeerID()) && slices.Contains(b.TopicPeers(), a.PeerID())
	})
}

func TestIdentity(t *testing.T) {
	good := mustIdentity(t)
	tests := []struct {
		name     string
		identity []byte
		wantErr  error
	}{
		{name: "generated", identity: good},
		{name: "empty", identity: nil, wantErr: ErrBadIdentity},
		{name: "garbage", identity: []byte("not a key"), wantErr: ErrBadIdentity},
		{name: "truncated", identity: good[:len(good)-1], wantErr: ErrBadIdentity},
		{name: "oversize", identity: make([]byte, maxIdentitySize+1), wantErr: ErrBadIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := PeerIDOf(tt.identity)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("PeerIDOf: err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if _, newErr := New(context.Background(), Config{Identity: tt.identity}); !errors.Is(newErr, tt.wantErr) {
					t.Fatalf("New: err = %v, want %v", newErr, tt.wantErr)
				}
				return
			}
			h := newHost(t, Config{Identity: tt.identity})
			if h.PeerID() != id {
				t.Fatalf("host PeerID %s, PeerIDOf %s", h.PeerID(), id)
			}
			if !strings.HasPrefix(id, "12D3KooW") {
				t.Fatalf("peer ID %s is not an Ed25519 one", id)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr error
	}{
		{name: "no identity", cfg: Config{}, wantErr: ErrBadIdentity},
		{name: "bad listen address", cfg: Config{Identity: mustIdentity(t), ListenAddrs: []string{"127.0.0.1:4001"}}, wantErr: ErrBadAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(context.Background(), tt.cfg)
			if err == nil {
				h.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, tt.wantErr) || !strings.HasPrefix(err.Error(), "gossip: ") {
				t.Fatalf("err = %v, want %v with the gossip: prefix", err, tt.wantErr)
			}
		})
	}
}

func TestAddrs(t *testing.T) {
	h := newHost(t, Config{})
	got := h.Addrs()
	if len(got) < 2 {
		t.Fatalf("Addrs = %v, want a TCP and a QUIC address", got)
	}
	var tcpSeen, quicSeen bool
	for _, a := range got {
		if !strings.HasPrefix(a, "/ip4/127.0.0.1/") || !strings.HasSuffix(a, "/p2p/"+h.PeerID()) {
			t.Errorf("address %q: want loopback with /p2p/%s", a, h.PeerID())
		}
		tcpSeen = tcpSeen || strings.Contains(a, "/tcp/")
		quicSeen = quicSeen || strings.Contains(a, "/quic-v1/")
	}
	if !tcpSeen || !quicSeen {
		t.Errorf("Addrs = %v, want both TCP and QUIC", got)
	}
	if again := h.Addrs(); !slices.Equal(got, again) {
		t.Errorf("Addrs not deterministic: %v then %v", got, again)
	}
	if !slices.IsSorted(got) {
		t.Errorf("loopback Addrs not sorted: %v", got)
	}
	if topics := h.Topics(); !slices.Equal(topics, []string{DeclarationsTopic}) {
		t.Errorf("Topics = %v", topics)
	}
}

func TestFullAddrsPutsLoopbackFirst(t *testing.T) {
	id, err := PeerIDOf(mustIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := peer.Decode(id)
	in := []ma.Multiaddr{
		ma.StringCast("/ip4/192.0.2.1/tcp/1"),
		ma.StringCast("/ip4/127.0.0.1/udp/2/quic-v1"),
		ma.StringCast("/ip4/127.0.0.1/tcp/3"),
		ma.StringCast("/ip4/127.0.0.1/tcp/3"),
	}
	want := []string{
		"/ip4/127.0.0.1/tcp/3/p2p/" + id,
		"/ip4/127.0.0.1/udp/2/quic-v1/p2p/" + id,
		"/ip4/192.0.2.1/tcp/1/p2p/" + id,
	}
	if got := fullAddrs(pid, in); !slices.Equal(got, want) {
		t.Fatalf("fullAddrs = %v, want %v", got, want)
	}
}

func TestAddPeer(t *testing.T) {
	h := newHost(t, Config{})
	other, _ := PeerIDOf(mustIdentity(t))
	third, _ := PeerIDOf(mustIdentity(t))
	tests := []struct {
		name    string
		peer    string
		addrs   []string
		want    []string // PeerAddrs afterwards; nil when an error is expected
		wantErr error
	}{
		{
			name:  "bare address",
			peer:  other,
			addrs: []string{"/ip4/127.0.0.1/tcp/4001"},
			want:  []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + other},
		},
		{
			name:  "with p2p suffix",
			peer:  other,
			addrs: []string{"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + other},
			want: []string{
				"/ip4/127.0.0.1/tcp/4001/p2p/" + other,
				"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + other,
			},
		},
		{name: "suffix names another peer", peer: third, addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/" + other}, wantErr: ErrBadAddress},
		{name: "not a multiaddr", peer: third, addrs: []string{"127.0.0.1:1"}, wantErr: ErrBadAddress},
		{name: "only a p2p part", peer: third, addrs: []string{"/p2p/" + third}, wantErr: ErrBadAddress},
		{name: "bad peer ID", peer: "QmNotAPeer", addrs: []string{"/ip4/127.0.0.1/tcp/1"}, wantErr: ErrBadPeerID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.AddPeer(tt.peer, tt.addrs)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("AddPeer: err = %v, want %v", err, tt.wantErr)
			}
			if got := h.PeerAddrs(tt.peer); !slices.Equal(got, tt.want) {
				t.Fatalf("PeerAddrs = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLineRelay: A-B-C in a line. A's message reaches C through B, once; a
// message B rejects reaches neither B's Deliver nor C, and costs A score at B.
func TestLineRelay(t *testing.T) {
	var connects sync.Map // peer -> true, as seen by A's OnConnect
	ra, rb, rc := newRecorder(), newRecorder(), newRecorder()
	a := newHost(t, Config{Deliver: ra.deliver, OnConnect: func(p string) { connects.Store(p, true) }})
	b := newHost(t, Config{
		Deliver: rb.deliver,
		Validate: func(_ context.Context, _ string, data []byte) Verdict {
			if bytes.HasPrefix(data, []byte("reject:")) {
				return Reject
			}
			return Accept
		},
	})
	c := newHost(t, Config{Deliver: rc.deliver})
	link(t, a, b)
	link(t, b, c)
	if got := a.ConnectedPeers(); !slices.Equal(got, []string{b.PeerID()}) {
		t.Fatalf("A connected to %v, want only B", got)
	}
	eventually(t, "A's OnConnect for B", func() bool { _, ok := connects.Load(b.PeerID()); return ok })
	// Relay follows the mesh, built at heartbeats; a message B receives
	// before C is in its mesh never reaches C by gossip alone.
	eventually(t, "the A-B-C mesh", func() bool {
		return slices.Contains(b.MeshPeers(), c.PeerID()) && slices.Contains(c.MeshPeers(), b.PeerID()) &&
			slices.Contains(b.MeshPeers(), a.PeerID())
	})

	ctx := context.Background()
	if err := a.Publish(ctx, []byte("reject:1")); err != nil {
		t.Fatalf("A accepts what B rejects, Publish: %v", err)
	}
	eventually(t, "B to reject the message", func() bool { return b.Stats().Rejected == 1 })

	if err := a.Publish(ctx, []byte("hello from A")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to get A's message", func() bool { return rb.times("hello from A") == 1 })
	t.Logf("B stats %+v", b.Stats())
	eventually(t, "C to get A's message", func() bool { return rc.times("hello from A") == 1 })
	if err := c.Publish(ctx, []byte("hello from C")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A to get C's message", func() bool { return ra.times("hello from C") == 1 })
	eventually(t, "B's score of A to show the rejection", func() bool {
		s, ok := b.PeerScore(a.PeerID())
		return ok && s < 0
	})
	if s, _ := b.PeerScore(a.PeerID()); s <= GraylistThreshold {
		t.Errorf("one rejection graylisted A: score %v", s)
	}

	tests := []struct {
		name string
		rec  *recorder
		want map[string]int
	}{
		{name: "A never delivers its own", rec: ra, want: map[string]int{"hello from C": 1}},
		{name: "B delivers what it accepted", rec: rb, want: map[string]int{"hello from A": 1, "hello from C": 1}},
		{name: "C never sees the rejected one", rec: rc, want: map[string]int{"hello from A": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rec.snapshot()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("delivered %v, want %v", got, tt.want)
			}
		})
	}
	if from := rc.sender("hello from A"); from != b.PeerID() {
		t.Errorf("C got A's message from %s, want the relay B %s", from, b.PeerID())
	}
}

func TestPublishLocalVerdicts(t *testing.T) {
	h := newHost(t, Config{
		Validate: func(_ context.Context, from string, data []byte) Verdict {
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
	})
	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{name: "accept", data: []byte("fine")},
		{name: "largest allowed", data: make([]byte, MaxMessageSize)},
		{name: "reject", data: []byte("reject"), wantErr: ErrRejected},
		{name: "ignore", data: []byte("ignore"), wantErr: ErrIgnored},
		{name: "panic counts as reject", data: []byte("panic"), wantErr: ErrRejected},
		{name: "oversize", data: make([]byte, MaxMessageSize+1), wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.Publish(context.Background(), tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Publish: err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if !errors.Is(ErrTooLarge, ErrRejected) {
		t.Error("ErrTooLarge does not wrap ErrRejected")
	}
	if st := h.Stats(); st.Panics != 1 || st.Ignored != 1 {
		t.Errorf("Stats = %+v, want 1 panic and 1 ignored", st)
	}
}

// rogue is a raw GossipSub peer without our checks, to send what an honest
// Host refuses to publish.
type rogue struct {
	h      host.Host
	id     string
	topic  *pubsub.Topic            // DeclarationsTopic
	topics map[string]*pubsub.Topic // by name: DeclarationsTopic and extra
}

// newRogue joins DeclarationsTopic and extra (with our message IDs) and
// connects to target.
func newRogue(t *testing.T, target *Host, extra ...string) *rogue {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(4*MaxMessageSize),
		// A flooding rogue must not lose its own flood to the default
		// 32-RPC outbound queue.
		pubsub.WithPeerOutboundQueueSize(8192),
	)
	if err != nil {
		t.Fatal(err)
	}
	topics := make(map[string]*pubsub.Topic)
	for _, name := range append([]string{DeclarationsTopic}, extra...) {
		var opts []pubsub.TopicOpt
		if name != DeclarationsTopic {
			opts = append(opts, pubsub.WithTopicMessageIdFn(topicMessageID(name)))
		}
		topic, err := ps.Join(name, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := topic.Subscribe(); err != nil {
			t.Fatal(err)
		}
		topics[name] = topic
	}
	info, err := peer.AddrInfoFromString(target.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rogue to see the target's subscriptions", func() bool {
		for _, topic := range topics {
			if !slices.Contains(topic.ListPeers(), info.ID) {
				return false
			}
		}
		return true
	})
	return &rogue{h: h, id: h.ID().String(), topic: topics[DeclarationsTopic], topics: topics}
}

// TestOversizeNotDelivered: a message one byte over MaxMessageSize from a
// peer that skips our checks is rejected before Validate and penalised; one
// of exactly MaxMessageSize is delivered.
func TestOversizeNotDelivered(t *testing.T) {
	var validated atomic.Int64
	rb := newRecorder()
	b := newHost(t, Config{
		Deliver: rb.deliver,
		Validate: func(_ context.Context, _ string, data []byte) Verdict {
			if len(data) > MaxMessageSize {
				t.Errorf("Validate called with %d bytes", len(data))
			}
			validated.Add(1)
			return Accept
		},
	})
	r := newRogue(t, b)
	ctx := context.Background()

	big := bytes.Repeat([]byte{'x'}, MaxMessageSize+1)
	if err := r.topic.Publish(ctx, big); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to reject the oversize message", func() bool { return b.Stats().Oversize == 1 })

	largest := bytes.Repeat([]byte{'y'}, MaxMessageSize)
	if err := r.topic.Publish(ctx, largest); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to deliver the largest allowed message", func() bool { return rb.times(string(largest)) == 1 })
	if rb.times(string(big)) != 0 || rb.distinct() != 1 {
		t.Fatalf("B delivered %d distinct messages, the oversize one %d times", rb.distinct(), rb.times(string(big)))
	}
	if validated.Load() != 1 {
		t.Errorf("Validate ran %d times, want 1", validated.Load())
	}
	eventually(t, "B's score of the rogue to go negative", func() bool {
		s, ok := b.PeerScore(r.id)
		return ok && s < 0
	})
}

// TestValidatorPanicAtReceiver: a panic in Validate for a remote message is
// recovered, counts as Reject, and the host goes on.
func TestValidatorPanicAtReceiver(t *testing.T) {
	rb := newRecorder()
	a := newHost(t, Config{})
	b := newHost(t, Config{
		Deliver: rb.deliver,
		Validate: func(_ context.Context, _ string, data []byte) Verdict {
			if string(data) == "boom" {
				panic("validator bug")
			}
			return Accept
		},
	})
	link(t, a, b)
	ctx := context.Background()
	if err := a.Publish(ctx, []byte("boom")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B's validator to panic", func() bool { return b.Stats().Panics == 1 })
	if err := a.Publish(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to deliver the next message", func() bool { return rb.times("after") == 1 })
	if rb.times("boom") != 0 {
		t.Fatal("B delivered the message its validator panicked on")
	}
	if st := b.Stats(); st.Rejected != 1 {
		t.Errorf("Stats = %+v, want the panic counted as one rejection", st)
	}
}

// TestBurst: 1000 distinct messages published as fast as possible all
// arrive, each once.
func TestBurst(t *testing.T) {
	const n = 1000
	rb := newRecorder()
	a := newHost(t, Config{})
	b := newHost(t, Config{Deliver: rb.deliver})
	link(t, a, b)
	t.Cleanup(func() { // runs before the hosts close
		if t.Failed() {
			t.Logf("A %+v; B %+v; B delivered %d distinct", a.Stats(), b.Stats(), rb.distinct())
		}
	})
	ctx := context.Background()
	for i := range n {
		if err := a.Publish(ctx, fmt.Appendf(nil, "burst message %04d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	eventually(t, fmt.Sprintf("all %d messages at B", n), func() bool { return rb.distinct() == n })
	rb.mu.Lock()
	total := rb.total
	rb.mu.Unlock()
	if total != n {
		t.Fatalf("B had %d Deliver calls for %d distinct messages", total, n)
	}
	for _, h := range []*Host{a, b} {
		if st := h.Stats(); st.Throttled != 0 || st.DroppedRPCs != 0 || st.Undeliverable != 0 {
			t.Errorf("%s lost messages in the burst: %+v", h.PeerID(), st)
		}
	}
}

func TestStream(t *testing.T) {
	const proto = "/fednode/test/echo/1"
	tests := []struct {
		name      string
		transport string // substring of the address to use
	}{
		{name: "tcp", transport: "/tcp/"},
		{name: "quic", transport: "/quic-v1/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newHost(t, Config{})
			b := newHost(t, Config{})
			l, err := b.Listen(proto)
			if err != nil {
				t.Fatal(err)
			}
			if l.Addr().String() != b.PeerID() {
				t.Fatalf("listener Addr %s, want %s", l.Addr(), b.PeerID())
			}
			served := make(chan string, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					served <- "accept: " + err.Error()
					return
				}
				defer c.Close()
				served <- c.RemoteAddr().String()
				io.Copy(c, io.LimitReader(c, 4))
			}()

			var addrs []string
			for _, s := range b.Addrs() {
				if strings.Contains(s, tt.transport) {
					addrs = append(addrs, s)
				}
			}
			if len(addrs) == 0 {
				t.Fatalf("no %s address in %v", tt.transport, b.Addrs())
			}
			// AddPeer only, no Connect: Dial must find the address itself.
			if err := a.AddPeer(b.PeerID(), addrs); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			c, err := a.Dial(ctx, b.PeerID(), proto)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 4)
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if string(got) != "ping" {
				t.Fatalf("echo %q", got)
			}
			if remote := <-served; remote != a.PeerID() {
				t.Fatalf("server saw remote %q, want %s", remote, a.PeerID())
			}
			if c.RemoteAddr().String() != b.PeerID() {
				t.Fatalf("conn RemoteAddr %s, want %s", c.RemoteAddr(), b.PeerID())
			}

			// Closing the host must unblock Accept.
			accepted := make(chan error, 1)
			go func() { _, err := l.Accept(); accepted <- err }()
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-accepted; err == nil {
				t.Fatal("Accept after Close returned no error")
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	h := newHost(t, Config{})
	unknown, err := PeerIDOf(mustIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		peer    string
		wantErr error
		mention string
	}{
		{name: "unknown peer", peer: unknown, wantErr: ErrNoAddrs, mention: unknown},
		{name: "malformed peer ID", peer: "not-a-peer", wantErr: ErrBadPeerID, mention: "not-a-peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.Dial(context.Background(), tt.peer, "/fednode/test/1")
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("err = %v, want %v naming %q", err, tt.wantErr, tt.mention)
			}
		})
	}
}

// TestClose: Close is idempotent, later calls fail with ErrClosed, and no
// callback (of DeclarationsTopic or an extra topic) runs after Close returns
// even while a peer keeps publishing on both.
func TestClose(t *testing.T) {
	var closed atomic.Bool
	check := func(what string) {
		if closed.Load() {
			t.Errorf("%s ran after Close returned", what)
		}
	}
	a := newHost(t, Config{Topics: []TopicConfig{{Name: CheckpointsTopic}}})
	b, err := New(context.Background(), Config{
		Identity: mustIdentity(t),
		Logger:   testLogger(t),
		Validate: func(context.Context, string, []byte) Verdict { check("Validate"); return Accept },
		Deliver:  func(string, []byte) { check("Deliver") },
		Topics: []TopicConfig{{
			Name:     CheckpointsTopic,
			Validate: func(context.Context, string, []byte) Verdict { check("checkpoints Validate"); return Accept },
			Deliver:  func(string, []byte) { check("checkpoints Deliver") },
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	link(t, a, b)
	linkTopic(t, a, b, CheckpointsTopic)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = a.Publish(context.Background(), fmt.Appendf(nil, "during close %d", i))
			_ = a.PublishTo(context.Background(), CheckpointsTopic, fmt.Appendf(nil, "checkpoint during close %d", i))
			time.Sleep(time.Millisecond)
		}
	}()
	eventually(t, "B to deliver some messages on both topics", func() bool {
		d, _ := b.TopicStats(DeclarationsTopic)
		c, _ := b.TopicStats(CheckpointsTopic)
		return d.Delivered > 10 && c.Delivered > 10
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	eventually(t, "A to notice B is gone", func() bool { return len(a.ConnectedPeers()) == 0 })
	close(stop)
	wg.Wait()

	ctx := context.Background()
	if err := b.Publish(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if err := b.PublishTo(ctx, CheckpointsTopic, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishTo after Close: %v", err)
	}
	if _, err := b.Listen("/fednode/test/1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
	if _, err := b.Dial(ctx, a.PeerID(), "/fednode/test/1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
	if _, err := b.Connect(ctx, a.Addrs()[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close: %v", err)
	}
}

var testLogLevel = func() slog.Level {
	if os.Getenv("GOSSIP_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}()

// TestMeshOf20: twenty hosts, each linked to the next three around a ring;
// once the mesh has formed, one message from each reaches all the others.
func TestMeshOf20(t *testing.T) {
	const n, fanout = 20, 3
	hosts := make([]*Host, n)
	recs := make([]*recorder, n)
	for i := range hosts {
		recs[i] = newRecorder()
		hosts[i] = newHost(t, Config{Deliver: recs[i].deliver})
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for i, h := range hosts {
		for k := 1; k <= fanout; k++ {
			if _, err := h.Connect(ctx, hosts[(i+k)%n].Addrs()[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() { // runs before the hosts close
		if t.Failed() {
			for i, h := range hosts {
				t.Logf("host %d: %d topic peers, %d mesh peers, %+v", i, len(h.TopicPeers()), len(h.MeshPeers()), h.Stats())
			}
		}
	})
	// GossipSub stops grafting at Dlo (5) mesh peers, so a host may leave
	// one of its six peers out: wait for the mesh to span all hosts, not to
	// be complete.
	eventually(t, "the mesh to span all hosts", func() bool { return meshSpans(hosts) })
	for i, h := range hosts {
		if err := h.Publish(ctx, fmt.Appendf(nil, "from host %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every host to deliver every other host's message", func() bool {
		for _, r := range recs {
			if r.distinct() != n-1 {
				return false
			}
		}
		return true
	})
	for i, r := range recs {
		if r.times(fmt.Sprintf("from host %d", i)) != 0 {
			t.Errorf("host %d delivered its own message", i)
		}
		r.mu.Lock()
		if r.total != n-1 {
			t.Errorf("host %d: %d Deliver calls for %d messages", i, r.total, n-1)
		}
		r.mu.Unlock()
	}
}

// meshSpans reports whether the mesh links both ends agree on connect all
// hosts.
func meshSpans(hosts []*Host) bool {
	byID := make(map[string]*Host, len(hosts))
	for _, h := range hosts {
		byID[h.PeerID()] = h
	}
	seen := map[string]bool{hosts[0].PeerID(): true}
	queue := []*Host{hosts[0]}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		for _, p := range h.MeshPeers() {
			o, ok := byID[p]
			if !ok || seen[p] || !slices.Contains(o.MeshPeers(), h.PeerID()) {
				continue
			}
			seen[p] = true
			queue = append(queue, o)
		}
	}
	return len(seen) == len(hosts)
}
