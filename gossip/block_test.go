package gossip

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// echoServer accepts streams of proto on h and echoes each until it closes.
func echoServer(t *testing.T, h *Host, proto string) {
	t.Helper()
	l, err := h.Listen(proto)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

// echo sends msg on c and reads it back.
func echo(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo mismatch: " + string(got))
	}
	return nil
}

// TestBlock cuts one host of three off from the two others and heals it:
// while blocked it gets no gossip and no stream, and its open stream breaks;
// after Unblock and Connect the three talk again.
func TestBlock(t *testing.T) {
	const proto = "/fednode/test/echo/1"
	recs := []*recorder{newRecorder(), newRecorder(), newRecorder()}
	a := newHost(t, Config{Deliver: recs[0].deliver})
	b := newHost(t, Config{Deliver: recs[1].deliver})
	c := newHost(t, Config{Deliver: recs[2].deliver})
	ra, rb, rc := recs[0], recs[1], recs[2]
	link(t, a, b)
	link(t, a, c)
	link(t, b, c)
	echoServer(t, a, proto)
	echoServer(t, c, proto)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()

	open, err := a.Dial(ctx, c.PeerID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := echo(open, "before"); err != nil {
		t.Fatalf("echo before the block: %v", err)
	}

	// a and b cut c off; c itself blocks nobody.
	for _, h := range []*Host{a, b} {
		if err := h.Block(c.PeerID()); err != nil {
			t.Fatal(err)
		}
		if err := h.Block(c.PeerID()); err != nil {
			t.Fatalf("second Block: %v", err)
		}
		if got := h.Blocked(); !slices.Equal(got, []string{c.PeerID()}) {
			t.Fatalf("Blocked() = %v, want [%s]", got, c.PeerID())
		}
	}
	eventually(t, "c to be disconnected from a and b", func() bool {
		return len(c.ConnectedPeers()) == 0 &&
			!slices.Contains(a.ConnectedPeers(), c.PeerID()) && !slices.Contains(b.ConnectedPeers(), c.PeerID())
	})
	if !slices.Contains(a.ConnectedPeers(), b.PeerID()) {
		t.Fatalf("a lost b too: connected to %v", a.ConnectedPeers())
	}

	// The open stream broke with the connection.
	if err := echo(open, "during"); err == nil {
		t.Fatal("the stream to a blocked peer still works")
	}

	// New streams and connections fail at once, naming the block, on the
	// blocking side. The blocked side is refused by the other's gater after
	// the handshake: over TCP its Connect may even return before the refusal
	// arrives (the muxer is negotiated inside the handshake), but no stream
	// gets through and the connection does not stay.
	if _, err := a.Dial(ctx, c.PeerID(), proto); !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), c.PeerID()) {
		t.Fatalf("a.Dial(c) = %v, want ErrBlocked naming c", err)
	}
	if _, err := a.Connect(ctx, c.Addrs()[0]); !errors.Is(err, ErrBlocked) {
		t.Fatalf("a.Connect(c) = %v, want ErrBlocked", err)
	}
	for _, addr := range a.Addrs() {
		_, _ = c.Connect(ctx, addr)
		if conn, err := c.Dial(ctx, a.PeerID(), proto); err == nil {
			err = echo(conn, "through")
			conn.Close()
			if err == nil {
				t.Fatalf("c reached a through a's block (connected via %s)", addr)
			}
		}
	}
	eventually(t, "c's refused connections to go", func() bool { return len(c.ConnectedPeers()) == 0 })

	// Gossip: a's message reaches b only; c's reaches nobody. With no
	// connection to c (checked above and below), c cannot hear a's.
	if err := a.Publish(ctx, []byte("while-blocked")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, []byte("from-c")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to get a's message", func() bool { return rb.times("while-blocked") == 1 })
	if n := rc.times("while-blocked"); n != 0 || len(c.ConnectedPeers()) != 0 {
		t.Fatalf("c got a's message %d times (connected to %v)", n, c.ConnectedPeers())
	}
	if ra.times("from-c")+rb.times("from-c") != 0 {
		t.Fatal("c's message reached a or b through the block")
	}

	// Heal: unblock, connect (skipping any dial backoff), talk again.
	for _, h := range []*Host{a, b} {
		if err := h.Unblock(c.PeerID()); err != nil {
			t.Fatal(err)
		}
		if got := h.Blocked(); len(got) != 0 {
			t.Fatalf("Blocked() after Unblock = %v", got)
		}
		if _, err := h.Connect(ctx, c.Addrs()[0]); err != nil {
			t.Fatalf("Connect after Unblock: %v", err)
		}
	}
	eventually(t, "c to be subscribed at a and b again", func() bool {
		return slices.Contains(a.TopicPeers(), c.PeerID()) && slices.Contains(b.TopicPeers(), c.PeerID()) &&
			slices.Contains(c.TopicPeers(), a.PeerID())
	})
	if err := a.Publish(ctx, []byte("healed")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c to get a's message after healing", func() bool { return rc.times("healed") == 1 })
	again, err := a.Dial(ctx, c.PeerID(), proto)
	if err != nil {
		t.Fatalf("Dial after healing: %v", err)
	}
	defer again.Close()
	if err := echo(again, "after"); err != nil {
		t.Fatalf("echo after healing: %v", err)
	}
	back, err := c.Dial(ctx, a.PeerID(), proto)
	if err != nil {
		t.Fatalf("c.Dial(a) after healing: %v", err)
	}
	defer back.Close()
	if err := echo(back, "back"); err != nil {
		t.Fatalf("echo c to a after healing: %v", err)
	}
}

// TestBlockOneSide: only a blocks c. The connection between them is refused
// both ways (a's gater sees c's dials too), but gossip still carries c's
// messages to a through b: blocking cuts links, not the mesh's relaying.
func TestBlockOneSide(t *testing.T) {
	ra := newRecorder()
	a := newHost(t, Config{Deliver: ra.deliver})
	b := newHost(t, Config{})
	c := newHost(t, Config{})
	link(t, a, b)
	link(t, b, c)
	link(t, a, c)
	if err := a.Block(c.PeerID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a and c to disconnect", func() bool {
		return !slices.Contains(a.ConnectedPeers(), c.PeerID()) && !slices.Contains(c.ConnectedPeers(), a.PeerID())
	})
	// b relays only to its mesh peers: wait for a to be in it.
	eventually(t, "a to be in b's mesh", func() bool { return slices.Contains(b.MeshPeers(), a.PeerID()) })
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := c.Publish(ctx, []byte("via-b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to get c's message relayed by b", func() bool { return ra.times("via-b") == 1 })
	if from := ra.sender("via-b"); from != b.PeerID() {
		t.Fatalf("a got c's message from %s, want b (%s)", from, b.PeerID())
	}
	if slices.Contains(a.ConnectedPeers(), c.PeerID()) {
		t.Fatal("a reconnected to c")
	}
}

func TestBlockArgs(t *testing.T) {
	h := newHost(t, Config{})
	other, err := PeerIDOf(mustIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ids     []string
		wantErr error
	}{
		{name: "malformed", ids: []string{other, "not-a-peer"}, wantErr: ErrBadPeerID},
		{name: "own ID", ids: []string{other, h.PeerID()}, wantErr: ErrBadPeerID},
		{name: "none", ids: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for verb, f := range map[string]func(...string) error{"Block": h.Block, "Unblock": h.Unblock} {
				err := f(tt.ids...)
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("%s(%v) = %v, want %v", verb, tt.ids, err, tt.wantErr)
				}
				if err != nil && !strings.HasPrefix(err.Error(), "gossip: ") {
					t.Errorf("%s error %q lacks the package prefix", verb, err)
				}
			}
			if got := h.Blocked(); len(got) != 0 {
				t.Errorf("Blocked() = %v: a refused call blocked something", got)
			}
		})
	}
	t.Run("unknown peers are fine", func(t *testing.T) {
		if err := h.Block(other); err != nil {
			t.Fatal(err)
		}
		if got := h.Blocked(); !slices.Equal(got, []string{other}) {
			t.Fatalf("Blocked() = %v", got)
		}
		if err := h.Unblock(other, other); err != nil {
			t.Fatal(err)
		}
		if got := h.Blocked(); len(got) != 0 {
			t.Fatalf("Blocked() = %v", got)
		}
	})
	t.Run("after close", func(t *testing.T) {
		g := newHost(t, Config{})
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if err := g.Block(other); !errors.Is(err, ErrClosed) {
			t.Fatalf("Block after Close = %v, want ErrClosed", err)
		}
	})
}
