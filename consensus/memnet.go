package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// This file is a test twin of the Network that gossip.Host provides over
// libp2p: real TCP sockets on 127.0.0.1, with partitions. It is exported so
// that tests of other packages (node, testnet) can run real Raft clusters
// without libp2p.
//
// WARNING: for tests only. It authenticates nothing: a dialler claims its
// peer ID in a plain header.

// Errors of LoopbackNetwork.
var (
	// ErrUnreachable: a partition separates the two peers.
	ErrUnreachable = errors.New("consensus: loopback: peer unreachable (partitioned)")
	// ErrNoListener: the peer is not listening for the protocol.
	ErrNoListener = errors.New("consensus: loopback: peer not listening")
	// ErrListening: the member already listens for the protocol.
	ErrListening = errors.New("consensus: loopback: already listening")
)

const (
	// maxLoopbackIDLen bounds the peer ID in a connection's header.
	maxLoopbackIDLen = 1024
	// loopbackHandshakeTimeout bounds reading a new connection's header.
	loopbackHandshakeTimeout = 5 * time.Second
)

// LoopbackNetwork is a registry of in-process Network members. Each member
// listens on real 127.0.0.1:0 TCP sockets, one per protocol, and dials
// others by peer ID through the registry. Partition and Heal cut and restore
// connectivity between groups of members.
//
// All methods are safe for concurrent use.
type LoopbackNetwork struct {
	mu        sync.Mutex
	listeners map[listenKey]*loopListener
	group     map[string]int // peer ID -> partition group; absent means 0
	lastGroup int
	conns     map[*loopConn]struct{} // live connections, both ends
}

type listenKey struct{ id, proto string }

// NewLoopbackNetwork returns an empty registry with no partitions.
func NewLoopbackNetwork() *LoopbackNetwork {
	return &LoopbackNetwork{
		listeners: make(map[listenKey]*loopListener),
		group:     make(map[string]int),
		conns:     make(map[*loopConn]struct{}),
	}
}

// Member returns the Network of peer id. Calling it again with the same id
// (a restarted node) returns an equivalent member.
func (n *LoopbackNetwork) Member(id string) *LoopbackMember {
	return &LoopbackMember{net: n, id: id}
}

// Partition puts ids on one side of a new cut: from now on they reach each
// other, but no one else, until Heal; other partitions stay as they are.
// Live connections across any cut are closed.
func (n *LoopbackNetwork) Partition(ids ...string) {
	n.mu.Lock()
	n.lastGroup++
	for _, id := range ids {
		n.group[id] = n.lastGroup
	}
	var cut []*loopConn
	for c := range n.conns {
		if n.group[c.local] != n.group[c.remote] {
			cut = append(cut, c)
		}
	}
	n.mu.Unlock()
	for _, c := range cut {
		_ = c.Close()
	}
}

// Heal removes every partition.
func (n *LoopbackNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = make(map[string]int)
}

// reachableLocked reports whether a and b are on the same side of every cut.
func (n *LoopbackNetwork) reachableLocked(a, b string) bool {
	return n.group[a] == n.group[b]
}

// LoopbackMember is one peer of a LoopbackNetwork; it implements Network.
type LoopbackMember struct {
	net *LoopbackNetwork
	id  string
}

var _ Network = (*LoopbackMember)(nil)

// LocalID returns the member's peer ID.
func (m *LoopbackMember) LocalID() string { return m.id }

// Listen opens a TCP listener on 127.0.0.1:0 for proto and registers it.
func (m *LoopbackMember) Listen(proto string) (net.Listener, error) {
	key := listenKey{m.id, proto}
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	if _, ok := m.net.listeners[key]; ok {
		return nil, fmt.Errorf("%w: %s for %s", ErrListening, m.id, proto)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("consensus: loopback: listen for %s: %w", m.id, err)
	}
	l := &loopListener{Listener: tl, net: m.net, key: key}
	m.net.listeners[key] = l
	return l, nil
}

// Dial connects to peerID's listener for proto, unless a partition
// separates them.
func (m *LoopbackMember) Dial(ctx context.Context, peerID, proto string) (net.Conn, error) {
	m.net.mu.Lock()
	l, ok := m.net.listeners[listenKey{peerID, proto}]
	reachable := m.net.reachableLocked(m.id, peerID)
	m.net.mu.Unlock()
	if !reachable {
		return nil, fmt.Errorf("%w: %s to %s", ErrUnreachable, m.id, peerID)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s for %s", ErrNoListener, peerID, proto)
	}
	var d net.Dialer
	tc, err := d.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("consensus: loopback: dial %s: %w", peerID, err)
	}
	if err := writeHello(tc, m.id); err != nil {
		_ = tc.Close()
		return nil, fmt.Errorf("consensus: loopback: dial %s: %w", peerID, err)
	}
	return m.net.track(tc, m.id, peerID)
}

// Close closes every listener of the member and every connection it is an
// end of, as if its host died.
func (m *LoopbackMember) Close() error {
	m.net.mu.Lock()
	var ls []*loopListener
	for k, l := range m.net.listeners {
		if k.id == m.id {
			ls = append(ls, l)
		}
	}
	var cs []*loopConn
	for c := range m.net.conns {
		if c.local == m.id || c.remote == m.id {
			cs = append(cs, c)
		}
	}
	m.net.mu.Unlock()
	for _, l := range ls {
		_ = l.Close()
	}
	for _, c := range cs {
		_ = c.Close()
	}
	return nil
}

// track registers a live connection, or closes it when a partition came
// between the reachability check and now.
func (n *LoopbackNetwork) track(c net.Conn, local, remote string) (net.Conn, error) {
	lc := &loopConn{Conn: c, net: n, local: local, remote: remote}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.reachableLocked(local, remote) {
		_ = c.Close()
		return nil, fmt.Errorf("%w: %s to %s", ErrUnreachable, local, remote)
	}
	n.conns[lc] = struct{}{}
	return lc, nil
}

// writeHello sends the dialler's peer ID: a 2-byte big-endian length, then
// the ID.
func writeHello(c net.Conn, id string) error {
	if len(id) > maxLoopbackIDLen {
		return fmt.Errorf("consensus: loopback: peer ID longer than %d bytes", maxLoopbackIDLen)
	}
	b := make([]byte, 2+len(id))
	binary.BigEndian.PutUint16(b, uint16(len(id)))
	copy(b[2:], id)
	_, err := c.Write(b)
	return err
}

func readHello(c net.Conn) (string, error) {
	if err := c.SetReadDeadline(time.Now().Add(loopbackHandshakeTimeout)); err != nil {
		return "", err
	}
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", err
	}
	size := binary.BigEndian.Uint16(hdr[:])
	if size > maxLoopbackIDLen {
		return "", fmt.Errorf("consensus: loopback: peer ID of %d bytes, at most %d", size, maxLoopbackIDLen)
	}
	id := make([]byte, size)
	if _, err := io.ReadFull(c, id); err != nil {
		return "", err
	}
	return string(id), c.SetReadDeadline(time.Time{})
}

// loopListener is a member's TCP listener for one protocol.
type loopListener struct {
	net.Listener
	net  *LoopbackNetwork
	key  listenKey
	once sync.Once
}

// Accept returns the next connection whose dialler is reachable; others are
// dropped. It reads each connection's header itself, so a dialler that sends
// none stalls Accept for up to loopbackHandshakeTimeout: fine for the
// members of a test, which always send it at once.
func (l *loopListener) Accept() (net.Conn, error) {
	for {
		tc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		remote, err := readHello(tc)
		if err != nil {
			_ = tc.Close()
			continue
		}
		c, err := l.net.track(tc, l.key.id, remote)
		if err != nil {
			continue
		}
		return c, nil
	}
}

// Close unregisters the listener and closes the socket.
func (l *loopListener) Close() error {
	var err error
	l.once.Do(func() {
		l.net.mu.Lock()
		if l.net.listeners[l.key] == l {
			delete(l.net.listeners, l.key)
		}
		l.net.mu.Unlock()
		err = l.Listener.Close()
	})
	return err
}

// loopConn is one end of a live connection between members.
type loopConn struct {
	net.Conn
	net           *LoopbackNetwork
	local, remote string
}

// RemoteAddr names the peer at the other end by its ID, as Network asks.
func (c *loopConn) RemoteAddr() net.Addr { return peerAddr(c.remote) }

func (c *loopConn) Close() error {
	c.net.mu.Lock()
	delete(c.net.conns, c)
	c.net.mu.Unlock()
	return c.Conn.Close()
}
