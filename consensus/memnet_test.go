package consensus

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// echo accepts on l and echoes every connection until l closes.
func echo(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func roundTrip(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	return err
}

func TestLoopbackNetworkPartition(t *testing.T) {
	ln := NewLoopbackNetwork()
	a, b, x := ln.Member("a"), ln.Member("b"), ln.Member("x")
	l, err := b.Listen("/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go echo(l)
	if _, err := b.Listen("/echo"); !errors.Is(err, ErrListening) {
		t.Fatalf("second Listen = %v, want ErrListening", err)
	}
	ctx := context.Background()

	tests := []struct {
		name    string
		from    *LoopbackMember
		to      string
		proto   string
		wantErr error
	}{
		{name: "reachable", from: a, to: "b", proto: "/echo"},
		{name: "unknown protocol", from: a, to: "b", proto: "/other", wantErr: ErrNoListener},
		{name: "unknown peer", from: a, to: "nobody", proto: "/echo", wantErr: ErrNoListener},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.from.Dial(ctx, tt.to, tt.proto)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Dial = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := roundTrip(c); err != nil {
				t.Fatal(err)
			}
		})
	}

	live, err := a.Dial(ctx, "b", "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := roundTrip(live); err != nil {
		t.Fatal(err)
	}

	ln.Partition("a", "x")
	if err := roundTrip(live); err == nil {
		t.Fatal("a connection across the cut still works")
	}
	if _, err := a.Dial(ctx, "b", "/echo"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Dial across the cut = %v, want ErrUnreachable", err)
	}
	if _, err := x.Dial(ctx, "a", "/none"); !errors.Is(err, ErrNoListener) {
		t.Fatalf("Dial within a side = %v, want ErrNoListener (reachable)", err)
	}

	ln.Heal()
	c, err := a.Dial(ctx, "b", "/echo")
	if err != nil {
		t.Fatalf("Dial after Heal: %v", err)
	}
	defer c.Close()
	if err := roundTrip(c); err != nil {
		t.Fatal(err)
	}

	// A member's Close is its host dying: listeners and connections go.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c); err == nil {
		t.Fatal("a connection to a closed member still works")
	}
	if _, err := a.Dial(ctx, "b", "/echo"); !errors.Is(err, ErrNoListener) {
		t.Fatalf("Dial to a closed member = %v, want ErrNoListener", err)
	}
}
