package gossip

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// Ping measures one round trip to peerID over libp2p's ping protocol
// (/ipfs/ping/1.0.0) on a new stream: the transport's floor under any
// gossip latency. The peer must be connected or dialable (see Dial).
func (g *Host) Ping(ctx context.Context, peerID string) (time.Duration, error) {
	if g.gate.isClosed() {
		return 0, ErrClosed
	}
	id, err := decodePeerID(peerID)
	if err != nil {
		return 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	res, ok := <-ping.Ping(ctx, g.h, id)
	if !ok {
		return 0, fmt.Errorf("gossip: ping %s: %w", peerID, ctx.Err())
	}
	if res.Error != nil {
		return 0, fmt.Errorf("gossip: ping %s: %w", peerID, res.Error)
	}
	return res.RTT, nil
}
