package node

// Anti-entropy: gossip is best effort, so nodes reconcile by pulling from
// one another over ProtoSync. The requester states what it holds (its
// agreed graph version and, per authority, the highest contiguous seq it
// holds, agreed or pending); the responder answers with what it lacks, in
// bounded pages: agreed declarations in agreed order first, then pending
// ones. A Raft member puts everything it lacks into its pending pool (the
// pool forwards to the leader, so a declaration any node acknowledged
// reaches Raft even if gossip lost it; Raft brings agreed ones in order). A
// node outside the Raft configuration applies agreed pages to its own store
// after checking each against the responder's signed checkpoint at that
// size: that is how an applicant or an observer follows the graph, and how
// a node that was away catches up from any one peer.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/chainstore"
	"github.com/fednode/fednode/tlog"
)

// ProtoSync is the anti-entropy pull protocol. A wire format: keep the ID
// and the field numbers.
const ProtoSync = "/fednode/sync/1"

// Bounds of the sync protocol.
const (
	// MaxSyncHeads bounds the chain heads one request carries.
	MaxSyncHeads = 16384
	// MaxSyncPageCount bounds the declarations of one response (agreed and
	// pending together); it is at most chainstore.MaxSyncPage.
	MaxSyncPageCount = 1024
	// MaxSyncPageBytes bounds the envelope bytes of one response.
	MaxSyncPageBytes = 2 << 20
	// maxSyncFrame bounds one sync frame on the wire: a full page, its
	// checkpoint note and the CBOR framing.
	maxSyncFrame = MaxSyncPageBytes + tlog.MaxNoteSize + 64<<10
	// maxSyncPages bounds the pages of one round, so that a peer that
	// always says "more" cannot hold the requester forever.
	maxSyncPages = 4096
	// maxSyncServing bounds the pages this node builds at once for its
	// peers; a request beyond it is answered "busy" at once.
	maxSyncServing = 4
	// defaultSyncInterval is the mean period of the timer round; each wait
	// is drawn uniformly from half to one and a half of it (10-30 s).
	defaultSyncInterval = 20 * time.Second
)

// Errors of a sync round.
var (
	// ErrSyncCheckpoint: a responder's page does not match its signed
	// checkpoint (or the checkpoint does not verify): nothing is stored.
	ErrSyncCheckpoint = errors.New("node: sync page does not match the peer's checkpoint")
	// ErrSyncPeer: the responder answered with an error or broke the
	// protocol.
	ErrSyncPeer = errors.New("node: sync peer misbehaved")
)

// syncHead is one authority's chain head in a request: [authority ID, seq].
type syncHead struct {
	_         struct{} `cbor:",toarray"`
	Authority []byte
	Seq       uint64
}

// syncRequest asks for what the requester lacks.
type syncRequest struct {
	// Version is the requester's agreed graph version.
	Version uint64 `cbor:"1,keyasint"`
	// Heads are, per authority, the highest contiguous seq the requester
	// holds, agreed or pending (a genesis alone is seq 0). At most
	// MaxSyncHeads.
	Heads []syncHead `cbor:"2,keyasint,omitempty"`
	// After is where the agreed stream resumes: send agreed declarations of
	// versions after it. It starts at Version and moves on page by page.
	After uint64 `cbor:"3,keyasint"`
}

// syncResponse is one page.
type syncResponse struct {
	// From is the version before the first agreed declaration: Agreed[i]
	// is the agreed declaration at version From+i+1.
	From   uint64   `cbor:"1,keyasint"`
	Agreed [][]byte `cbor:"2,keyasint,omitempty"`
	// Checkpoint is the responder's signed checkpoint note at size
	// From+len(Agreed); present whenever Agreed is not empty.
	Checkpoint []byte `cbor:"3,keyasint,omitempty"`
	// Pending are declarations the responder holds valid but not agreed,
	// beyond the requester's heads; only once the agreed stream is done.
	Pending [][]byte `cbor:"4,keyasint,omitempty"`
	// More: ask again (with After = From+len(Agreed)) for the rest.
	More bool `cbor:"5,keyasint,omitempty"`
	// Version is the responder's agreed graph version.
	Version uint64 `cbor:"6,keyasint"`
	// Error, if set, says why the responder refused the request.
	Error string `cbor:"7,keyasint,omitempty"`
}

var syncDec, _ = cbor.DecOptions{
	MaxArrayElements:  MaxSyncHeads,
	MaxMapPairs:       16,
	MaxNestedLevels:   4,
	IndefLength:       cbor.IndefLengthForbidden,
	TagsMd:            cbor.TagsForbidden,
	DupMapKey:         cbor.DupMapKeyEnforcedAPF,
	ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
}.DecMode()

// decodeSyncFrame decodes one sync frame body, strictly.
func decodeSyncFrame(b []byte, v any) error {
	if err := syncDec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("node: malformed sync message: %w", err)
	}
	return nil
}

func readSyncFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxSyncFrame {
		return fmt.Errorf("node: peer sent a %d-byte sync message, over the %d-byte limit", n, maxSyncFrame)
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return err
	}
	if len(b) != int(n) {
		return io.ErrUnexpectedEOF
	}
	return decodeSyncFrame(b, v)
}

// syncState is what anti-entropy keeps. The zero value is ready.
type syncState struct {
	once sync.Once
	q    chan string   // peers to sync with now (on connect)
	busy chan struct{} // one token per page being built for a peer
	mu   sync.Mutex    // serialises rounds
	// tamper, if set, alters each page this node serves: fault injection
	// for tests of a hostile responder.
	tamper atomic.Pointer[func(*syncResponse)]
	pages  atomic.Int64 // responses read, for SyncPagesRead
}

// SnapshotsRestored is how many Raft snapshots this node's store has
// installed since it started (a node back from past log compaction).
func (n *Node) SnapshotsRestored() uint64 { return n.store.Restores() }

// SyncPagesRead is how many sync pages this node has read since it started.
func (n *Node) SyncPagesRead() int { return int(n.syn.pages.Load()) }

func (s *syncState) queue() chan string {
	s.once.Do(s.init)
	return s.q
}

func (s *syncState) init() {
	s.q, s.busy = make(chan string, 64), make(chan struct{}, maxSyncServing)
}

// serving takes a token to build a page; false when maxSyncServing are
// being built already.
func (s *syncState) serving() bool {
	s.once.Do(s.init)
	select {
	case s.busy <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *syncState) served() { <-s.busy }

// syncOnConnect asks the sync loop to pull from a newly connected peer.
func (n *Node) syncOnConnect(peer string) {
	select {
	case n.syn.queue() <- peer:
	default: // a round is due anyway; the timer covers the rest
	}
}

// syncLoop runs a round with each newly connected peer (which covers a
// healed partition too) and, on a jittered timer, with a random one.
func (n *Node) syncLoop() {
	mean := n.cfg.SyncInterval
	if mean <= 0 {
		mean = defaultSyncInterval
	}
	q := n.syn.queue()
	for {
		wait := mean/2 + rand.N(mean)
		t := time.NewTimer(wait)
		var peer string
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case peer = <-q:
			t.Stop()
		case <-t.C:
			peers := n.host.ConnectedPeers()
			if len(peers) == 0 {
				continue
			}
			peer = peers[rand.N(len(peers))]
		}
		if _, err := n.SyncWith(n.ctx, peer); err != nil && n.ctx.Err() == nil {
			n.log.Debug("sync", "peer", peer, "err", err)
		}
	}
}

// SyncStats says what one sync round brought.
type SyncStats struct {
	Pages   int // responses read
	Applied int // agreed declarations applied to this store (outside Raft only)
	Pooled  int // declarations added to the pending pool
	Refused int // declarations that did not verify here
}

// SyncWith runs one anti-entropy round with peer (a libp2p peer ID): it
// pulls what this node lacks, page by page, until the peer has nothing
// more. A node outside the Raft configuration applies agreed pages to its
// store once each matches the peer's signed checkpoint; a Raft member pools
// them. Rounds are serialised. Errors: ErrSyncCheckpoint (a page did not
// match its checkpoint: nothing of it is stored), ErrSyncPeer, the
// transport's and chainstore's errors.
func (n *Node) SyncWith(ctx context.Context, peer string) (SyncStats, error) {
	n.syn.mu.Lock()
	defer n.syn.mu.Unlock()
	var st SyncStats
	// The next page is fetched while this one is checked and applied: the
	// peer reads and signs, and the wire carries, while this node verifies.
	next := n.fetchSync(ctx, peer, n.store.Version())
	for st.Pages < maxSyncPages {
		f := <-next
		req, resp := f.req, f.resp
		if f.err != nil {
			n.met.syncRounds.WithLabelValues("error").Inc()
			return st, f.err
		}
		st.Pages++
		n.syn.pages.Add(1)
		if resp.Error != "" {
			n.met.syncRounds.WithLabelValues("error").Inc()
			return st, fmt.Errorf("%w: %s: %s", ErrSyncPeer, peer, resp.Error)
		}
		if resp.From != req.After || len(resp.Agreed)+len(resp.Pending) > MaxSyncPageCount {
			n.met.syncRounds.WithLabelValues("error").Inc()
			return st, fmt.Errorf("%w: %s answered from version %d with %d+%d declarations to a request after %d", ErrSyncPeer, peer, resp.From, len(resp.Agreed), len(resp.Pending), req.After)
		}
		if resp.More && len(resp.Agreed) == 0 && len(resp.Pending) == 0 {
			n.met.syncRounds.WithLabelValues("error").Inc()
			return st, fmt.Errorf("%w: %s said more but sent nothing", ErrSyncPeer, peer)
		}
		if resp.More && len(resp.Agreed) > 0 {
			next = n.fetchSync(ctx, peer, resp.From+uint64(len(resp.Agreed)))
		}
		if len(resp.Agreed) > 0 {
			if n.observer() {
				if err := n.applySyncedPage(resp); err != nil {
					n.met.syncRefusedPages.Inc()
					n.met.syncRounds.WithLabelValues("refused").Inc()
					n.log.Warn("sync: refused a page", "peer", peer, "from", resp.From, "n", len(resp.Agreed), "err", err)
					return st, err
				}
				st.Applied += len(resp.Agreed)
				n.met.syncDecls.WithLabelValues("applied").Add(float64(len(resp.Agreed)))
				n.poke()
			} else {
				pooled, refused := n.poolSynced(resp.Agreed)
				st.Pooled += pooled
				st.Refused += refused
			}
		}
		if len(resp.Pending) > 0 {
			pooled, refused := n.poolSynced(resp.Pending)
			st.Pooled += pooled
			st.Refused += refused
		}
		if !resp.More {
			break
		}
		if len(resp.Agreed) == 0 {
			// More pending: ask again with the heads this page advanced.
			next = n.fetchSync(ctx, peer, resp.From)
		}
	}
	n.met.syncRounds.WithLabelValues("ok").Inc()
	return st, nil
}

// observer reports whether this node takes agreed declarations from sync
// (it is outside the Raft configuration, and Raft never fed its store).
func (n *Node) observer() bool {
	if n.isServer(n.host.PeerID()) {
		return false
	}
	// Raft applied here before (a member that was removed, or a restart
	// before the configuration is known): only Raft feeds it.
	return n.store.Synced() || n.store.AppliedIndex() == 0
}

// fetched is one sync page, or why it could not be had.
type fetched struct {
	req  syncRequest
	resp syncResponse
	err  error
}

// fetchSync asks peer for the page after the given version, in the
// background; the channel yields exactly one result.
func (n *Node) fetchSync(ctx context.Context, peer string, after uint64) <-chan fetched {
	ch := make(chan fetched, 1)
	req := syncRequest{Version: n.store.Version(), Heads: n.syncHeads(), After: after}
	go func() {
		var resp syncResponse
		err := n.callSync(ctx, peer, req, &resp)
		ch <- fetched{req: req, resp: resp, err: err}
	}()
	return ch
}

func (n *Node) callSync(ctx context.Context, peer string, req syncRequest, resp *syncResponse) error {
	ctx, cancel := context.WithTimeout(ctx, streamDeadline)
	defer cancel()
	c, err := n.host.Dial(ctx, peer, ProtoSync)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(streamDeadline))
	if err := writeFrameMax(c, req, maxSyncFrame); err != nil {
		return fmt.Errorf("node: %s to %s: %w", ProtoSync, peer, err)
	}
	if err := readSyncFrame(c, resp); err != nil {
		return fmt.Errorf("node: %s from %s: %w", ProtoSync, peer, err)
	}
	return nil
}

// syncHeads lists, per authority, the highest contiguous seq this node
// holds: the agreed head, advanced over pending declarations extending it,
// and pending geneses' chains.
func (n *Node) syncHeads() []syncHead {
	type head struct {
		seq uint64
		id  authority.ID
	}
	heads := map[authority.ID]head{}
	n.store.View(func(v authority.View) {
		for _, a := range v.Authorities() {
			heads[a.ID] = head{a.Head, a.HeadID}
		}
	})
	for _, p := range n.pool.list() {
		if p.sd.Decl.Kind == authority.KindGenesis {
			if _, ok := heads[p.sd.ID]; !ok {
				heads[p.sd.ID] = head{0, p.sd.ID}
			}
		}
	}
	out := make([]syncHead, 0, min(len(heads), MaxSyncHeads))
	for a, h := range heads {
		if len(out) == MaxSyncHeads {
			break // the peer sends a little more than needed
		}
		for {
			p := n.pool.at(a, h.seq+1)
			if p == nil || p.Decl.Prev != h.id {
				break
			}
			h = head{p.Decl.Seq, p.ID}
		}
		out = append(out, syncHead{Authority: bytes.Clone(a[:]), Seq: h.seq})
	}
	return out
}

// handleSync answers one sync request with one page.
func (n *Node) handleSync(remote string, c net.Conn) {
	var req syncRequest
	if err := readSyncFrame(c, &req); err != nil {
		n.log.Debug("sync: bad request", "from", remote, "err", err)
		return
	}
	if !n.syn.serving() {
		_ = writeFrameMax(c, syncResponse{From: req.After, Version: n.store.Version(), Error: "sync: busy serving other peers; retry later"}, maxSyncFrame)
		return
	}
	resp := n.syncPage(req)
	n.syn.served()
	if f := n.syn.tamper.Load(); f != nil {
		(*f)(&resp)
	}
	n.met.syncServed.Inc()
	if err := writeFrameMax(c, resp, maxSyncFrame); err != nil {
		n.log.Debug("sync: answer", "to", remote, "err", err)
	}
}

var errPageFull = errors.New("node: sync page full")

// syncPage builds the page that answers req.
func (n *Node) syncPage(req syncRequest) syncResponse {
	version := n.store.Version()
	resp := syncResponse{From: req.After, Version: version}
	count, size := 0, 0
	if req.After < version {
		err := n.store.Declarations(req.After, version, func(_ uint64, env []byte) error {
			if count == MaxSyncPageCount || size+len(env) > MaxSyncPageBytes {
				return errPageFull
			}
			resp.Agreed = append(resp.Agreed, bytes.Clone(env))
			count++
			size += len(env)
			return nil
		})
		if errors.Is(err, errPageFull) {
			resp.More = true
		} else if err != nil {
			return syncResponse{From: req.After, Version: version, Error: fmt.Sprintf("sync: read the graph: %v", err)}
		}
		cp, err := n.checkpointAt(req.After + uint64(len(resp.Agreed)))
		if err != nil {
			return syncResponse{From: req.After, Version: version, Error: fmt.Sprintf("sync: checkpoint: %v", err)}
		}
		resp.Checkpoint = []byte(cp.Note)
	}
	if resp.More {
		return resp
	}
	heads := make(map[authority.ID]uint64, len(req.Heads))
	for _, h := range req.Heads {
		if len(h.Authority) == len(authority.ID{}) {
			heads[authority.ID(h.Authority)] = h.Seq
		}
	}
	for _, p := range n.pool.list() {
		sd := p.sd
		owner := sd.Decl.Authority
		if sd.Decl.Kind == authority.KindGenesis {
			owner = sd.ID
		}
		if h, ok := heads[owner]; ok && sd.Decl.Seq <= h {
			continue
		}
		if n.store.Has(sd.ID) {
			continue
		}
		if count == MaxSyncPageCount || size+len(sd.Raw) > MaxSyncPageBytes {
			resp.More = true
			break
		}
		resp.Pending = append(resp.Pending, sd.Raw)
		count++
		size += len(sd.Raw)
	}
	return resp
}

// applySyncedPage checks an agreed page against the responder's signed
// checkpoint and appends it to this (non-Raft) store.
func (n *Node) applySyncedPage(resp syncResponse) error {
	if len(resp.Checkpoint) == 0 {
		return fmt.Errorf("%w: the page carries no checkpoint", ErrSyncCheckpoint)
	}
	// Read what the check needs before the store locks its graph.
	known := n.witnesses()
	var origin string
	if resp.From > 0 {
		var err error
		if origin, err = n.LogOrigin(); err != nil {
			return err
		}
	}
	check := func(page []*authority.Signed, size uint64, root []byte) error {
		if resp.From == 0 {
			origin = tlog.Origin(hex.EncodeToString(page[0].ID[:logNameBytes]))
		}
		// The signer must be an authority of the graph the note attests:
		// one agreed here already or founded in this page.
		w := append([]tlog.Witness(nil), known...)
		for _, sd := range page {
			if g := sd.Decl.Genesis; g != nil {
				for _, k := range g.RootKeys {
					if k.Alg == authority.AlgEd25519 {
						w = append(w, tlog.Witness{Name: g.Name, Key: k})
					}
				}
			}
		}
		c, _, err := tlog.OpenCheckpoint(resp.Checkpoint, w)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSyncCheckpoint, err)
		}
		switch {
		case c.Origin != origin:
			return fmt.Errorf("%w: checkpoint of log %q, this page belongs to %q", ErrSyncCheckpoint, c.Origin, origin)
		case c.Size != size:
			return fmt.Errorf("%w: checkpoint of size %d for a page ending at version %d", ErrSyncCheckpoint, c.Size, size)
		case !bytes.Equal(c.Root, root):
			return fmt.Errorf("%w: the page's declarations give root %x at size %d, the signed checkpoint says %x", ErrSyncCheckpoint, root, size, c.Root)
		}
		return nil
	}
	if err := n.store.ApplySynced(resp.From, resp.Agreed, check); err != nil {
		if errors.Is(err, chainstore.ErrRaftFed) {
			// Admitted meanwhile: Raft brings the rest.
			return nil
		}
		return err
	}
	return nil
}

// poolSynced verifies declarations from a sync page as gossip is
// (checkSignature) and adds the valid ones this node does not hold to the
// pending pool. Geneses go first, so that an authority's first declarations
// verify against its pending genesis; the rest are checked on all cores.
func (n *Node) poolSynced(envs [][]byte) (pooled, refused int) {
	var rest []*authority.Signed
	admit := func(sd *authority.Signed) {
		if sd.Decl.Kind == authority.KindRevocation {
			n.prov.add(sd)
		}
		if n.pool.get(sd.ID) == nil {
			n.pool.add(sd, time.Now())
			pooled++
		}
	}
	for _, env := range envs {
		sd, err := authority.Parse(env)
		if err != nil || !sd.Decl.Kind.OnChain() {
			refused++
			continue
		}
		if n.store.Has(sd.ID) {
			continue
		}
		if sd.Decl.Kind != authority.KindGenesis {
			rest = append(rest, sd)
			continue
		}
		if err := n.checkSignature(sd); err != nil {
			refused++
			continue
		}
		admit(sd)
	}
	errs := make([]error, len(rest))
	workers := min(runtime.GOMAXPROCS(0), len(rest))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(rest); i += workers {
				errs[i] = n.checkSignature(rest[i])
			}
		})
	}
	wg.Wait()
	for i, sd := range rest {
		if errs[i] != nil {
			refused++
			continue
		}
		admit(sd)
	}
	n.met.syncDecls.WithLabelValues("pooled").Add(float64(pooled))
	n.met.syncDecls.WithLabelValues("refused").Add(float64(refused))
	if pooled > 0 {
		n.poke()
	}
	return pooled, refused
}

// syncMetrics are anti-entropy's Prometheus counters.
type syncMetrics struct {
	syncRounds       *prometheus.CounterVec
	syncDecls        *prometheus.CounterVec
	syncServed       prometheus.Counter
	syncRefusedPages prometheus.Counter
}

func newSyncMetrics(reg *prometheus.Registry) syncMetrics {
	m := syncMetrics{
		syncRounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fednode_sync_rounds_total", Help: "Anti-entropy rounds this node ran as requester, by outcome (ok, error, refused).",
		}, []string{"outcome"}),
		syncDecls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fednode_sync_declarations_total", Help: "Declarations received by anti-entropy, by outcome (applied, pooled, refused).",
		}, []string{"outcome"}),
		syncServed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fednode_sync_pages_served_total", Help: "Anti-entropy pages this node served to peers.",
		}),
		syncRefusedPages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fednode_sync_pages_refused_total", Help: "Agreed pages refused because they did not match the peer's signed checkpoint or did not verify.",
		}),
	}
	reg.MustRegister(m.syncRounds, m.syncDecls, m.syncServed, m.syncRefusedPages)
	return m
}
