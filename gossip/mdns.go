package gossip

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// MDNSServiceName is the DNS-SD service a Host announces and browses for
// when Config.MDNS is on: libp2p's standard one, so that any libp2p
// implementation's mDNS finds us. Peers found that do not speak fednode's
// topics are connected to but exchange nothing.
const MDNSServiceName = mdns.ServiceName

// startMDNS starts mDNS discovery; found peers are dialled in the
// background (not blocked ones, not ourselves).
func (g *Host) startMDNS() error {
	svc := mdns.NewMdnsService(g.h, MDNSServiceName, mdnsNotifee{g})
	if err := svc.Start(); err != nil {
		return fmt.Errorf("gossip: start mDNS: %w", err)
	}
	g.mdns = svc
	g.log.Info("gossip: mDNS discovery on", "service", MDNSServiceName)
	return nil
}

// MDNS reports whether mDNS discovery runs on this host.
func (g *Host) MDNS() bool { return g.mdns != nil }

type mdnsNotifee struct{ g *Host }

// HandlePeerFound is called by the mDNS resolver for every announcement; it
// must not block, so the dial runs in its own goroutine.
func (n mdnsNotifee) HandlePeerFound(info peer.AddrInfo) {
	g := n.g
	if info.ID == g.h.ID() || g.block.has(info.ID) || g.h.Network().Connectedness(info.ID) == network.Connected {
		return
	}
	if !g.gate.enter() {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer g.gate.leave()
		// LAN addresses last only as long as the announcement is fresh.
		g.h.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.TempAddrTTL)
		ctx, cancel := context.WithTimeout(g.ctx, dialTimeout)
		defer cancel()
		if err := g.h.Connect(ctx, info); err != nil {
			g.log.Debug("gossip: mDNS peer unreachable", "peer", info.ID.String(), "err", err)
		}
	}()
}
