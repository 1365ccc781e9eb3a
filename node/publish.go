package node

import "errors"

// publishQueue bounds the submitted declarations waiting to be gossiped.
// Beyond it a declaration is not gossiped by Submit; the proposer still
// carries it to Raft, and every node gets it from there.
const publishQueue = 8192

// publishLoop gossips submitted declarations, in submission order, off the
// submitter's path: GossipSub's Publish waits for its event loop, and a
// burst of submits must not queue behind it (Raft, not gossip, is what
// makes a declaration agreed).
func (n *Node) publishLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case env := <-n.pubq:
			if err := n.host.Publish(n.ctx, env); err != nil && n.ctx.Err() == nil {
				n.log.Debug("publish", "err", err)
			}
		}
	}
}

// publish queues env for gossip; it never blocks.
func (n *Node) publish(env []byte) error {
	select {
	case n.pubq <- env:
		return nil
	default:
		return errPublishQueueFull
	}
}

var errPublishQueueFull = errors.New("node: gossip queue full; the declaration goes to Raft without gossip")
