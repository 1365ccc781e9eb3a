package gossip

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Verdict is what a validator says of one message.
type Verdict int

const (
	// Accept: valid; deliver and relay.
	Accept Verdict = iota
	// Reject: invalid. Not delivered, not relayed, and the peer that sent it
	// is penalised in peer scoring (enough rejections graylist it). Use it
	// only for what no honest peer could have accepted (bad encoding, bad
	// signature, oversize), never for judgements that depend on local state.
	Reject
	// Ignore: cannot judge now (unknown issuer, stale, duplicate). Not
	// delivered, not relayed, no penalty.
	Ignore
	// Replay: a message we hold already for good (a declaration agreed a
	// while ago, not one still in flight). Handled as Ignore, and charged
	// to the peer that relayed it: past ReplayAllowance, replays lower its
	// score (see PeerRate and ReplayAllowance), so a peer that floods old
	// declarations is pruned while one that relays a few after a reconnect
	// is not.
	Replay
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	case Replay:
		return "replay"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// DeclarationsTopic is the GossipSub topic that carries declarations. It is a
// wire interface: changing it partitions the federation.
const DeclarationsTopic = "/fednode/declarations/1"

// MaxMessageSize is the largest gossip message (payload bytes) accepted on
// any topic (TopicConfig.MaxSize may set a lower limit for an extra topic).
// Bigger ones are refused by Publish and rejected before Validate is called.
const MaxMessageSize = 1 << 20

// Limits and queue sizes. The GossipSub defaults (32) drop 3–7% of a burst
// of 1000 messages between two hosts; these were sized so the package test's
// burst loses nothing.
const (
	// wireOverhead is the room an RPC frame needs around one message of
	// MaxMessageSize bytes (topic, field tags, lengths) so that such a
	// message still fits the frame limit.
	wireOverhead       = 4 << 10
	outboundQueueSize  = 1024
	validateQueueSize  = 1024
	subscriptionBuffer = 4096
	// dialTimeout bounds Connect and Dial when the caller's context has no
	// deadline; libp2p would otherwise wait for its own (longer) timeouts.
	dialTimeout = 30 * time.Second
	// validateTimeout is the deadline on the ctx given to Config.Validate;
	// verifying a declaration takes well under a millisecond.
	validateTimeout = 10 * time.Second
)

// Sentinel errors. Every error returned by this package starts with "gossip:".
var (
	// ErrRejected: Publish's message was rejected by the local validator (or
	// is larger than MaxMessageSize, see ErrTooLarge).
	ErrRejected = errors.New("gossip: message rejected by validator")
	// ErrIgnored: Publish's message got Verdict Ignore from the local
	// validator; it was not sent.
	ErrIgnored = errors.New("gossip: message ignored by validator")
	// ErrTooLarge: Publish's message is larger than MaxMessageSize, or
	// PublishTo's larger than its topic's MaxSize. It wraps ErrRejected as
	// well.
	ErrTooLarge = fmt.Errorf("%w: larger than %d bytes", ErrRejected, MaxMessageSize)
	// ErrClosed: the Host was closed.
	ErrClosed = errors.New("gossip: host closed")
	// ErrBadIdentity: Config.Identity or a PeerIDOf argument is not a
	// marshalled libp2p private key.
	ErrBadIdentity = errors.New("gossip: bad identity")
	// ErrBadAddress: a string is not a valid multiaddr (or lacks or
	// contradicts the /p2p/<id> part).
	ErrBadAddress = errors.New("gossip: bad address")
	// ErrBadPeerID: a string is not a valid peer ID.
	ErrBadPeerID = errors.New("gossip: bad peer ID")
	// ErrNoAddrs: Dial was asked for a peer that is neither connected nor has
	// addresses in the peerstore. Call AddPeer or Connect first.
	ErrNoAddrs = errors.New("gossip: no known addresses for peer")
)

// DefaultListenAddrs are used when Config.ListenAddrs is empty: loopback
// only, TCP and QUIC, ephemeral ports.
var DefaultListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// Config configures a Host.
type Config struct {
	// Identity is a marshalled libp2p private key (from GenerateIdentity).
	// Required. The same identity gives the same peer ID across restarts.
	Identity []byte
	// ListenAddrs are multiaddrs to listen on; empty means DefaultListenAddrs.
	ListenAddrs []string
	// Logger receives the host's and GossipSub's logs; nil discards them.
	Logger *slog.Logger
	// Validate is called for every message on DeclarationsTopic, local
	// publishes included (with from = our own peer ID), before it is
	// delivered or relayed. It may be called concurrently, also concurrently
	// with Deliver, and for messages in any order. ctx has a 10 s deadline
	// and is cancelled when the Host closes. data must not be modified (it
	// is what GossipSub relays and what Deliver gets). A panic counts as
	// Reject. nil accepts everything.
	Validate func(ctx context.Context, from string, data []byte) Verdict
	// Deliver is called once for each validated message that arrived from
	// another peer (never for our own publishes); from is the peer that
	// relayed it to us, not necessarily its origin. It is called from one
	// goroutine, in arrival order, and must not block for long: while it
	// runs, later messages queue (up to a buffer of 4096, beyond which
	// GossipSub drops them). data must not be modified: GossipSub keeps it
	// for a while to relay on request; copy it before changing it.
	Deliver func(from string, data []byte)
	// OnConnect, if set, is called in its own goroutine when we become
	// connected to a peer (once per peer, not per connection, until it
	// disconnects fully).
	OnConnect func(peer string)
	// Topics are extra topics to join besides DeclarationsTopic, each with
	// its own size limit, Validate and Deliver. Names must be distinct and
	// not DeclarationsTopic; New refuses them otherwise (ErrBadTopic).
	Topics []TopicConfig
	// MDNS turns on mDNS discovery (service MDNSServiceName) on the local
	// network: peers found there are connected to. Off by default: a
	// federation's peers are named by bootstrap addresses and the graph,
	// and mDNS announces this host to everyone on the LAN.
	MDNS bool

	// limits overrides defaultLimits; zero means the defaults. Tests only.
	limits limits
}

// Stats counts what the validator pipeline saw, for metrics: Host.Stats over
// all joined topics, Host.TopicStats for one.
type Stats struct {
	Accepted  uint64 // messages given Verdict Accept (local publishes included)
	Rejected  uint64 // messages given Verdict Reject, including Oversize and panics
	Ignored   uint64 // messages given Verdict Ignore
	Oversize  uint64 // messages rejected for exceeding their topic's size limit
	Panics    uint64 // Validate calls that panicked
	Delivered uint64 // Deliver calls

	// Losses GossipSub would otherwise hide. Non-zero values mean gossip
	// alone did not carry everything: the pull-based sync must repair it.
	Throttled     uint64 // incoming messages dropped, validation queue full or throttled
	DroppedRPCs   uint64 // outgoing RPCs dropped (a peer's outbound queue full)
	Undeliverable uint64 // validated messages dropped because Deliver fell behind

	// Misbehaviour charged to peers (see PeerRate, ReplayAllowance).
	Replays     uint64 // messages given Verdict Replay (counted in Ignored too)
	RateLimited uint64 // incoming messages dropped for their peer's rate (not in Ignored)
}

// Host is one fednode peer: a libp2p host joined to DeclarationsTopic and
// to Config.Topics. All methods are safe for concurrent use. Callbacks
// (Validate, Deliver, OnConnect, those of Config.Topics too) must not call
// Close: Close waits for running callbacks.
type Host struct {
	h   host.Host
	ps  *pubsub.PubSub
	log *slog.Logger
	cfg Config

	// topics holds every joined topic by name; decl is DeclarationsTopic's.
	// Invariant: built by New before pubsub starts, never changed after, so
	// it is read without a lock.
	topics map[string]*topicState
	decl   *topicState

	// ctx lives as long as the Host; pubsub and the validator contexts
	// derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // loops and OnConnect goroutines
	gate   gate
	// block is the set Block fills and the connection gater that enforces
	// it; set by New before libp2p starts.
	block *blocklist
	// ledger charges peers for rate and replays; its score is GossipSub's
	// app-specific score.
	ledger *ledger
	// mdns is the mDNS discovery service; nil unless cfg.MDNS.
	mdns interface{ Close() error }

	connSub event.Subscription // nil unless cfg.OnConnect is set

	closeOnce sync.Once
	closeErr  error

	mu        sync.Mutex
	listeners map[*listener]struct{} // open Listen results, closed by Close
	scores    map[string]float64     // last peer-score snapshot
	// mesh is our GossipSub mesh: topic -> peers. Invariant: its keys are
	// names in topics.
	mesh map[string]map[string]struct{}

	droppedRPCs atomic.Uint64 // RPCs carry several topics: not per topic
}

// New starts a host listening on cfg.ListenAddrs, joins DeclarationsTopic
// and cfg.Topics and starts delivering. ctx bounds only the start-up; the
// Host runs until Close.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gossip: new host: %w", err)
	}
	sk, err := parseIdentity(cfg.Identity)
	if err != nil {
		return nil, err
	}
	topics, err := newTopics(cfg)
	if err != nil {
		return nil, err
	}
	listen := cfg.ListenAddrs
	if len(listen) == 0 {
		listen = DefaultListenAddrs
	}
	for _, a := range listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %w", ErrBadAddress, a, err)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	block := newBlocklist()
	lh, err := libp2p.New(
		libp2p.Identity(sk),
		// Every connection, either way, passes the blocklist (see Block).
		libp2p.ConnectionGater(block),
		libp2p.ListenAddrStrings(listen...),
		// Naming transports replaces the defaults (which add WebSocket,
		// WebTransport and WebRTC).
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		// Nothing that reaches beyond the peers we are told about: no relay,
		// no UPnP/NAT-PMP (off unless libp2p.NATPortMap), no hole punching
		// (off unless libp2p.EnableHolePunching), no mDNS (not part of the
		// host).
		libp2p.DisableRelay(),
		// The default resource manager's per-peer and per-protocol stream
		// limits throttle a busy local mesh; the federation is small and
		// its peers are known.
		libp2p.ResourceManager(&network.NullResourceManager{}),
		// Keep libp2p's metrics off the process-global Prometheus registry:
		// several hosts share a process in tests and testnet, and node owns
		// the metrics it exports (see Stats).
		libp2p.DisableMetrics(),
		libp2p.UserAgent("fednode"),
	)
	if err != nil {
		return nil, fmt.Errorf("gossip: start libp2p host: %w", err)
	}

	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &Host{
		h:         lh,
		log:       logger,
		cfg:       cfg,
		ctx:       hctx,
		cancel:    cancel,
		topics:    topics,
		decl:      topics[DeclarationsTopic],
		listeners: make(map[*listener]struct{}),
		scores:    make(map[string]float64),
		mesh:      make(map[string]map[string]struct{}),
		block:     block,
	}
	lim := cfg.limits
	if lim == (limits{}) {
		lim = defaultLimits
	}
	g.ledger = newLedger(lim, time.Now)
	lh.Network().Notify(blockNotifee(block))
	g.gate.init()
	if err := g.start(); err != nil {
		cancel()
		g.closeAll()
		return nil, err
	}
	logger.Info("gossip: host started", "peer", g.PeerID(), "addrs", g.Addrs())
	return g, nil
}

func (g *Host) start() error {
	var extra []string
	for name := range g.topics {
		if name != DeclarationsTopic {
			extra = append(extra, name)
		}
	}
	params, thresholds := scoreParams(extra, g.ledger.score)
	ps, err := pubsub.NewGossipSub(g.ctx, g.h,
		// Declarations carry their own signatures; a libp2p envelope
		// signature would add bytes and a verification and nothing else.
		pubsub.WithNoAuthor(),
		// Without an author every message would get the same default ID
		// (from+seqno, both empty): only the first would ever be delivered.
		// Extra topics override it with topicMessageID when joined.
		pubsub.WithMessageIdFn(messageID),
		// Our own publishes go to every topic peer at once rather than only
		// to the mesh, which does not exist until the first heartbeat.
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerOutboundQueueSize(outboundQueueSize),
		pubsub.WithValidateQueueSize(validateQueueSize),
		pubsub.WithMaxMessageSize(MaxMessageSize+wireOverhead),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(g.storeScores), scoreInspectPeriod),
		pubsub.WithRawTracer(tracer{g}),
		// Rate limits apply to whole RPCs, before GossipSub marks their
		// messages seen: a message dropped in a validator would be a
		// duplicate when an honest peer relays it a moment later, so a
		// flooder that relays honest messages first could suppress them.
		pubsub.WithAppSpecificRpcInspector(g.inspectRPC),
		pubsub.WithLogger(g.log.With("component", "pubsub")),
	)
	if err != nil {
		return fmt.Errorf("gossip: start gossipsub: %w", err)
	}
	g.ps = ps
	for _, ts := range sortedTopics(g.topics) {
		if err := ps.RegisterTopicValidator(ts.name, g.validator(ts), pubsub.WithValidatorTimeout(validateTimeout)); err != nil {
			return fmt.Errorf("gossip: register validator for %s: %w", ts.name, err)
		}
		var opts []pubsub.TopicOpt
		if ts != g.decl {
			opts = append(opts, pubsub.WithTopicMessageIdFn(topicMessageID(ts.name)))
		}
		ts.topic, err = ps.Join(ts.name, opts...)
		if err != nil {
			return fmt.Errorf("gossip: join %s: %w", ts.name, err)
		}
		ts.sub, err = ts.topic.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
		if err != nil {
			return fmt.Errorf("gossip: subscribe %s: %w", ts.name, err)
		}
	}
	if g.cfg.OnConnect != nil {
		g.connSub, err = g.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
		if err != nil {
			return fmt.Errorf("gossip: subscribe to connection events: %w", err)
		}
		g.wg.Add(1)
		go g.connectLoop()
	}
	for _, ts := range g.topics {
		g.wg.Add(1)
		go g.deliverLoop(ts)
	}
	if g.cfg.MDNS {
		if err := g.startMDNS(); err != nil {
			return err
		}
	}
	return nil
}

// messageID is the SHA-256 of the payload (raw bytes as a string): the same
// declaration relayed by different peers is one message. It is the ID on
// DeclarationsTopic only; see topicMessageID.
func messageID(m *pb.Message) string {
	sum := sha256.Sum256(m.GetData())
	return string(sum[:])
}

// validator adapts ts's Validate to pubsub, bounding size first and turning
// a panic into Reject.
func (g *Host) validator(ts *topicState) pubsub.ValidatorEx {
	self := g.h.ID()
	return func(ctx context.Context, from peer.ID, m *pubsub.Message) (res pubsub.ValidationResult) {
		// The size bound holds before any decoding: GossipSub refuses RPC
		// frames over MaxMessageSize+wireOverhead before parsing them, and
		// this refuses a message over its topic's limit before Validate.
		if len(m.GetData()) > ts.maxSize {
			ts.n.oversize.Add(1)
			ts.n.rejected.Add(1)
			return pubsub.ValidationReject
		}
		if !g.gate.enter() {
			return pubsub.ValidationIgnore
		}
		defer g.gate.leave()
		v := Accept
		if ts.validate != nil {
			defer func() {
				if r := recover(); r != nil {
					ts.n.panics.Add(1)
					ts.n.rejected.Add(1)
					g.log.Error("gossip: validator panicked; message rejected", "topic", ts.name, "from", from.String(), "panic", r)
					res = pubsub.ValidationReject
				}
			}()
			v = ts.validate(ctx, from.String(), m.GetData())
		}
		switch v {
		case Accept:
			ts.n.accepted.Add(1)
			return pubsub.ValidationAccept
		case Reject:
			ts.n.rejected.Add(1)
			return pubsub.ValidationReject
		case Replay:
			ts.n.ignored.Add(1)
			ts.n.replays.Add(1)
			if from != self {
				g.ledger.replay(from)
			}
			return pubsub.ValidationIgnore
		default:
			ts.n.ignored.Add(1)
			return pubsub.ValidationIgnore
		}
	}
}

func (g *Host) deliverLoop(ts *topicState) {
	defer g.wg.Done()
	self := g.h.ID()
	for {
		m, err := ts.sub.Next(g.ctx)
		if err != nil {
			return // subscription cancelled or host closing
		}
		if m.ReceivedFrom == self || ts.deliver == nil {
			continue
		}
		if !g.gate.enter() {
			return
		}
		ts.n.delivered.Add(1)
		ts.deliver(m.ReceivedFrom.String(), m.GetData())
		g.gate.leave()
	}
}

func (g *Host) connectLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case e, ok := <-g.connSub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			if ev.Connectedness != network.Connected {
				continue
			}
			if !g.gate.enter() {
				return
			}
			g.wg.Add(1)
			go func(p string) {
				defer g.wg.Done()
				defer g.gate.leave()
				g.cfg.OnConnect(p)
			}(ev.Peer.String())
		}
	}
}

func (g *Host) storeScores(m map[peer.ID]float64) {
	s := make(map[string]float64, len(m))
	for p, v := range m {
		s[p.String()] = v
	}
	g.mu.Lock()
	g.scores = s
	g.mu.Unlock()
	g.ledger.sweep()
}

// PeerID returns our peer ID.
func (g *Host) PeerID() string { return g.h.ID().String() }

// Addrs returns the addresses peers can reach us at, each with /p2p/<our
// id>: loopback ones first, then sorted as strings, so the order is stable.
func (g *Host) Addrs() []string {
	return fullAddrs(g.h.ID(), g.h.Addrs())
}

func fullAddrs(id peer.ID, addrs []ma.Multiaddr) []string {
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: id, Addrs: addrs})
	if err != nil {
		return nil // only for an empty ID, which a Host never has
	}
	sort.SliceStable(full, func(i, j int) bool {
		li, lj := manet.IsIPLoopback(full[i]), manet.IsIPLoopback(full[j])
		if li != lj {
			return li
		}
		return full[i].String() < full[j].String()
	})
	out := make([]string, 0, len(full))
	for _, a := range full {
		s := a.String()
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// Connect dials the peer at addr (a multiaddr ending in /p2p/<id>),
// remembers its address permanently (see AddPeer) and returns its peer ID.
// A blocked peer (see Block) is not dialled: ErrBlocked.
func (g *Host) Connect(ctx context.Context, addr string) (string, error) {
	if g.gate.isClosed() {
		return "", ErrClosed
	}
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return "", fmt.Errorf("%w: %q (want a multiaddr ending in /p2p/<peer id>): %w", ErrBadAddress, addr, err)
	}
	if info.ID == g.h.ID() {
		return "", fmt.Errorf("%w: %q is our own address", ErrBadAddress, addr)
	}
	if err := g.errIfBlocked(info.ID, "connect to"); err != nil {
		return "", err
	}
	g.h.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.PermanentAddrTTL)
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	// An explicit Connect is the caller's decision to try now (a joining
	// node retrying a member that was not up yet, a node redialling a Raft
	// peer that restarted): bypass the swarm's dial backoff, which would
	// otherwise refuse the peer for up to minutes after one failed dial.
	ctx = network.WithForceDirectDial(ctx, "explicit connect")
	if err := g.h.Connect(ctx, *info); err != nil {
		return "", fmt.Errorf("gossip: connect to %s: %w", addr, err)
	}
	return info.ID.String(), nil
}

// AddPeer remembers addrs for peerID permanently, so Dial and reconnects
// work however long the peer was away (addresses learnt from a connection
// expire within minutes). addrs may carry a /p2p/<peerID> suffix or not; a
// suffix naming another peer is an error and nothing is stored.
func (g *Host) AddPeer(peerID string, addrs []string) error {
	id, err := decodePeerID(peerID)
	if err != nil {
		return err
	}
	parsed := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("%w: %q: %w", ErrBadAddress, a, err)
		}
		tr, aid := peer.SplitAddr(m)
		if aid != "" && aid != id {
			return fmt.Errorf("%w: %q names peer %s, not %s", ErrBadAddress, a, aid, id)
		}
		if tr == nil {
			return fmt.Errorf("%w: %q has no transport part", ErrBadAddress, a)
		}
		parsed = append(parsed, tr)
	}
	g.h.Peerstore().AddAddrs(id, parsed, peerstore.PermanentAddrTTL)
	return nil
}

// PeerAddrs returns the addresses we know for peerID, each with its
// /p2p/<peerID> suffix, in the order of Addrs. Nil for an unknown or
// malformed peer ID.
func (g *Host) PeerAddrs(peerID string) []string {
	id, err := peer.Decode(peerID)
	if err != nil {
		return nil
	}
	addrs := g.h.Peerstore().Addrs(id)
	if len(addrs) == 0 {
		return nil
	}
	return fullAddrs(id, addrs)
}

// ConnectedPeers returns the peers we have a connection to, sorted.
func (g *Host) ConnectedPeers() []string {
	return peerStrings(g.h.Network().Peers())
}

// TopicPeers returns the peers we know to be subscribed to
// DeclarationsTopic, sorted. A peer appears here a moment after the
// connection, once its subscription has arrived; only then does Publish
// reach it.
func (g *Host) TopicPeers() []string {
	return peerStrings(g.decl.topic.ListPeers())
}

// MeshPeers returns our GossipSub mesh peers for DeclarationsTopic, sorted:
// the peers we relay others' messages to (our own go to all TopicPeers).
// The mesh is built at heartbeats, every second. A message we relay before
// a peer is in our mesh is not resent to it, and gossip (IHAVE) goes only to
// peers outside the mesh, so a peer that joins just then may miss it for
// good: the pull-based sync must repair that. Tests wait for the mesh
// before relying on relay.
func (g *Host) MeshPeers() []string {
	return g.meshPeers(DeclarationsTopic)
}

// meshPeers returns our mesh peers for a joined topic, sorted.
func (g *Host) meshPeers(topic string) []string {
	g.mu.Lock()
	m := g.mesh[topic]
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	g.mu.Unlock()
	slices.Sort(out)
	return out
}

func peerStrings(ids []peer.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PeerScore returns the GossipSub score we last computed for peerID (updated
// every second) and whether we have one. Below GraylistThreshold its
// messages are dropped unread.
func (g *Host) PeerScore(peerID string) (float64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.scores[peerID]
	return s, ok
}

// Stats returns the validator pipeline counters summed over all joined
// topics (see TopicStats for one topic's).
func (g *Host) Stats() Stats {
	s := Stats{DroppedRPCs: g.droppedRPCs.Load()}
	for _, ts := range g.topics {
		ts.n.addTo(&s)
	}
	return s
}

// Publish validates data with the local validator and, if accepted, sends
// it on DeclarationsTopic to every topic peer. It returns ErrTooLarge,
// ErrRejected or ErrIgnored when the local validator refuses it. It returns
// nil without sending for a message already delivered within the seen-cache
// window (two minutes): message IDs are content hashes. Publish keeps a
// reference to data: do not modify it afterwards. A nil error means the
// message was queued, not that anyone received it.
func (g *Host) Publish(ctx context.Context, data []byte) error {
	return g.publish(ctx, g.decl, data)
}

func (g *Host) publish(ctx context.Context, ts *topicState, data []byte) error {
	if len(data) > ts.maxSize {
		return ts.tooLarge(len(data))
	}
	if g.gate.isClosed() {
		return ErrClosed
	}
	err := ts.topic.Publish(ctx, data)
	if err == nil {
		return nil
	}
	var ve pubsub.ValidationError
	if errors.As(err, &ve) {
		switch ve.Reason {
		case pubsub.RejectValidationIgnored:
			return ErrIgnored
		default:
			return ErrRejected
		}
	}
	if g.gate.isClosed() {
		return ErrClosed
	}
	return fmt.Errorf("gossip: publish to %s: %w", ts.name, err)
}

// Topics returns the pubsub topics we have joined, sorted:
// DeclarationsTopic and those of Config.Topics (nil after Close).
func (g *Host) Topics() []string {
	t := g.ps.GetTopics()
	slices.Sort(t)
	return t
}

// Listen accepts streams of protocol proto (e.g. "/fednode/raft/1") as
// net.Conns. The listener's Addr().String() and each conn's RemoteAddr()
// .String() are peer IDs. Close closes it; so does closing the Host (after
// which Accept returns an error). One listener per protocol: a second Listen
// on the same proto takes the streams over.
func (g *Host) Listen(proto string) (net.Listener, error) {
	if proto == "" {
		return nil, errors.New("gossip: listen: empty protocol ID")
	}
	if g.gate.isClosed() {
		return nil, ErrClosed
	}
	inner, err := gostream.Listen(g.h, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on %s: %w", proto, err)
	}
	l := &listener{Listener: inner, host: g}
	g.mu.Lock()
	g.listeners[l] = struct{}{}
	g.mu.Unlock()
	return l, nil
}

// Dial opens a stream of protocol proto to peerID. The peer must be
// connected or have addresses from AddPeer or Connect; otherwise Dial fails
// with ErrNoAddrs. A blocked peer (see Block) fails at once with
// ErrBlocked. Without a deadline on ctx, it gives up after 30 s.
func (g *Host) Dial(ctx context.Context, peerID, proto string) (net.Conn, error) {
	if g.gate.isClosed() {
		return nil, ErrClosed
	}
	id, err := decodePeerID(peerID)
	if err != nil {
		return nil, err
	}
	if id == g.h.ID() {
		return nil, fmt.Errorf("gossip: dial %s: that is our own peer ID", peerID)
	}
	if err := g.errIfBlocked(id, "dial "+proto+" to"); err != nil {
		return nil, err
	}
	if g.h.Network().Connectedness(id) != network.Connected && len(g.h.Peerstore().Addrs(id)) == 0 {
		return nil, fmt.Errorf("%w %s (dialling %s): call AddPeer or Connect first", ErrNoAddrs, peerID, proto)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	c, err := gostream.Dial(ctx, g.h, id, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("gossip: dial %s on %s: %w", peerID, proto, err)
	}
	return c, nil
}

// Close stops delivery, waits for running callbacks, closes listeners and
// shuts the host down. It is idempotent; later calls return the first
// result. After Close returns, no callback runs.
func (g *Host) Close() error {
	g.closeOnce.Do(func() {
		// Cancel first so validators blocked on ctx return, then wait for
		// every running callback; the gate refuses new ones.
		g.cancel()
		g.gate.close()
		g.closeErr = g.closeAll()
		g.log.Info("gossip: host closed", "peer", g.PeerID())
	})
	return g.closeErr
}

// closeAll releases everything start may have created; safe on a partly
// started Host.
func (g *Host) closeAll() error {
	g.cancel()
	if g.mdns != nil {
		_ = g.mdns.Close() // it only cancels its loops; nothing to report
	}
	for _, ts := range g.topics {
		if ts.sub != nil {
			ts.sub.Cancel()
		}
	}
	if g.connSub != nil {
		g.connSub.Close()
	}
	g.mu.Lock()
	ls := make([]*listener, 0, len(g.listeners))
	for l := range g.listeners {
		ls = append(ls, l)
	}
	g.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	var errs []error
	for _, ts := range g.topics {
		if ts.topic != nil {
			// Close fails while the subscription's cancellation is in
			// flight; the host is going away anyway, so only the host's
			// error counts.
			_ = ts.topic.Close()
		}
	}
	if err := g.h.Close(); err != nil {
		errs = append(errs, fmt.Errorf("gossip: close host: %w", err))
	}
	g.wg.Wait()
	return errors.Join(errs...)
}

// listener wraps gostream's listener so that Host.Close can close it:
// gostream's Accept otherwise blocks forever once the host is gone.
type listener struct {
	net.Listener
	host *Host
	once sync.Once
}

func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		err = l.Listener.Close()
		l.host.mu.Lock()
		delete(l.host.listeners, l)
		l.host.mu.Unlock()
	})
	return err
}

func decodePeerID(s string) (peer.ID, error) {
	id, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrBadPeerID, s, err)
	}
	return id, nil
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, dialTimeout)
}

// gate admits callbacks until closed; close waits for those admitted.
// Unlike an RWMutex it allows re-entry (a Deliver that calls Publish, which
// runs Validate) while close is waiting: after close, enter returns false.
type gate struct {
	mu     sync.Mutex
	cond   *sync.Cond
	closed bool // Invariant: once true, never false again.
	active int  // callbacks admitted and not yet left. Invariant: >= 0.
}

func (g *gate) init() { g.cond = sync.NewCond(&g.mu) }

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.active++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	g.active--
	if g.active == 0 {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}

func (g *gate) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	for g.active > 0 {
		g.cond.Wait()
	}
	g.mu.Unlock()
}
