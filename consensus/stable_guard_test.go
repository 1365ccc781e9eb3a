package consensus

import (
	"errors"
	"testing"
)

// closedStable fails every write, like a chainstore after Close.
type closedStable struct{ StableStore }

func (closedStable) Set([]byte, []byte) error       { return errors.New("store closed") }
func (closedStable) SetUint64([]byte, uint64) error { return errors.New("store closed") }

// TestStableWritesAfterShutdownAreDropped: raft panics when it cannot save a
// term, and its transport may still handle a heartbeat after Shutdown, when
// the caller may have closed the store: such late writes must not fail.
func TestStableWritesAfterShutdownAreDropped(t *testing.T) {
	s := &stableAfterShutdown{StableStore: closedStable{}}
	if err := s.SetUint64([]byte("CurrentTerm"), 2); err == nil {
		t.Fatal("a failed write before shutdown was hidden")
	}
	s.down.Store(true)
	if err := s.SetUint64([]byte("CurrentTerm"), 2); err != nil {
		t.Fatalf("a write after shutdown failed: %v", err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatalf("a write after shutdown failed: %v", err)
	}
}
