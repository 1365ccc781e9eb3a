package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fednode/fednode/authority"
)

// Stream protocols between nodes, over the libp2p host. Each is one request
// and one response, each a 4-byte big-endian length and a CBOR map with
// integer keys. Wire formats: keep the IDs and field numbers.
const (
	// ProtoForward carries pending declarations from a follower to the leader.
	ProtoForward = "/fednode/forward/1"
	// ProtoJoin asks a member to admit this node to the Raft cluster.
	ProtoJoin = "/fednode/join/1"
	// ProtoPeers asks a member for its address book.
	ProtoPeers = "/fednode/peers/1"
)

const (
	// maxFrame bounds one message on these protocols.
	maxFrame       = 8 << 20
	streamDeadline = 15 * time.Second
)

type forwardRequest struct {
	Envelopes [][]byte `cbor:"1,keyasint"`
	// Evidence is proofs of equivocation, each the pair of envelopes
	// (equivocation.go).
	Evidence [][][]byte `cbor:"2,keyasint,omitempty"`
}

type forwardResponse struct {
	Accepted int      `cbor:"1,keyasint"`
	Errors   []string `cbor:"2,keyasint,omitempty"`
}

type joinRequest struct {
	PeerID  string   `cbor:"1,keyasint"`
	Addrs   []string `cbor:"2,keyasint"`
	Genesis []byte   `cbor:"3,keyasint"`
}

type joinResponse struct {
	OK     bool                `cbor:"1,keyasint"`
	Error  string              `cbor:"2,keyasint,omitempty"`
	Leader string              `cbor:"3,keyasint,omitempty"`
	Peers  map[string][]string `cbor:"4,keyasint,omitempty"`
	// Pending: the consortium's charter is active, so the genesis is held
	// as an admission request until members approve it (consortium.go);
	// the joiner keeps connected and asks again.
	Pending bool `cbor:"5,keyasint,omitempty"`
}

type peersResponse struct {
	Peers map[string][]string `cbor:"1,keyasint"`
}

var frameDec, _ = cbor.DecOptions{
	MaxArrayElements: 4096,
	MaxMapPairs:      4096,
	IndefLength:      cbor.IndefLengthForbidden,
	TagsMd:           cbor.TagsForbidden,
}.DecMode()

func writeFrame(w io.Writer, v any) error { return writeFrameMax(w, v, maxFrame) }

func readFrame(r io.Reader, v any) error { return readFrameMax(r, v, maxFrame) }

// writeFrameMax writes one frame of at most limit bytes.
func writeFrameMax(w io.Writer, v any, limit int) error {
	b, err := cbor.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > limit {
		return fmt.Errorf("node: message of %d bytes is over the %d-byte limit", len(b), limit)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// readFrameMax reads one frame of at most limit bytes.
func readFrameMax(r io.Reader, v any, limit int) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return fmt.Errorf("node: peer sent a %d-byte message, over the %d-byte limit", n, limit)
	}
	// Read what arrives rather than allocate the announced length up front:
	// a 4-byte header must not cost the limit in memory.
	b, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return err
	}
	if len(b) != int(n) {
		return io.ErrUnexpectedEOF
	}
	if err := frameDec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("node: malformed message from peer: %w", err)
	}
	return nil
}

// call sends one request on proto to peer and reads the response.
func (n *Node) call(ctx context.Context, peer, proto string, req, resp any) error {
	ctx, cancel := context.WithTimeout(ctx, streamDeadline)
	defer cancel()
	c, err := n.host.Dial(ctx, peer, proto)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(streamDeadline))
	if err := writeFrame(c, req); err != nil {
		return fmt.Errorf("node: %s to %s: %w", proto, peer, err)
	}
	if err := readFrame(c, resp); err != nil {
		return fmt.Errorf("node: %s from %s: %w", proto, peer, err)
	}
	return nil
}

// serve accepts streams of one protocol and answers each with handle.
func (n *Node) serve(proto string, handle func(remote string, c net.Conn)) error {
	ln, err := n.host.Listen(proto)
	if err != nil {
		return err
	}
	n.wg.Go(func() {
		<-n.ctx.Done()
		ln.Close()
	})
	n.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(streamDeadline))
				handle(c.RemoteAddr().String(), c)
			}()
		}
	})
	return nil
}

func (n *Node) serveProtocols() error {
	if err := n.serve(ProtoForward, n.handleForward); err != nil {
		return err
	}
	if err := n.serve(ProtoJoin, n.handleJoin); err != nil {
		return err
	}
	if err := n.serve(ProtoCosign, n.handleCosign); err != nil {
		return err
	}
	if err := n.serve(ProtoSync, n.handleSync); err != nil {
		return err
	}
	if err := n.serve(ProtoReadIndex, n.handleReadIndex); err != nil {
		return err
	}
	return n.serve(ProtoPeers, n.handlePeers)
}

// forwardTimeout bounds one forward to the leader; the proposer retries.
const forwardTimeout = 3 * time.Second

func (n *Node) forward(leader string, envs [][]byte) error {
	ctx, cancel := context.WithTimeout(n.ctx, forwardTimeout)
	defer cancel()
	var resp forwardResponse
	return n.call(ctx, leader, ProtoForward, forwardRequest{Envelopes: envs}, &resp)
}

func (n *Node) handleForward(remote string, c net.Conn) {
	var req forwardRequest
	if err := readFrame(c, &req); err != nil {
		n.log.Debug("forward: bad request", "from", remote, "err", err)
		return
	}
	var resp forwardResponse
	for _, env := range req.Envelopes {
		// Most forwards repeat what gossip brought already: skip those
		// before parsing and verifying.
		if id := authority.IDOf(env); n.store.Has(id) || n.pool.get(id) != nil {
			resp.Accepted++
			continue
		}
		sd, err := authority.Parse(env)
		if err == nil && !sd.Decl.Kind.OnChain() {
			err = fmt.Errorf("%w: %v is off-chain", ErrInvalid, sd.Decl.Kind)
		}
		// What the pool holds passed admit already (the ID is the hash of
		// the bytes): followers forward what gossip brought them, which the
		// leader usually has.
		if err == nil && !n.store.Has(sd.ID) && n.pool.get(sd.ID) == nil {
			err = n.admit(sd)
		}
		if err != nil {
			resp.Errors = append(resp.Errors, err.Error())
			continue
		}
		resp.Accepted++
	}
	resp.Errors = append(resp.Errors, n.admitForwardedEvidence(req.Evidence)...)
	_ = writeFrame(c, resp)
}

// handleJoin admits a node to the Raft cluster as a voter. For now any
// member adds any node that asks with a valid genesis; admission by the
// consortium's threshold belongs to the graph (a later step).
func (n *Node) handleJoin(remote string, c net.Conn) {
	var req joinRequest
	if err := readFrame(c, &req); err != nil {
		n.log.Debug("join: bad request", "from", remote, "err", err)
		return
	}
	_ = writeFrame(c, n.admitJoin(remote, req))
}

func (n *Node) admitJoin(remote string, req joinRequest) joinResponse {
	fail := func(format string, args ...any) joinResponse {
		return joinResponse{Error: fmt.Sprintf(format, args...)}
	}
	gen, err := authority.Parse(req.Genesis)
	if err != nil {
		return fail("join: the request's genesis does not parse: %v", err)
	}
	if gen.Decl.Kind != authority.KindGenesis {
		return fail("join: the request carries a %v, not a genesis declaration", gen.Decl.Kind)
	}
	if err := gen.VerifyThreshold(gen.Decl.Genesis.RootKeys, int(gen.Decl.Genesis.Threshold)); err != nil {
		return fail("join: %v", err)
	}
	if remote != req.PeerID && !n.isServer(remote) {
		return fail("join: peer %s asked on behalf of %s", remote, req.PeerID)
	}
	if !n.raft.IsLeader() {
		leader := n.raft.Leader()
		if leader == "" {
			return fail("join: no Raft leader is known here yet; retry")
		}
		var resp joinResponse
		if err := n.call(n.ctx, leader, ProtoJoin, req, &resp); err != nil {
			return fail("join: forwarding to the leader %s: %v", leader, err)
		}
		return resp
	}
	if err := n.host.AddPeer(req.PeerID, req.Addrs); err != nil {
		return fail("join: %v", err)
	}
	_ = n.store.SavePeer(req.PeerID, req.Addrs)
	if n.charterActive() {
		// No operator's say-so adds a voter: the graph decides (consortium.go).
		return n.admitJoinRequest(gen)
	}
	if !n.store.Has(gen.ID) {
		_ = n.admit(gen)
	}
	ctx, cancel := context.WithTimeout(n.ctx, 20*time.Second)
	defer cancel()
	if err := n.raft.AddVoter(ctx, req.PeerID); err != nil {
		return fail("join: add voter: %v", err)
	}
	n.log.Info("admitted a node to the Raft cluster", "peer", req.PeerID, "authority", gen.Decl.Genesis.Name)
	return joinResponse{OK: true, Leader: n.host.PeerID(), Peers: n.addressBook()}
}

func (n *Node) isServer(peer string) bool {
	servers, err := n.raft.Servers()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(servers, func(s consensusServer) bool { return s.ID == peer })
}

func (n *Node) handlePeers(remote string, c net.Conn) {
	var req struct{}
	if err := readFrame(c, &req); err != nil {
		return
	}
	_ = writeFrame(c, peersResponse{Peers: n.addressBook()})
}

// addressBook is what this node knows of the Raft servers' addresses, itself
// included.
func (n *Node) addressBook() map[string][]string {
	book := map[string][]string{n.host.PeerID(): n.host.Addrs()}
	servers, _ := n.raft.Servers()
	for _, s := range servers {
		if _, ok := book[s.ID]; ok {
			continue
		}
		if addrs := n.host.PeerAddrs(s.ID); len(addrs) > 0 {
			book[s.ID] = addrs
		}
	}
	return book
}

// mergeBook remembers addresses learnt from a peer, permanently, and saves
// them for restarts.
func (n *Node) mergeBook(book map[string][]string) {
	for id, addrs := range book {
		if id == n.host.PeerID() || len(addrs) == 0 {
			continue
		}
		if err := n.host.AddPeer(id, addrs); err != nil {
			continue
		}
		_ = n.store.SavePeer(id, addrs)
	}
}

// joinLoop asks the given members for admission until one admits us.
func (n *Node) joinLoop(addrs []string) {
	deadline := time.Now().Add(joinTimeout)
	gen := n.home.Genesis
	for attempt := 0; ; attempt++ {
		for _, addr := range addrs {
			if n.ctx.Err() != nil {
				return
			}
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			peer, err := n.host.Connect(ctx, addr)
			cancel()
			if err != nil {
				n.log.Debug("join: connect", "addr", addr, "err", err)
				continue
			}
			var resp joinResponse
			err = n.call(n.ctx, peer, ProtoJoin, joinRequest{PeerID: n.host.PeerID(), Addrs: n.host.Addrs(), Genesis: gen}, &resp)
			if err == nil && resp.Pending {
				// Held as an admission request: wait for the members.
				n.awaitAdmission(addrs, resp)
				return
			}
			if err == nil && !resp.OK {
				err = errors.New(resp.Error)
			}
			if err != nil {
				n.log.Info("join: not admitted yet", "via", peer, "err", err)
				continue
			}
			n.mergeBook(resp.Peers)
			_ = n.store.SavePeer(peer, n.host.PeerAddrs(peer))
			n.log.Info("joined the consortium's Raft cluster", "via", peer, "leader", resp.Leader)
			n.refreshDirectory(0)
			return
		}
		if time.Now().After(deadline) {
			n.log.Error("join: gave up: no member admitted this node", "addrs", addrs)
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(time.Duration(min(attempt+1, 5)) * 500 * time.Millisecond):
		}
	}
}

// connectPeers dials the given multiaddrs once each, remembering them.
func (n *Node) connectPeers(addrs []string) {
	for _, addr := range addrs {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		peer, err := n.host.Connect(ctx, addr)
		cancel()
		if err != nil {
			n.log.Debug("connect", "addr", addr, "err", err)
			continue
		}
		_ = n.store.SavePeer(peer, n.host.PeerAddrs(peer))
	}
}

// directoryLoop keeps this node connected to every Raft server: it learns
// addresses from connected peers' address books and dials servers it is not
// connected to, so that elections work after any one node is lost.
func (n *Node) directoryLoop() {
	t := time.NewTicker(directoryInterval)
	defer t.Stop()
	for round := 0; ; round++ {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.refreshDirectory(round)
	}
}

// refreshDirectory merges one connected peer's address book (round picks
// which) and dials every Raft server this node is not connected to.
func (n *Node) refreshDirectory(round int) {
	connected := n.host.ConnectedPeers()
	if len(connected) > 0 {
		peer := connected[round%len(connected)]
		var resp peersResponse
		if err := n.call(n.ctx, peer, ProtoPeers, struct{}{}, &resp); err == nil {
			n.mergeBook(resp.Peers)
		}
	}
	n.discoverMembers(connected)
	servers, err := n.raft.Servers()
	if err != nil {
		return
	}
	for _, s := range servers {
		if s.ID == n.host.PeerID() || slices.Contains(connected, s.ID) {
			continue
		}
		for _, addr := range n.host.PeerAddrs(s.ID) {
			ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
			_, err := n.host.Connect(ctx, addr)
			cancel()
			if err == nil {
				break
			}
		}
	}
}
