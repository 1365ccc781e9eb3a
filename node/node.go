package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/chainstore"
	"github.com/fednode/fednode/consensus"
	"github.com/fednode/fednode/gossip"
)

// Config says how to run one node. cmd/fednode builds it from flags and the
// home's config file; testnet builds it directly. Zero fields take the
// home's config or a default.
type Config struct {
	// Home is the home directory written by Init. Required.
	Home string
	// Listen overrides the home's listen multiaddrs.
	Listen []string
	// API overrides the home's API address (host:port, loopback only).
	API string
	// Bootstrap founds a new consortium with this node as its first voter
	// (only when the node has no Raft state yet).
	Bootstrap bool
	// Join lists multiaddrs of running members to ask for admission (only
	// when the node has no Raft state yet; afterwards it just reconnects).
	Join []string
	// Peers lists multiaddrs to connect to at start, besides the address
	// book the node keeps.
	Peers []string
	// Logger receives structured logs. Nil: discard.
	Logger *slog.Logger
	// Clock is the time decisions are judged at when a request names none,
	// and a bundle's export time. Nil: time.Now. The node's own timers
	// (retries, pending expiry, graph age) use the real clock, and Raft's
	// apply reads no clock at all.
	Clock func() time.Time
	// Raft tunes consensus; zero fields take consensus's defaults.
	Raft RaftTuning
	// SyncInterval is the mean period of anti-entropy rounds with a random
	// peer (each wait is drawn from half to one and a half of it); zero:
	// 20 s. Rounds also run on every new connection (sync.go).
	SyncInterval time.Duration
	// MDNS turns on mDNS peer discovery on the local network (off by
	// default; see gossip.Config.MDNS).
	MDNS bool
	// OnRevocation, if set, is called when a revocation takes effect at
	// this node before Raft orders it (submitted here or arrived by
	// gossip; the provisional overlay), with the revoked target. It runs
	// in the submitting or delivering goroutine and must not block. For
	// benchmarks: a revocation that reaches the node only through Raft is
	// not signalled.
	OnRevocation func(target authority.ID)
}

// RaftTuning carries the Raft settings an operator or a test may change.
type RaftTuning struct {
	HeartbeatTimeout  time.Duration
	ElectionTimeout   time.Duration
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// LeaderLeaseTimeout: a leader that hears from no quorum for this long
	// steps down; at most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
}

// Timing of the node's background loops.
const (
	proposeInterval   = 100 * time.Millisecond
	forwardRetry      = 2 * time.Second
	pendingTTL        = 10 * time.Minute
	directoryInterval = 2 * time.Second
	joinTimeout       = 60 * time.Second
	// maxBatchBytes keeps one Raft entry under consensus.MaxCommandSize.
	maxBatchBytes = 768 << 10
	// maxBatchCount bounds the declarations in one Raft entry.
	maxBatchCount = 512
)

// cmdDeclarations is the Raft command that carries a batch of declaration
// envelopes (body: CBOR array of byte strings). A wire format: keep the number.
const cmdDeclarations consensus.CommandType = 1

// Node is one running fednode node.
type Node struct {
	cfg     Config
	home    *Home
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	store *chainstore.Store
	host  *gossip.Host
	raft  *consensus.Raft
	pool  *pool
	prov  *provisional
	met   *metrics
	// recent holds what this replica agreed lately: gossip copies of those
	// are late, not replays.
	recent *recentlyAgreed

	apiLn  net.Listener
	apiSrv *http.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}
	pubq   chan []byte // submitted declarations to gossip (publish.go)
	// admitMu serialises admit's check-then-add of chain positions.
	admitMu sync.Mutex
	// forwarding is set while a forward to the leader is in flight.
	forwarding atomic.Bool
	// proposals counts batches handed to Raft and not yet answered
	// (propose.go). Invariant: 0 <= proposals <= maxInFlight.
	proposals atomic.Int32
	// validated hands the gossip validator's parsed declarations to
	// delivery (verified.go).
	validated validatedSet
	// audit caches the transparency log's origin and latest checkpoint.
	audit auditState
	wit   witnessState
	// eq is the evidence of equivocation on its way to Raft (equivocation.go).
	eq equivocations
	// cons drives the Raft configuration from the consortium (consortium.go).
	cons consortiumState
	syn  syncState
	// chains remembers the signatures of presented credential chains that
	// verified (authority.Cache): Verify and VerifyRequest share it.
	chains *authority.Cache

	closeOnce sync.Once
	closeErr  error
}

// New opens the home, starts the store, host, Raft and API, and joins or
// bootstraps as configured. It returns once the API is listening; admission
// to a consortium completes in the background (see Status).
func New(ctx context.Context, cfg Config) (*Node, error) {
	home, err := LoadHome(cfg.Home)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	n := &Node{
		cfg:    cfg,
		home:   home,
		log:    cfg.Logger.With("node", home.Config.Name),
		now:    cfg.Clock,
		pool:   newPool(),
		prov:   newProvisional(),
		met:    newMetrics(),
		recent: newRecentlyAgreed(time.Now),
		kick:   make(chan struct{}, 1),
		cons:   newConsortiumState(),
		pubq:   make(chan []byte, publishQueue),
	}
	n.prov.hook = cfg.OnRevocation
	n.initEquivocation()
	n.started = time.Now()
	n.chains = authority.NewCache(0, 0)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	var err error
	n.store, err = chainstore.Open(filepath.Join(n.home.Dir, dirData), chainstore.Options{Logger: n.log})
	if err != nil {
		return err
	}
	listen := n.cfg.Listen
	if len(listen) == 0 {
		listen = n.home.Config.Listen
	}
	n.host, err = gossip.New(n.ctx, gossip.Config{
		Identity:    n.home.Identity,
		ListenAddrs: listen,
		Logger:      n.log,
		Validate:    n.validateGossip,
		Deliver:     n.deliverGossip,
		OnConnect:   func(p string) { n.poke(); n.syncOnConnect(p) },
		MDNS:        n.cfg.MDNS,
		Topics: []gossip.TopicConfig{{
			Name:     gossip.CheckpointsTopic,
			MaxSize:  maxCheckpointNote,
			Validate: n.validateCheckpoint,
			Deliver:  n.deliverCheckpoint,
		}, n.evidenceTopic()},
	})
	if err != nil {
		return err
	}
	n.met.watchGossip(n.host)

	fsm := consensus.NewFSM(stateAdapter{n.store})
	fsm.Register(cmdDeclarations, "declarations", n.applyDeclarations)
	fsm.Register(cmdEvidence, "evidence", n.applyEvidence)
	last, err := n.store.LastIndex()
	if err != nil {
		return err
	}
	hasState := last > 0
	if err := os.MkdirAll(filepath.Join(n.home.Dir, dirRaft), 0o700); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.raft, err = consensus.New(consensus.Config{
		Network:           hostNetwork{n.host},
		Log:               n.store,
		Stable:            n.store,
		State:             stateAdapter{n.store},
		FSM:               fsm,
		SnapshotDir:       filepath.Join(n.home.Dir, dirRaft),
		Bootstrap:         n.cfg.Bootstrap && !hasState,
		Logger:            n.log,
		HeartbeatTimeout:  n.cfg.Raft.HeartbeatTimeout,
		ElectionTimeout:   n.cfg.Raft.ElectionTimeout,
		SnapshotInterval:  n.cfg.Raft.SnapshotInterval,
		SnapshotThreshold: n.cfg.Raft.SnapshotThreshold,
		TrailingLogs:      n.cfg.Raft.TrailingLogs,
		PeerAllowed:       n.raftPeerAllowed,

		LeaderLeaseTimeout: n.cfg.Raft.LeaderLeaseTimeout,
	})
	if err != nil {
		return err
	}

	if err := n.serveProtocols(); err != nil {
		return err
	}
	if err := n.startAPI(); err != nil {
		return err
	}

	// Our own genesis goes into the pool: the first leader to see it
	// commits it, so every authority's root is in the agreed graph.
	if gen, err := authority.Parse(n.home.Genesis); err == nil && !n.store.Has(gen.ID) {
		n.pool.add(gen, time.Now())
	}

	// Reconnect to known peers: a restarting node dials its peers itself
	// rather than wait minutes for their dial backoff.
	book, err := n.store.Peers()
	if err != nil {
		return err
	}
	dial := append(append([]string{}, n.cfg.Peers...), n.home.Config.Bootstrap...)
	for id, addrs := range book {
		if id != n.host.PeerID() {
			_ = n.host.AddPeer(id, addrs)
			dial = append(dial, n.host.PeerAddrs(id)...)
		}
	}
	for _, loop := range []func(){n.membershipLoop, n.syncLoop, n.publishLoop, n.proposeLoop, n.directoryLoop, n.witnessLoop} {
		n.wg.Go(loop)
	}
	n.wg.Go(func() { n.connectPeers(dial) })
	if join := n.cfg.Join; len(join) > 0 && !hasState {
		n.wg.Go(func() { n.joinLoop(join) })
	} else if len(join) > 0 {
		n.wg.Go(func() { n.connectPeers(join) })
	}
	n.log.Info("node started", "authority", n.home.Authority.String(), "peer_id", n.host.PeerID(),
		"listen", n.host.Addrs(), "api", n.APIAddr(), "bootstrap", n.cfg.Bootstrap && !hasState, "raft_state", hasState)
	return nil
}

// Close stops the node: API, loops, Raft, host, store. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		var errs []error
		if n.apiSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := n.apiSrv.Shutdown(ctx); err != nil {
				_ = n.apiSrv.Close()
			}
			cancel()
		}
		if n.raft != nil {
			if err := n.raft.Shutdown(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.host != nil {
			if err := n.host.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.wg.Wait()
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}

// Agreed reports whether the declaration id is in this replica's agreed graph.
func (n *Node) Agreed(id authority.ID) bool { return n.store.Has(id) }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.IsLeader() }

// GraphVersion is this replica's graph version.
func (n *Node) GraphVersion() uint64 { return n.store.Version() }

// Home returns the node's home.
func (n *Node) Home() *Home { return n.home }

// Authority is this node's authority ID.
func (n *Node) Authority() authority.ID { return n.home.Authority }

// PeerID is the node's libp2p identity.
func (n *Node) PeerID() string { return n.host.PeerID() }

// Addrs are the node's full listen multiaddrs (with /p2p/ID).
func (n *Node) Addrs() []string { return n.host.Addrs() }

// Block cuts this node off from the given peers (libp2p peer IDs), both
// ways, until Unblock: fault injection for tests and the testnet. See
// gossip.Host.Block.
func (n *Node) Block(peers ...string) error { return n.host.Block(peers...) }

// Unblock lifts Block for the given peers; Connect them to heal at once.
func (n *Node) Unblock(peers ...string) error { return n.host.Unblock(peers...) }

// Blocked lists the peers Block cut this node off from, sorted.
func (n *Node) Blocked() []string { return n.host.Blocked() }

// Connect dials a peer at its full multiaddr now, skipping libp2p's dial
// backoff, and keeps its address.
func (n *Node) Connect(ctx context.Context, addr string) error {
	_, err := n.host.Connect(ctx, addr)
	return err
}

// APIAddr is the address the HTTP API listens on.
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Errors of Submit, mapped to HTTP statuses by the API.
var (
	// ErrInvalid: the bytes are not a well-formed declaration, or its
	// signature does not verify.
	ErrInvalid = errors.New("node: invalid declaration")
	// ErrUnknownIssuer: the issuer has no genesis here (not in the graph
	// and not pending): submit its genesis first.
	ErrUnknownIssuer = errors.New("node: unknown issuer")
	// ErrConflict: another declaration holds that chain position.
	ErrConflict = errors.New("node: chain position taken")
)

// SubmitResult says what became of a submitted declaration.
type SubmitResult struct {
	ID     authority.ID `json:"id"`
	Kind   string       `json:"kind"`
	Status string       `json:"status"` // "accepted" (pending order), "duplicate" (already agreed)
}

// Submit takes a signed declaration from a local client: it checks it,
// puts it in the pending pool, gossips it and lets the proposer carry it to
// Raft. A revocation takes effect here at once.
func (n *Node) Submit(ctx context.Context, env []byte) (SubmitResult, error) {
	sd, err := authority.Parse(env)
	if err != nil {
		n.met.submitted.WithLabelValues("invalid").Inc()
		return SubmitResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	res := SubmitResult{ID: sd.ID, Kind: sd.Decl.Kind.String()}
	if !sd.Decl.Kind.OnChain() {
		n.met.submitted.WithLabelValues("invalid").Inc()
		return res, fmt.Errorf("%w: a %v is presented to verify, not published", ErrInvalid, sd.Decl.Kind)
	}
	if n.store.Has(sd.ID) {
		res.Status = "duplicate"
		return res, nil
	}
	if err := n.admit(sd); err != nil {
		n.met.submitted.WithLabelValues("refused").Inc()
		return res, err
	}
	n.met.submitted.WithLabelValues("accepted").Inc()
	res.Status = "accepted"
	if n.isHeld(sd) {
		res.Status = "admission-pending" // held until its authority is admitted
	}
	if err := n.publish(env); err != nil {
		// Gossip is the fast path; the proposer still carries it to Raft.
		n.log.Debug("publish", "id", sd.ID.Short(), "err", err)
	}
	return res, nil
}

// admit checks a declaration that is not yet agreed and adds it to the pool.
func (n *Node) admit(sd *authority.Signed) error {
	if err := n.checkSignature(sd); err != nil {
		return err
	}
	if err := n.checkRevocable(sd); err != nil {
		return err
	}
	// The position checks and the pool add are one step, so two concurrent
	// submissions at one position cannot both be taken.
	n.admitMu.Lock()
	defer n.admitMu.Unlock()
	var conflict error
	n.store.View(func(v authority.View) {
		a, ok := v.Authority(sd.Decl.Authority)
		if !ok || sd.Decl.Kind == authority.KindGenesis {
			return
		}
		if sd.Decl.Seq <= a.Head {
			conflict = fmt.Errorf("%w: %s already holds %s's seq %d (head %d): fetch the head and sign again", ErrConflict, "another declaration", a.Name, sd.Decl.Seq, a.Head)
		} else if sd.Decl.Seq == a.Head+1 && sd.Decl.Prev != a.HeadID {
			// The graph would refuse it; say so now rather than 202 and drop it.
			conflict = fmt.Errorf("%w: %s's seq %d must name the head %s as prev, not %s: fetch the head and sign again", ErrConflict, a.Name, sd.Decl.Seq, a.HeadID.Short(), sd.Decl.Prev.Short())
		}
	})
	if conflict != nil {
		if n.conflictEvidence(sd, nil) {
			return fmt.Errorf("%w; both are validly signed: this node keeps the pair as evidence of equivocation and gossips it", conflict)
		}
		return conflict
	}
	if p := n.pool.at(sd.Decl.Authority, sd.Decl.Seq); p != nil && p.ID != sd.ID && sd.Decl.Kind != authority.KindGenesis {
		if n.conflictEvidence(sd, p) {
			return fmt.Errorf("%w: pending declaration %s already holds seq %d; both are validly signed: this node keeps the pair as evidence of equivocation and gossips it", ErrConflict, p.ID.Short(), sd.Decl.Seq)
		}
		return fmt.Errorf("%w: pending declaration %s already holds seq %d", ErrConflict, p.ID.Short(), sd.Decl.Seq)
	}
	if err := n.admissionRoom(sd); err != nil {
		return err
	}
	if err := n.precheckMembership(sd); err != nil {
		return err
	}
	if sd.Decl.Kind == authority.KindRevocation {
		n.prov.add(sd)
	}
	n.pool.add(sd, time.Now())
	n.poke()
	return nil
}

// checkSignature verifies sd against its issuer's keys: from the agreed
// graph, else from a pending genesis (an authority's first declarations may
// arrive before its genesis is committed).
func (n *Node) checkSignature(sd *authority.Signed) error {
	var err error
	known := true
	n.store.View(func(v authority.View) {
		if sd.Decl.Kind != authority.KindGenesis {
			_, known = v.Authority(sd.Decl.Authority)
		}
		if known {
			// Threshold, operational keys and rotation, as the graph will
			// judge them (but at the current head, not at a position).
			err = authority.VerifySigners(v, sd)
		}
	})
	if !known {
		g := n.pool.get(sd.Decl.Authority)
		if g == nil || g.Decl.Kind != authority.KindGenesis {
			return fmt.Errorf("%w %s: its genesis is neither agreed nor pending here; submit the genesis first", ErrUnknownIssuer, sd.Decl.Authority)
		}
		// The authority's first declarations may arrive before its genesis
		// is agreed: judge them by the pending genesis's root set.
		err = sd.VerifyThreshold(g.Decl.Genesis.RootKeys, int(g.Decl.Genesis.Threshold))
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// validateGossip runs on every gossip message before it is delivered or
// relayed: decode, bound, verify. Nothing touches the store before it.
func (n *Node) validateGossip(_ context.Context, from string, data []byte) gossip.Verdict {
	// By ID first (the hash of the bytes): what the graph or the pool
	// holds was verified when it entered, and re-parsing our own Publish
	// of every submitted declaration would double the leader's work.
	id := authority.IDOf(data)
	if n.store.Has(id) {
		// A late copy, or a replay of something long agreed (replay.go).
		return n.agreedVerdict(id)
	}
	if n.pool.get(id) != nil {
		n.met.gossip.WithLabelValues("accept").Inc()
		return gossip.Accept
	}
	sd, err := authority.Parse(data)
	if err != nil {
		n.met.gossip.WithLabelValues("reject").Inc()
		n.log.Debug("gossip: malformed declaration", "from", from, "err", err)
		return gossip.Reject
	}
	if !sd.Decl.Kind.OnChain() {
		n.met.gossip.WithLabelValues("reject").Inc()
		return gossip.Reject
	}
	if err := n.checkSignature(sd); err != nil {
		if errors.Is(err, ErrUnknownIssuer) {
			n.met.gossip.WithLabelValues("ignore").Inc()
			return gossip.Ignore
		}
		n.met.gossip.WithLabelValues("reject").Inc()
		n.log.Debug("gossip: bad declaration", "from", from, "id", sd.ID.Short(), "err", err)
		return gossip.Reject
	}
	n.met.gossip.WithLabelValues("accept").Inc()
	n.validated.put(sd)
	return gossip.Accept
}

// deliverGossip takes a validated declaration from the mesh.
func (n *Node) deliverGossip(from string, data []byte) {
	id := authority.IDOf(data)
	sd := n.validated.take(id)
	if sd == nil {
		if n.pool.get(id) != nil {
			return // ours already (our own Publish, or a relay)
		}
		var err error
		if sd, err = authority.Parse(data); err != nil {
			return
		}
	}
	if n.store.Has(sd.ID) || n.admissionRoom(sd) != nil {
		return
	}
	// A validly signed declaration at a taken position is equivocation.
	n.conflictEvidence(sd, n.pool.at(sd.Decl.Authority, sd.Decl.Seq))
	if sd.Decl.Kind == authority.KindRevocation {
		// Fail safe: a revocation signed by its issuer denies at once,
		// before Raft orders it.
		n.prov.add(sd)
	}
	n.pool.addRelayed(sd, time.Now(), n.raft.Leader())
	n.poke()
}

// applyDeclarations is the FSM handler of cmdDeclarations. Deterministic:
// it decodes the batch and lets the store re-verify and apply it.
func (n *Node) applyDeclarations(index uint64, body []byte) any {
	envs, err := decodeBatch(body)
	if err != nil {
		if err := n.store.MarkApplied(index); err != nil {
			panic(fmt.Sprintf("node: mark index %d applied: %v", index, err))
		}
		return []error{err}
	}
	// Each envelope is hashed once: its ID finds the pool's parsed copy
	// (verified already, verified.go), marks it recently agreed, and
	// takes it out of the pool.
	ids := make([]authority.ID, len(envs))
	parsed := make([]*authority.Signed, len(envs))
	for i, env := range envs {
		ids[i] = authority.IDOf(env)
		parsed[i] = n.pool.get(ids[i])
	}
	evBefore := n.store.EvidenceCount()
	errs := n.store.ApplyDeclarationsParsed(index, envs, parsed)
	n.noteApplied(evBefore)
	n.recent.add(ids)
	accepted := 0
	for i, e := range errs {
		if e == nil {
			accepted++
		} else {
			n.met.applyRefused.Inc()
		}
		if e == nil || errors.Is(e, authority.ErrDuplicate) {
			// Agreed: no longer pending here (a local side effect only, so
			// the pool does not grow with a burst the proposer must list).
			n.pool.remove(ids[i])
		}
	}
	n.met.applied.Add(float64(accepted))
	if accepted > 0 {
		n.poke()
		n.pokeMembership()
	}
	return errs
}

var batchDec, _ = cbor.DecOptions{
	MaxArrayElements: maxBatchCount * 2,
	IndefLength:      cbor.IndefLengthForbidden,
	TagsMd:           cbor.TagsForbidden,
}.DecMode()

func encodeBatch(envs [][]byte) []byte {
	b, err := cbor.Marshal(envs)
	if err != nil {
		panic(err) // [][]byte always encodes
	}
	return b
}

func decodeBatch(b []byte) ([][]byte, error) {
	var envs [][]byte
	if err := batchDec.Unmarshal(b, &envs); err != nil {
		return nil, fmt.Errorf("node: malformed declaration batch: %w", err)
	}
	return envs, nil
}

// proposeLoop carries pending declarations to Raft: the leader proposes
// them, a follower forwards them to the leader.
func (n *Node) proposeLoop() {
	t := time.NewTicker(proposeInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
		n.proposeOnce()
		n.proposeEvidence()
		// Every submit and gossip message kicks; a round lists the whole
		// pool. Let kicks coalesce for a moment, so rounds stay cheap
		// under bursts and batches fill (propose.go).
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(proposeGap):
		}
	}
}

func (n *Node) proposeOnce() {
	if n.proposals.Load() >= maxInFlight {
		return // nothing could be proposed; a settled batch kicks again
	}
	if n.forwarding.Load() && !n.raft.IsLeader() {
		return // nothing could be forwarded; the forward kicks when done
	}
	now := time.Now()
	items := n.pool.list()
	// Admission requests wait, unproposed, until their authority is admitted.
	held := n.heldAdmissions(items)
	// One read lock for the whole round, not one per declaration.
	agreed := make([]bool, len(items))
	n.store.View(func(v authority.View) {
		g, ok := v.(interface{ Has(authority.ID) bool })
		for i, p := range items {
			agreed[i] = ok && g.Has(p.sd.ID)
		}
	})
	var todo []*pendingDecl
	for i, p := range items {
		if p.inflight.Load() {
			continue // in a proposal that Raft has not answered yet
		}
		if agreed[i] {
			n.pool.remove(p.sd.ID)
			continue
		}
		ttl := pendingTTL
		if held[p.sd.ID] {
			ttl = admissionTTL
		}
		if now.Sub(p.added) > ttl {
			n.log.Warn("dropping a declaration that stayed pending too long", "id", p.sd.ID.Short(), "kind", p.sd.Decl.Kind.String())
			n.pool.remove(p.sd.ID)
			continue
		}
		if !held[p.sd.ID] {
			todo = append(todo, p)
		}
	}
	n.prov.prune(n.store)
	n.met.pending.Set(float64(len(todo)))
	if len(todo) == 0 {
		return
	}
	if n.raft.IsLeader() {
		n.proposeBatches(todo)
		return
	}
	leader := n.raft.Leader()
	if leader == "" || leader == n.host.PeerID() {
		return
	}
	// One forward at a time; what is not sent now is not marked sent.
	if !n.forwarding.CompareAndSwap(false, true) {
		return
	}
	var envs [][]byte
	size := 0
	for _, p := range todo {
		// The leader's frame decoder takes at most maxForwardCount
		// envelopes: the rest go in the next round (propose.go).
		if len(envs) >= maxForwardCount || size+len(p.sd.Raw) > maxForwardBytes {
			break
		}
		// A new leader gets everything at once; the same one only retries.
		if p.forwardedTo != leader || now.Sub(p.forwarded) >= p.retry() {
			p.forwardedTo = leader
			envs = append(envs, p.sd.Raw)
			size += len(p.sd.Raw) + 8
			p.forwarded = now
		}
	}
	if len(envs) == 0 {
		n.forwarding.Store(false)
		return
	}
	// Forward off the loop: a dial to a leader that just died can take
	// seconds (QUIC waits out its handshake), and meanwhile this node may
	// become the leader and must propose.
	n.wg.Go(func() {
		// Forward again at once if this one was cut short by the caps.
		defer n.poke()
		defer n.forwarding.Store(false)
		if err := n.forward(leader, envs); err != nil {
			n.log.Debug("forward to leader", "leader", leader, "n", len(envs), "err", err)
		}
	})
}

// graphAsOf is when this replica was last known to be current: now for the
// leader, the leader's last contact for a follower.
func (n *Node) graphAsOf() time.Time {
	st := n.raft.Stats()
	if st.State == consensus.StateLeader {
		return time.Now()
	}
	if !st.LastContact.IsZero() {
		return st.LastContact
	}
	return n.started
}

// verifyAsOf is the graph-as-of time to judge a request at `at` with, so
// that the decision's graph age is the replica's real age now (on the
// node's clock), whatever time the request is judged at: a request judged
// at a fixed or past time must still say how stale the replica is.
func (n *Node) verifyAsOf(at time.Time) time.Time {
	return at.Add(-max(time.Since(n.graphAsOf()), 0))
}

// Verify decides a request against this node's replica (plus revocations
// seen by gossip and not yet agreed). It works with no Raft quorum and no
// network: it reads local state only.
func (n *Node) Verify(cred []byte, target, resource, action string, at time.Time) authority.Decision {
	asOf := n.verifyAsOf(at)
	var d authority.Decision
	n.store.View(func(v authority.View) {
		d = authority.VerifyNamed(overlay{View: v, prov: n.prov, eq: &n.eq},
			authority.Request{Credential: cred, Resource: resource, Action: action}, target,
			authority.WithTime(at), authority.WithGraphAsOf(asOf), authority.WithCache(n.chains))
	})
	n.met.decisions.WithLabelValues(d.Outcome, string(d.Reason)).Inc()
	return d
}

// VerifyRequest is Verify for a whole request: one that carries a
// delegation chain (req.Delegation) or a proof of possession (req.PoP).
// target names the target authority (req.Target is ignored, as in
// authority.VerifyNamed); opts add to the node's own (a verifier's
// challenge: authority.WithChallenge). Like Verify it reads local state only.
func (n *Node) VerifyRequest(req authority.Request, target string, at time.Time, opts ...authority.Option) authority.Decision {
	asOf := n.verifyAsOf(at)
	all := append([]authority.Option{authority.WithTime(at), authority.WithGraphAsOf(asOf), authority.WithCache(n.chains)}, opts...)
	var d authority.Decision
	n.store.View(func(v authority.View) {
		d = authority.VerifyNamed(overlay{View: v, prov: n.prov, eq: &n.eq}, req, target, all...)
	})
	n.met.decisions.WithLabelValues(d.Outcome, string(d.Reason)).Inc()
	return d
}

// Head is an authority's next chain position as this node sees it: the
// agreed head, advanced over pending declarations that extend it.
func (n *Node) Head(_ context.Context, ref string) (AuthorityStatus, error) {
	var out AuthorityStatus
	var err error
	n.store.View(func(v authority.View) { out, err = n.headIn(v, ref) })
	if err != nil {
		return out, err
	}
	return n.advancePending(out), nil
}

// headIn is an authority's agreed head in v (or our own pending genesis).
func (n *Node) headIn(v authority.View, ref string) (AuthorityStatus, error) {
	id, err := authority.ResolveAuthority(v, ref)
	if err != nil {
		// Our own authority may be pending still.
		if ref == n.home.Config.Name || ref == n.home.Authority.String() {
			if g := n.pool.get(n.home.Authority); g != nil {
				return AuthorityStatus{ID: n.home.Authority, Name: n.home.Config.Name, Kind: n.home.Config.Kind, HeadID: n.home.Authority, Pending: true}, nil
			}
		}
		return AuthorityStatus{}, err
	}
	a, _ := v.Authority(id)
	return AuthorityStatus{ID: a.ID, Name: a.Name, Kind: a.Kind, Head: a.Head, HeadID: a.HeadID, Rotations: rotationIDs(a)}, nil
}

// advancePending moves an agreed head over pending declarations that
// extend it.
func (n *Node) advancePending(out AuthorityStatus) AuthorityStatus {
	for {
		p := n.pool.at(out.ID, out.Head+1)
		if p == nil || p.Decl.Prev != out.HeadID {
			break
		}
		out.Head, out.HeadID, out.Pending = p.Decl.Seq, p.ID, true
	}
	return out
}

// AuthorityStatus is one authority's identity and chain head.
type AuthorityStatus struct {
	ID      authority.ID `json:"id"`
	Name    string       `json:"name"`
	Kind    string       `json:"kind,omitempty"`
	Head    uint64       `json:"head"`
	HeadID  authority.ID `json:"head_id"`
	Pending bool         `json:"pending,omitempty"` // the head includes declarations not yet agreed
	// Rotations are the IDs of the authority's agreed rotations, in chain
	// order (rotate.go): fetch them to follow its root set from the genesis.
	Rotations []authority.ID `json:"rotations,omitempty"`
}

// pendingDecl is a declaration on its way to the agreed graph.
type pendingDecl struct {
	sd        *authority.Signed
	added     time.Time
	forwarded time.Time
	// forwardedTo is the leader it was last forwarded to.
	forwardedTo string
	// inflight is set while the declaration is in a proposal Raft has not
	// answered yet (propose.go).
	inflight atomic.Bool
	// relayed: it arrived by gossip, so its origin forwards it and this
	// node only repairs (see pool.addRelayed).
	relayed bool
}

// pool holds declarations that are valid but not yet agreed.
type pool struct {
	mu  sync.Mutex
	m   map[authority.ID]*pendingDecl
	pos map[posKey]*authority.Signed
}

type posKey struct {
	a   authority.ID
	seq uint64
}

func newPool() *pool {
	return &pool{m: map[authority.ID]*pendingDecl{}, pos: map[posKey]*authority.Signed{}}
}

// maxPending bounds the pool: beyond it new declarations wait for gossip
// repair or a resubmission.
const maxPending = 100_000

func (p *pool) add(sd *authority.Signed, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[sd.ID]; ok || len(p.m) >= maxPending {
		return
	}
	p.m[sd.ID] = &pendingDecl{sd: sd, added: now}
	owner := sd.Decl.Authority
	if sd.Decl.Kind == authority.KindGenesis {
		owner = sd.ID
	}
	if _, ok := p.pos[posKey{owner, sd.Decl.Seq}]; !ok {
		p.pos[posKey{owner, sd.Decl.Seq}] = sd
	}
}

func (p *pool) remove(id authority.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.m[id]
	if !ok {
		return
	}
	delete(p.m, id)
	owner := d.sd.Decl.Authority
	if d.sd.Decl.Kind == authority.KindGenesis {
		owner = d.sd.ID
	}
	k := posKey{owner, d.sd.Decl.Seq}
	if p.pos[k] == d.sd {
		delete(p.pos, k)
	}
}

func (p *pool) get(id authority.ID) *authority.Signed {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.m[id]; ok {
		return d.sd
	}
	return nil
}

func (p *pool) at(a authority.ID, seq uint64) *authority.Signed {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos[posKey{a, seq}]
}

func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// list returns the pending declarations in proposal order: geneses first,
// then by authority and seq, so a batch can carry a whole chain segment.
func (p *pool) list() []*pendingDecl {
	p.mu.Lock()
	out := make([]*pendingDecl, 0, len(p.m))
	for _, d := range p.m {
		out = append(out, d)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i].sd.Decl, &out[j].sd.Decl
		if (a.Kind == authority.KindGenesis) != (b.Kind == authority.KindGenesis) {
			return a.Kind == authority.KindGenesis
		}
		// Bytes, not hex strings: the same order, without allocating in a
		// sort that runs on every proposer round.
		if c := bytes.Compare(a.Authority[:], b.Authority[:]); c != 0 {
			return c < 0
		}
		if a.Seq != b.Seq {
			return a.Seq < b.Seq
		}
		return bytes.Compare(out[i].sd.ID[:], out[j].sd.ID[:]) < 0
	})
	return out
}

// provisional holds revocations seen (signed, verified) but not yet agreed:
// they deny at once, so revocation never waits for Raft.
type provisional struct {
	mu sync.RWMutex
	m  map[[2]authority.ID]*authority.Signed
	// hook is Config.OnRevocation; set before the node starts.
	hook func(target authority.ID)
}

func newProvisional() *provisional {
	return &provisional{m: map[[2]authority.ID]*authority.Signed{}}
}

func (p *provisional) add(sd *authority.Signed) {
	p.mu.Lock()
	k := [2]authority.ID{sd.Decl.Revocation.Target, sd.Decl.Authority}
	_, had := p.m[k]
	if !had {
		p.m[k] = sd
	}
	p.mu.Unlock()
	// Outside the lock: the hook may verify, which reads the overlay.
	if !had && p.hook != nil {
		p.hook(sd.Decl.Revocation.Target)
	}
}

func (p *provisional) get(target, issuer authority.ID) (authority.ID, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if sd, ok := p.m[[2]authority.ID{target, issuer}]; ok {
		return sd.ID, true
	}
	return authority.ID{}, false
}

// prune drops provisional revocations that the agreed graph now holds.
func (p *provisional) prune(s *chainstore.Store) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, sd := range p.m {
		if s.Has(sd.ID) {
			delete(p.m, k)
		}
	}
}

// overlay is the agreed graph plus provisional revocations and
// equivocation marks.
type overlay struct {
	authority.View
	prov *provisional
	// eq marks authorities with evidence seen but not yet agreed
	// (equivocation.go); nil: none.
	eq *equivocations
}

// AuthoritiesWithIssuer passes the graph's OIDC issuer index through, so
// external credentials verify through the overlay.
func (o overlay) AuthoritiesWithIssuer(iss string) []authority.ID {
	if av, ok := o.View.(authority.AnchorView); ok {
		return av.AuthoritiesWithIssuer(iss)
	}
	return nil
}

// AuthoritiesWithRoot passes the graph's X.509 root index through.
func (o overlay) AuthoritiesWithRoot(rawSubject []byte) []authority.ID {
	if av, ok := o.View.(authority.AnchorView); ok {
		return av.AuthoritiesWithRoot(rawSubject)
	}
	return nil
}

func (o overlay) RevokedBy(target, issuer authority.ID) (authority.ID, bool) {
	if id, ok := o.View.RevokedBy(target, issuer); ok {
		return id, ok
	}
	return o.prov.get(target, issuer)
}

// stateAdapter presents the store as consensus's StateStore.
type stateAdapter struct{ s *chainstore.Store }

func (a stateAdapter) AppliedIndex() uint64       { return a.s.AppliedIndex() }
func (a stateAdapter) MarkApplied(i uint64) error { return a.s.MarkApplied(i) }
func (a stateAdapter) NeedsRestore() bool         { return a.s.NeedsRestore() }
func (a stateAdapter) Restore(r io.Reader) error  { return a.s.Restore(r) }
func (a stateAdapter) Snapshot() (consensus.Snapshot, error) {
	snap, err := a.s.Snapshot()
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// hostNetwork presents the libp2p host as consensus's Network.
type hostNetwork struct{ h *gossip.Host }

func (h hostNetwork) LocalID() string                           { return h.h.PeerID() }
func (h hostNetwork) Listen(proto string) (net.Listener, error) { return h.h.Listen(proto) }
func (h hostNetwork) Dial(ctx context.Context, peer, proto string) (net.Conn, error) {
	return h.h.Dial(ctx, peer, proto)
}

type consensusServer = consensus.Server
