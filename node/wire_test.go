package node

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/fednode/fednode/authority"
)

// The gossip wire as ARCHITECTURE.md documents it, spelt out here rather
// than taken from package gossip, so that a change to the wire breaks this
// test. (This test imports libp2p, which node's code must not: it plays a
// foreign implementation.)
const (
	wireTopic   = "/fednode/declarations/1"
	wireMaxSize = 1 << 20
)

func wireMessageID(m *pb.Message) string {
	sum := sha256.Sum256(m.GetData())
	return string(sum[:])
}

// foreignPeer is another implementation of the fednode gossip wire: a plain
// libp2p host with GossipSub, configured only from the documentation.
type foreignPeer struct {
	id    peer.ID
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

func newForeignPeer(t *testing.T, to *Node) *foreignPeer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h,
		// Messages carry only topic and data: no author, sequence number,
		// key or signature (fednode drops messages that have them).
		pubsub.WithNoAuthor(),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(wireMessageID),
		pubsub.WithMaxMessageSize(wireMaxSize+4<<10),
		pubsub.WithFloodPublish(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(wireTopic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	info, err := peer.AddrInfoFromString(to.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the node and the foreign peer to see each other on the topic", func() bool {
		return containsPeer(topic.ListPeers(), info.ID) && containsString(to.host.TopicPeers(), h.ID().String())
	})
	return &foreignPeer{id: h.ID(), topic: topic, sub: sub}
}

func containsPeer(ps []peer.ID, p peer.ID) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func containsString(ss []string, s string) bool {
	for _, q := range ss {
		if q == s {
			return true
		}
	}
	return false
}

// TestForeignImplementationJoins is the "wire is an interface" acceptance:
// a peer that follows only the documented wire joins the declarations
// topic, receives a declaration published at a node, has its invalid
// declarations rejected (and scored), its replays of long-agreed ones
// charged, and its valid ones agreed.
func TestForeignImplementationJoins(t *testing.T) {
	n, h := startSingle(t, "aws-prod")
	f := newForeignPeer(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), waitAgreed)
	defer cancel()

	// Receive: a rule submitted at the node arrives as its envelope bytes.
	sd := nextRule(t, h, n, n.Authority(), "s3://receive/*")
	for {
		m, err := f.sub.Next(ctx)
		if err != nil {
			t.Fatalf("the foreign peer received no declaration: %v", err)
		}
		if authority.IDOf(m.GetData()) == sd.ID {
			break
		}
	}
	waitFor(t, waitAgreed, "the rule agreed", agreedAt(sd.ID, n))

	root := h.Root
	next := func(resources string) *authority.Signed {
		head, err := n.Head(ctx, n.Authority().String())
		if err != nil {
			t.Fatal(err)
		}
		return rule(t, n.Authority(), head.Head+1, head.HeadID, n.Authority(), resources, root)
	}

	tampered := next("s3://tampered/*")
	bad := append([]byte(nil), tampered.Raw...)
	bad[len(bad)-1] ^= 0xff // inside the signature
	tests := []struct {
		name  string
		data  []byte
		check func() bool
	}{
		{name: "bad signature rejected", data: bad, check: func() bool { return n.host.Stats().Rejected >= 1 }},
		{name: "garbage rejected", data: []byte("not a declaration"), check: func() bool { return n.host.Stats().Rejected >= 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.topic.Publish(ctx, tc.data); err != nil {
				t.Fatal(err)
			}
			waitFor(t, waitAgreed, tc.name, tc.check)
		})
	}
	badID := authority.IDOf(bad)
	if p := n.pool.at(tampered.Decl.Authority, tampered.Decl.Seq); n.Agreed(badID) || p != nil && p.ID == badID {
		t.Fatal("the tampered declaration reached the pool or the graph")
	}
	waitFor(t, waitAgreed, "the node's score of the foreign peer to go negative", func() bool {
		s, ok := n.host.PeerScore(f.id.String())
		return ok && s < 0
	})

	// A replay of a declaration agreed long ago (the genesis; the node's
	// memory of recent agreement is reset to stand for the passing time).
	n.recent.mu.Lock()
	clear(n.recent.cur)
	clear(n.recent.prev)
	n.recent.mu.Unlock()
	if err := f.topic.Publish(ctx, h.Genesis); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the replay charged", func() bool { return n.host.Stats().Replays == 1 })

	// Publish: a valid declaration from the foreign peer is agreed.
	good := next("s3://foreign/*")
	if err := f.topic.Publish(ctx, good.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the foreign peer's valid declaration agreed", agreedAt(good.ID, n))
}

// TestRecentlyAgreed: copies of a declaration count as late for a grace
// after it was agreed, then as replays.
func TestRecentlyAgreed(t *testing.T) {
	env := []byte("an envelope")
	id := authority.IDOf(env)
	tests := []struct {
		name  string
		after time.Duration
		want  bool
	}{
		{name: "just agreed", after: 0, want: true},
		{name: "within the grace", after: replayGrace - time.Second, want: true},
		{name: "one rotation later", after: replayGrace + time.Second, want: true},
		{name: "two rotations later", after: 2*replayGrace + time.Second, want: false},
		{name: "long ago", after: 24 * time.Hour, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			r := newRecentlyAgreed(func() time.Time { return now })
			r.add([]authority.ID{id})
			now = now.Add(tc.after)
			if got := r.has(id); got != tc.want {
				t.Fatalf("has after %v = %v, want %v", tc.after, got, tc.want)
			}
		})
	}
}

// TestAddRelayed: a declaration that came by gossip counts as forwarded to
// the current leader just now (its origin forwards it), and is forwarded
// again only after relayedForwardRetry; one submitted here is not.
func TestAddRelayed(t *testing.T) {
	h := initHome(t, "aws-prod")
	gen, err := authority.Parse(h.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	r := rule(t, h.Authority, 1, h.Authority, h.Authority, "s3://relayed/*", h.Root)
	tests := []struct {
		name      string
		sd        *authority.Signed
		relayed   bool
		wantRetry time.Duration
	}{
		{name: "submitted here", sd: gen, relayed: false, wantRetry: forwardRetry},
		{name: "relayed by gossip", sd: r, relayed: true, wantRetry: relayedForwardRetry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool()
			if tc.relayed {
				p.addRelayed(tc.sd, t0, "leader-peer")
			} else {
				p.add(tc.sd, t0)
			}
			d := p.m[tc.sd.ID]
			if d == nil {
				t.Fatal("not pending")
			}
			if d.retry() != tc.wantRetry || d.relayed != tc.relayed {
				t.Fatalf("retry %v relayed %v, want %v %v", d.retry(), d.relayed, tc.wantRetry, tc.relayed)
			}
			if tc.relayed && (d.forwardedTo != "leader-peer" || !d.forwarded.Equal(t0)) {
				t.Fatalf("forwarded to %q at %v, want the leader at %v", d.forwardedTo, d.forwarded, t0)
			}
			if !tc.relayed && !d.forwarded.IsZero() {
				t.Fatal("a submitted declaration counts as forwarded")
			}
		})
	}
}
