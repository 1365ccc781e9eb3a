package chainstore

import (
	"bytes"
	"errors"
	"testing"
)

func TestStableMissing(t *testing.T) {
	s := newMemStore(t)
	val, err := s.Get([]byte("CurrentTerm"))
	if val != nil || err != nil {
		t.Fatalf("Get(missing) = (%q, %v), want (nil, nil)", val, err)
	}
	n, err := s.GetUint64([]byte("LastVoteTerm"))
	if n != 0 || err != nil {
		t.Fatalf("GetUint64(missing) = (%d, %v), want (0, nil)", n, err)
	}
}

func TestStableRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		val  []byte
	}{
		{name: "raft vote candidate", key: []byte("LastVoteCand"), val: []byte("12D3KooWPeer")},
		{name: "binary value", key: []byte("k"), val: []byte{0, 1, 2, 0xFF}},
		{name: "binary key", key: []byte{0, 0xFF}, val: []byte("v")},
		{name: "empty key", key: []byte{}, val: []byte("v")},
	}
	s := newMemStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Set(tt.key, tt.val); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, err := s.Get(tt.key)
			if err != nil || !bytes.Equal(got, tt.val) {
				t.Fatalf("Get = (%q, %v), want %q", got, err, tt.val)
			}
		})
	}
}

func TestStableOverwriteAndEmpty(t *testing.T) {
	s := newMemStore(t)
	key := []byte("k")
	for _, v := range [][]byte{[]byte("first"), []byte("second"), {}} {
		if err := s.Set(key, v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
		got, err := s.Get(key)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get after Set(%q) = (%q, %v)", v, got, err)
		}
	}
}

func TestStableUint64RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		val  uint64
	}{
		{name: "zero", val: 0},
		{name: "one", val: 1},
		{name: "term", val: 42},
		{name: "max", val: ^uint64(0)},
	}
	s := newMemStore(t)
	key := []byte("CurrentTerm")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.SetUint64(key, tt.val); err != nil {
				t.Fatalf("SetUint64: %v", err)
			}
			got, err := s.GetUint64(key)
			if err != nil || got != tt.val {
				t.Fatalf("GetUint64 = (%d, %v), want %d", got, err, tt.val)
			}
		})
	}
}

func TestStableUint64Corrupt(t *testing.T) {
	s := newMemStore(t)
	if err := s.Set([]byte("k"), []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("k")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUint64(3-byte value) = %v, want ErrCorrupt", err)
	}
}

// TestStableSeparateFromLog checks that stable keys and log keys cannot
// collide, even for a stable key that looks like a log key.
func TestStableSeparateFromLog(t *testing.T) {
	s := newMemStore(t)
	if err := s.Set(logKey(1), []byte("not a log")); err != nil {
		t.Fatal(err)
	}
	wantBounds(t, s, 0, 0)
	var out LogRecord
	if err := s.GetLog(1, &out); err != ErrLogNotFound {
		t.Fatalf("GetLog(1) = %v, want ErrLogNotFound", err)
	}
}
