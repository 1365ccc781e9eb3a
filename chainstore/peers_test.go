package chainstore

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestPeerBookRoundTrip(t *testing.T) {
	s := newMemStore(t)
	got, err := s.Peers()
	if err != nil || len(got) != 0 || got == nil {
		t.Fatalf("Peers() on empty book = (%v, %v), want an empty map", got, err)
	}
	want := map[string][]string{
		"12D3KooWA": {"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"},
		"12D3KooWB": {"/ip4/127.0.0.1/tcp/4002"},
		"12D3KooWC": {},
	}
	for id, addrs := range want {
		if err := s.SavePeer(id, addrs); err != nil {
			t.Fatalf("SavePeer(%q): %v", id, err)
		}
	}
	// Replace, not merge.
	want["12D3KooWA"] = []string{"/ip4/127.0.0.1/tcp/4100"}
	if err := s.SavePeer("12D3KooWA", want["12D3KooWA"]); err != nil {
		t.Fatalf("SavePeer replace: %v", err)
	}
	if err := s.ForgetPeer("12D3KooWB"); err != nil {
		t.Fatalf("ForgetPeer: %v", err)
	}
	delete(want, "12D3KooWB")
	if err := s.ForgetPeer("12D3KooWUnknown"); err != nil {
		t.Fatalf("ForgetPeer(unknown) = %v, want nil", err)
	}
	got, err = s.Peers()
	if err != nil {
		t.Fatalf("Peers: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Peers() = %v, want %v", got, want)
	}
	if s.peerCount != len(want) {
		t.Fatalf("peerCount = %d, want %d", s.peerCount, len(want))
	}
}

func TestSavePeerInvalid(t *testing.T) {
	tooMany := make([]string, maxPeerAddrs+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4000+i)
	}
	tests := []struct {
		name  string
		id    string
		addrs []string
	}{
		{name: "empty peer ID", id: "", addrs: []string{"/ip4/127.0.0.1/tcp/1"}},
		{name: "oversized peer ID", id: strings.Repeat("x", maxPeerIDLen+1)},
		{name: "too many addresses", id: "p", addrs: tooMany},
		{name: "empty address", id: "p", addrs: []string{""}},
		{name: "oversized address", id: "p", addrs: []string{strings.Repeat("a", maxPeerAddrLen+1)}},
	}
	s := newMemStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.SavePeer(tt.id, tt.addrs); !errors.Is(err, ErrInvalidPeer) {
				t.Fatalf("SavePeer = %v, want ErrInvalidPeer", err)
			}
		})
	}
	if peers, _ := s.Peers(); len(peers) != 0 {
		t.Fatalf("invalid peers were stored: %v", peers)
	}
}

func TestPeerBookFull(t *testing.T) {
	s := newMemStore(t)
	for i := range maxPeers {
		if err := s.SavePeer(fmt.Sprintf("peer-%d", i), []string{"/ip4/127.0.0.1/tcp/1"}); err != nil {
			t.Fatalf("SavePeer %d: %v", i, err)
		}
	}
	if err := s.SavePeer("one-too-many", nil); !errors.Is(err, ErrPeerBookFull) {
		t.Fatalf("SavePeer beyond maxPeers = %v, want ErrPeerBookFull", err)
	}
	// Updating a known peer still works when full.
	if err := s.SavePeer("peer-0", []string{"/ip4/127.0.0.1/tcp/2"}); err != nil {
		t.Fatalf("SavePeer(known) when full: %v", err)
	}
	if err := s.ForgetPeer("peer-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePeer("one-too-many", nil); err != nil {
		t.Fatalf("SavePeer after ForgetPeer: %v", err)
	}
}

func TestDecodePeerAddrsCorrupt(t *testing.T) {
	good := encodePeerAddrs([]string{"/ip4/127.0.0.1/tcp/1"})
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "empty", in: nil},
		{name: "unknown version", in: []byte{2, 0}},
		{name: "missing count", in: []byte{peerAddrsV1}},
		{name: "count over bound", in: []byte{peerAddrsV1, maxPeerAddrs + 1}},
		{name: "truncated address", in: good[:len(good)-1]},
		{name: "zero-length address", in: []byte{peerAddrsV1, 1, 0}},
		{name: "trailing byte", in: append(good, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodePeerAddrs(tt.in); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodePeerAddrs = %v, want ErrCorrupt", err)
			}
		})
	}
}

func FuzzDecodePeerAddrs(f *testing.F) {
	f.Add(encodePeerAddrs([]string{"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/udp/1/quic-v1"}))
	f.Add(encodePeerAddrs(nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		addrs, err := decodePeerAddrs(in)
		if err != nil {
			return
		}
		again, err := decodePeerAddrs(encodePeerAddrs(addrs))
		if err != nil || !reflect.DeepEqual(again, addrs) {
			t.Fatalf("round trip of %q gave (%q, %v)", addrs, again, err)
		}
	})
}
