package consensus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RaftProtocol is the stream protocol Raft's RPCs run on.
const RaftProtocol = "/fednode/raft/1.0.0"

// Network is the node's peer-to-peer host as Raft needs it (implemented by
// gossip.Host over libp2p streams, and by LoopbackNetwork members in tests).
//
// All methods may be called concurrently. A peer ID is an opaque string that
// the Network can dial; Raft uses it as both ServerID and ServerAddress.
type Network interface {
	// LocalID returns our peer ID. It must not change for the life of the
	// Raft state: it is our identity in the cluster configuration.
	LocalID() string
	// Listen accepts the streams peers open to us for proto. The caller
	// owns the listener and closes it; Close must unblock Accept. Each
	// accepted conn's RemoteAddr().String() is the dialler's peer ID (the
	// transport admits peers by it: Config.PeerAllowed).
	Listen(proto string) (net.Listener, error)
	// Dial opens a stream for proto to peerID, giving up when ctx ends. The
	// caller owns the conn.
	Dial(ctx context.Context, peerID, proto string) (net.Conn, error)
}

// Transport tunables (see raft.NewNetworkTransportWithConfig).
const (
	// transportMaxPool is how many idle connections are kept per peer.
	transportMaxPool = 3
	// transportTimeout bounds dialling and each RPC's I/O; InstallSnapshot
	// scales it with the snapshot size.
	transportTimeout = 10 * time.Second
)

// peerAddr is a net.Addr naming a peer by ID. Raft's NetworkTransport takes
// its LocalAddr from the stream layer's Addr().String(), which must be our
// peer ID (our ServerAddress), not the address of the socket underneath.
type peerAddr string

func (a peerAddr) Network() string { return "fednode" }
func (a peerAddr) String() string  { return string(a) }

// streamLayer is raft.StreamLayer over a Network: it accepts on the Raft
// protocol's listener and dials peers by ID. It tracks every connection it
// hands out, so that Close (when Raft shuts down) releases them all instead
// of leaving handler goroutines blocked on reads.
type streamLayer struct {
	net  Network
	ln   net.Listener
	addr peerAddr
	// allowed admits a peer to the transport; nil admits every peer.
	allowed func(peerID string) bool

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool // Invariant: once true, conns is empty and stays empty.
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(n Network, allowed func(string) bool) (*streamLayer, error) {
	ln, err := n.Listen(RaftProtocol)
	if err != nil {
		return nil, fmt.Errorf("consensus: listen on %s: %w", RaftProtocol, err)
	}
	return &streamLayer{
		net:     n,
		ln:      ln,
		addr:    peerAddr(n.LocalID()),
		allowed: allowed,
		conns:   make(map[*trackedConn]struct{}),
	}, nil
}

// Accept returns the next connection from an admitted peer; connections
// from others are closed at once, before Raft reads a byte of them.
func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return nil, err
		}
		peer := remotePeer(c)
		if !s.admits(peer) {
			_ = c.Close()
			continue
		}
		return s.track(c, peer)
	}
}

func (s *streamLayer) admits(peer string) bool { return s.allowed == nil || s.allowed(peer) }

// dropRefused closes the tracked connections of peers no longer admitted.
func (s *streamLayer) dropRefused() int {
	if s.allowed == nil {
		return 0
	}
	s.mu.Lock()
	var drop []*trackedConn
	for c := range s.conns {
		if !s.allowed(c.peer) {
			drop = append(drop, c)
		}
	}
	s.mu.Unlock()
	for _, c := range drop {
		_ = c.Close()
	}
	return len(drop)
}

// Dial treats address as a peer ID. A zero timeout means no deadline.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if !s.admits(string(address)) {
		return nil, fmt.Errorf("%w: %s", ErrPeerRefused, address)
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := s.net.Dial(ctx, string(address), RaftProtocol)
	if err != nil {
		return nil, fmt.Errorf("consensus: dial %s: %w", address, err)
	}
	return s.track(c, string(address))
}

func (s *streamLayer) Addr() net.Addr { return s.addr }

// Close closes the listener and every connection accepted or dialled.
func (s *streamLayer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.conns
	s.conns = make(map[*trackedConn]struct{})
	s.mu.Unlock()

	err := s.ln.Close()
	for c := range conns {
		_ = c.Conn.Close()
	}
	if err != nil {
		return fmt.Errorf("consensus: close raft listener: %w", err)
	}
	return nil
}

// errStreamClosed is returned for connections that arrive after Close.
var errStreamClosed = errors.New("consensus: raft stream layer closed")

func (s *streamLayer) track(c net.Conn, peer string) (net.Conn, error) {
	tc := &trackedConn{Conn: c, s: s, peer: peer}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, errStreamClosed
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *streamLayer
	peer string // the peer ID at the other end
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
