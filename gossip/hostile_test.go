package gossip

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// connect links the rogue to another honest host as well and waits until
// each sees the other's subscription.
func (r *rogue) connect(t *testing.T, target *Host) {
	t.Helper()
	info, err := peer.AddrInfoFromString(target.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := r.h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rogue and the host to see each other's subscriptions", func() bool {
		return slices.Contains(r.topic.ListPeers(), info.ID) && slices.Contains(target.TopicPeers(), r.id)
	})
}

// hostileValidate is the honest hosts' validator: what a node's would say
// of such payloads, by prefix.
func hostileValidate(_ context.Context, _ string, data []byte) Verdict {
	switch {
	case bytes.HasPrefix(data, []byte("bad-signature")):
		return Reject
	case bytes.HasPrefix(data, []byte("agreed-long-ago")):
		return Replay
	case bytes.HasPrefix(data, []byte("unknown-issuer")):
		return Ignore
	}
	return Accept
}

// TestHostilePeerPruned: a raw libp2p + GossipSub peer (not our Host)
// floods honest hosts with invalid signatures, oversized messages, replays
// of long-agreed declarations, or more messages than its rate allows. Each
// honest host scores it below GraylistThreshold and prunes it from its
// mesh, while honest messages published meanwhile (and after) reach every
// honest host. The honest hosts are all linked: flood publishing reaches
// each directly, as it does between members (a message relayed while a
// mesh changes can be lost for good, which the pull sync repairs; that is
// not what this test is about).
func TestHostilePeerPruned(t *testing.T) {
	tests := []struct {
		name string
		lim  limits // zero: the defaults
		n    int
		msg  func(i int) []byte
		// charged reports whether h has charged the flood to the rogue.
		charged func(st Stats) bool
	}{
		{
			name:    "invalid signatures",
			n:       20,
			msg:     func(i int) []byte { return fmt.Appendf(nil, "bad-signature %d", i) },
			charged: func(st Stats) bool { return st.Rejected > 0 },
		},
		{
			name: "oversized messages",
			n:    10,
			msg: func(i int) []byte {
				return append(fmt.Appendf(nil, "%d", i), bytes.Repeat([]byte{'x'}, MaxMessageSize)...)
			},
			charged: func(st Stats) bool { return st.Oversize > 0 },
		},
		{
			name:    "replays of agreed declarations",
			n:       3 * ReplayAllowance,
			msg:     func(i int) []byte { return fmt.Appendf(nil, "agreed-long-ago %d", i) },
			charged: func(st Stats) bool { return st.Replays > 0 },
		},
		{
			// Each message is harmless (Ignore); the rate is what is hostile.
			// The bucket is shrunk so that the test need not send PeerBurst
			// messages.
			name: "flood over the rate limit",
			// A rate of 1/s keeps the drops far past the graylist even when
			// a slow (-race) run lets the flood trickle in; honest traffic
			// here stays within the bucket.
			lim:     limits{rate: 1, burst: 50, replayAllowance: ReplayAllowance},
			n:       400,
			msg:     func(i int) []byte { return fmt.Appendf(nil, "unknown-issuer %d", i) },
			charged: func(st Stats) bool { return st.RateLimited > 0 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hosts := make([]*Host, 3)
			recs := make([]*recorder, 3)
			for i := range hosts {
				recs[i] = newRecorder()
				hosts[i] = newHost(t, Config{Validate: hostileValidate, Deliver: recs[i].deliver, limits: tc.lim})
			}
			a, b, c := hosts[0], hosts[1], hosts[2]
			link(t, a, b)
			link(t, b, c)
			link(t, a, c)
			r := newRogue(t, a)
			r.connect(t, b)
			r.connect(t, c)
			t.Cleanup(func() { // runs before the hosts close
				if t.Failed() {
					for i, h := range hosts {
						s, _ := h.PeerScore(r.id)
						rep, drops := h.ledger.counts(peer.ID(r.h.ID()))
						t.Logf("host %d: rogue score %.1f (replays %.1f, drops %.1f), mesh %v, %+v", i, s, rep, drops, h.MeshPeers(), h.Stats())
					}
				}
			})
			eventually(t, "every honest host to graft the rogue", func() bool {
				for _, h := range hosts {
					if !slices.Contains(h.MeshPeers(), r.id) {
						return false
					}
				}
				return true
			})

			ctx := context.Background()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range tc.n {
					if err := r.topic.Publish(ctx, tc.msg(i)); err != nil {
						t.Errorf("rogue publish %d: %v", i, err)
						return
					}
				}
			}()
			// Honest traffic during the flood, from both ends of the line.
			for i := range 5 {
				if err := a.Publish(ctx, fmt.Appendf(nil, "honest from A %d", i)); err != nil {
					t.Fatal(err)
				}
				if err := c.Publish(ctx, fmt.Appendf(nil, "honest from C %d", i)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			wg.Wait()

			for i, h := range hosts {
				eventually(t, fmt.Sprintf("host %d to graylist the rogue and prune it from its mesh", i), func() bool {
					s, ok := h.PeerScore(r.id)
					return ok && s < GraylistThreshold && !slices.Contains(h.MeshPeers(), r.id) && tc.charged(h.Stats())
				})
			}
			// After the rogue is graylisted, honest messages still flow.
			if err := a.Publish(ctx, []byte("honest from A, after")); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, []byte("honest from C, after")); err != nil {
				t.Fatal(err)
			}
			for i, rec := range recs {
				eventually(t, fmt.Sprintf("host %d to deliver every honest message", i), func() bool {
					for j := range 5 {
						for _, from := range []string{"A", "C"} {
							if from == "A" && i == 0 || from == "C" && i == 2 {
								continue
							}
							if rec.times(fmt.Sprintf("honest from %s %d", from, j)) != 1 {
								return false
							}
						}
					}
					return (i == 0 || rec.times("honest from A, after") == 1) && (i == 2 || rec.times("honest from C, after") == 1)
				})
				for m := range rec.snapshot() {
					if !strings.HasPrefix(m, "honest") {
						t.Errorf("host %d delivered the rogue's %.40q", i, m)
					}
				}
			}
			for i, h := range hosts {
				for _, p := range []*Host{a, b, c} {
					if p == h {
						continue
					}
					if s, ok := h.PeerScore(p.PeerID()); ok && s < 0 {
						t.Errorf("host %d scores honest %s at %.1f", i, p.PeerID(), s)
					}
				}
			}
		})
	}
}

// TestFewReplaysNotPenalised: a peer that relays fewer replays than
// ReplayAllowance (as after a reconnect) keeps a zero app-specific score
// and its place in the mesh.
func TestFewReplaysNotPenalised(t *testing.T) {
	const n = ReplayAllowance / 2
	b := newHost(t, Config{Validate: hostileValidate})
	r := newRogue(t, b)
	ctx := context.Background()
	for i := range n {
		if err := r.topic.Publish(ctx, fmt.Appendf(nil, "agreed-long-ago %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "B to see every replay", func() bool { return b.Stats().Replays == n })
	rp := peer.ID(r.h.ID())
	if rep, _ := b.ledger.counts(rp); rep < n-1 {
		t.Fatalf("B charged %.1f replays, want about %d", rep, n)
	}
	if s := b.ledger.score(rp); s != 0 {
		t.Fatalf("app-specific score %v after %d replays, want 0 (allowance %d)", s, n, ReplayAllowance)
	}
	eventually(t, "the peer to be in B's mesh with a non-negative score", func() bool {
		s, ok := b.PeerScore(r.id)
		return ok && s >= 0 && slices.Contains(b.MeshPeers(), r.id)
	})
}

// TestLedger checks the ledger's arithmetic with a fixed clock.
func TestLedger(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lim := limits{rate: 10, burst: 5, replayAllowance: 3}
	tests := []struct {
		name string
		run  func(l *ledger, now *time.Time) float64 // returns the score
		want float64
	}{
		{name: "unknown peer", run: func(l *ledger, _ *time.Time) float64 { return l.score("p") }, want: 0},
		{name: "replays within allowance", run: func(l *ledger, _ *time.Time) float64 {
			for range 3 {
				l.replay("p")
			}
			return l.score("p")
		}, want: 0},
		{name: "two replays past allowance", run: func(l *ledger, _ *time.Time) float64 {
			for range 5 {
				l.replay("p")
			}
			return l.score("p")
		}, want: -4},
		{name: "replays halve each half-life", run: func(l *ledger, now *time.Time) float64 {
			for range 11 {
				l.replay("p")
			}
			*now = now.Add(misbehaviourHalfLife) // 11 -> 5.5: 2.5 past
			return l.score("p")
		}, want: -6.25},
		{name: "bucket drains then drops are charged", run: func(l *ledger, _ *time.Time) float64 {
			for i := range 8 {
				if got, want := l.take("p"), i < 5; got != want {
					return float64(100 + i)
				}
			}
			return l.score("p")
		}, want: -9},
		{name: "bucket refills at rate", run: func(l *ledger, now *time.Time) float64 {
			for range 5 {
				l.take("p")
			}
			*now = now.Add(200 * time.Millisecond) // 2 tokens
			ok := l.take("p") && l.take("p") && !l.take("p")
			if !ok {
				return 1
			}
			return l.score("p")
		}, want: -1},
		{name: "peers are charged apart", run: func(l *ledger, _ *time.Time) float64 {
			for range 10 {
				l.replay("p")
			}
			return l.score("q")
		}, want: 0},
		{name: "sweep forgets the recovered, keeps the guilty", run: func(l *ledger, now *time.Time) float64 {
			l.take("idle")
			for range 10 {
				l.replay("guilty")
			}
			*now = now.Add(time.Second)
			l.sweep()
			if _, ok := l.peers["idle"]; ok {
				return 1
			}
			if _, ok := l.peers["guilty"]; !ok {
				return 2
			}
			return 0
		}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			l := newLedger(lim, func() time.Time { return now })
			if got := tc.run(l, &now); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Accept: "accept", Reject: "reject", Ignore: "ignore", Replay: "replay", 9: "verdict(9)"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(v), got, want)
		}
	}
}

// TestMDNS: mDNS is off unless asked for, and turning it on works on a
// loopback-only host (no assertion about multicast delivery).
func TestMDNS(t *testing.T) {
	tests := []struct {
		name string
		on   bool
	}{
		{name: "off by default", on: false},
		{name: "on", on: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, Config{MDNS: tc.on})
			if h.MDNS() != tc.on {
				t.Fatalf("MDNS() = %v, want %v", h.MDNS(), tc.on)
			}
		})
	}
	if (Config{}).MDNS {
		t.Fatal("the zero Config turns mDNS on")
	}
}

func TestPing(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	link(t, a, b)
	rtt, err := a.Ping(context.Background(), b.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	if rtt <= 0 {
		t.Fatalf("rtt %v", rtt)
	}
	if _, err := a.Ping(context.Background(), "not a peer"); err == nil {
		t.Fatal("Ping of a malformed peer ID succeeded")
	}
}
