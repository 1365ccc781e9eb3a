package gossip

import (
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrBlocked: Connect or Dial was asked for a peer that Block cut off.
var ErrBlocked = errors.New("gossip: peer is blocked")

// Block cuts this host off from the given peers, in both directions, until
// Unblock: their connections are closed now, and new ones, dialled by us or
// by them, are refused (a libp2p connection gater checks every one). While
// a peer is blocked, Connect and Dial to it fail at once with ErrBlocked,
// GossipSub neither sends to nor hears from it, and open streams to it (Raft
// among them) break. It is fault injection for tests and the testnet, not a
// security control: a blocked peer's messages still reach us relayed by
// others, as gossip should.
//
// Blocking is idempotent. All IDs are checked before any is blocked: a
// malformed one (ErrBadPeerID) or our own blocks nothing. After Close it
// returns ErrClosed.
func (g *Host) Block(peerIDs ...string) error {
	ids, err := g.blockArgs("block", peerIDs)
	if err != nil {
		return err
	}
	g.block.add(ids)
	for _, id := range ids {
		// The gater refuses new connections from now on; close the ones
		// already open. One that was being upgraded as we added the peer is
		// closed by blockNotifee when it lands.
		if err := g.h.Network().ClosePeer(id); err != nil {
			g.log.Debug("gossip: close blocked peer", "peer", id.String(), "err", err)
		}
	}
	g.log.Info("gossip: blocked peers", "peers", peerIDs)
	return nil
}

// Unblock lifts Block for the given peers (unknown or not blocked ones are
// ignored). It does not reconnect: call Connect, which skips libp2p's dial
// backoff, rather than wait for a reconnect that backoff may delay for
// minutes. The same argument checks as Block apply.
func (g *Host) Unblock(peerIDs ...string) error {
	ids, err := g.blockArgs("unblock", peerIDs)
	if err != nil {
		return err
	}
	g.block.remove(ids)
	g.log.Info("gossip: unblocked peers", "peers", peerIDs)
	return nil
}

// Blocked returns the peers currently blocked, sorted.
func (g *Host) Blocked() []string {
	return peerStrings(g.block.list())
}

func (g *Host) blockArgs(verb string, peerIDs []string) ([]peer.ID, error) {
	if g.gate.isClosed() {
		return nil, ErrClosed
	}
	ids := make([]peer.ID, 0, len(peerIDs))
	for _, s := range peerIDs {
		id, err := decodePeerID(s)
		if err != nil {
			return nil, err
		}
		if id == g.h.ID() {
			return nil, fmt.Errorf("%w: %s: %s is our own peer ID", ErrBadPeerID, verb, s)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// errIfBlocked is ErrBlocked for a blocked peer, naming what was attempted.
func (g *Host) errIfBlocked(id peer.ID, what string) error {
	if g.block.has(id) {
		return fmt.Errorf("%w: %s %s: Unblock it first", ErrBlocked, what, id)
	}
	return nil
}

// blocklist is the set of blocked peers and the libp2p connection gater
// that enforces it. The swarm and transports call the Intercept methods
// from their own goroutines, concurrently with add and remove.
type blocklist struct {
	mu sync.RWMutex
	m  map[peer.ID]struct{}
}

func newBlocklist() *blocklist { return &blocklist{m: make(map[peer.ID]struct{})} }

func (b *blocklist) has(p peer.ID) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.m[p]
	return ok
}

func (b *blocklist) add(ids []peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		b.m[id] = struct{}{}
	}
}

func (b *blocklist) remove(ids []peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		delete(b.m, id)
	}
}

func (b *blocklist) list() []peer.ID {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]peer.ID, 0, len(b.m))
	for id := range b.m {
		out = append(out, id)
	}
	return out
}

// InterceptPeerDial refuses to dial a blocked peer before any socket opens
// (the swarm adds no dial backoff for it).
func (b *blocklist) InterceptPeerDial(p peer.ID) bool { return !b.has(p) }

// InterceptAddrDial is as InterceptPeerDial, per address.
func (b *blocklist) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !b.has(p) }

// InterceptAccept admits every inbound socket: its peer is not known until
// the security handshake, where InterceptSecured decides.
func (b *blocklist) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses a blocked peer's connection, inbound or
// outbound, once the handshake has authenticated it.
func (b *blocklist) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !b.has(p)
}

// InterceptUpgraded checks again just before the swarm takes the connection,
// narrowing the window for a Block that lands mid-handshake.
func (b *blocklist) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return !b.has(c.RemotePeer()), 0
}

// blockNotifee closes a connection to a blocked peer that got past the
// gater because Block ran while it was being set up, after the gater's
// checks and before ClosePeer could see it.
func blockNotifee(b *blocklist) network.Notifiee {
	return &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if b.has(c.RemotePeer()) {
				// Not inline: the swarm calls notifiees with its locks held.
				go c.Close()
			}
		},
	}
}
