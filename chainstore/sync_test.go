package chainstore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fednode/fednode/authority"
)

// rootCheck accepts a page whose root is want.
func rootCheck(want []byte) SyncCheck {
	return func(_ []*authority.Signed, _ uint64, root []byte) error {
		if !bytes.Equal(root, want) {
			return errors.New("root mismatch")
		}
		return nil
	}
}

// TestApplySynced: pages fetched from a peer land at the versions the peer
// holds them, with the same log root; a page refused by the check, out of
// order, or with a declaration the graph refuses stores nothing; a Raft
// entry later clears the synced graph and Raft alone rebuilds it.
func TestApplySynced(t *testing.T) {
	sc := newScenario(t)
	peer := newMemStore(t)
	mustApply(t, peer, 1, sc.batch())
	_, peerRoot, err := peer.LogRoot()
	if err != nil {
		t.Fatal(err)
	}
	all := sc.batch()
	tests := []struct {
		name    string
		from    uint64
		page    [][]byte
		check   SyncCheck
		wantErr error
	}{
		{"refused by the check", 0, all, func([]*authority.Signed, uint64, []byte) error { return errCheck }, errCheck},
		{"out of order", 1, all[1:], rootCheck(peerRoot), ErrSyncOrder},
		{"a declaration the graph refuses", 0, [][]byte{all[0], all[2]}, func([]*authority.Signed, uint64, []byte) error { return nil }, ErrSyncRefused},
		{"garbage", 0, [][]byte{[]byte("not an envelope")}, rootCheck(peerRoot), ErrSyncRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemStore(t)
			if err := s.ApplySynced(tc.from, tc.page, tc.check); !errors.Is(err, tc.wantErr) {
				t.Fatalf("ApplySynced: %v, want %v", err, tc.wantErr)
			}
			if v := s.Version(); v != 0 || s.Synced() {
				t.Fatalf("a refused page left version %d (synced %v)", v, s.Synced())
			}
			if _, err := s.Declaration(sc.genA.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a refused page left a declaration on disk: %v", err)
			}
		})
	}

	t.Run("two pages then Raft", func(t *testing.T) {
		dir := t.TempDir()
		s := openDisk(t, dir)
		root2, err := peer.LogRootAt(2)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ApplySynced(0, all[:2], rootCheck(root2)); err != nil {
			t.Fatal(err)
		}
		if err := s.ApplySynced(2, all[2:], rootCheck(peerRoot)); err != nil {
			t.Fatal(err)
		}
		_, root, _ := s.LogRoot()
		if s.Version() != 4 || !bytes.Equal(root, peerRoot) || !s.Synced() {
			t.Fatalf("after sync: version %d root %x synced %v, want 4 %x true", s.Version(), root, s.Synced(), peerRoot)
		}
		// The marker survives a restart.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openDisk(t, dir)
		defer s.Close()
		if !s.Synced() || s.Version() != 4 {
			t.Fatalf("reopened: version %d synced %v", s.Version(), s.Synced())
		}
		// Raft starts feeding the store: its first entry clears the synced
		// graph, and Raft's entries rebuild it.
		for i, err := range s.ApplyDeclarations(1, all[:1]) {
			if err != nil {
				t.Fatalf("raft entry, declaration %d: %v", i, err)
			}
		}
		if s.Synced() || s.Version() != 1 {
			t.Fatalf("after the first Raft entry: version %d synced %v, want 1 false", s.Version(), s.Synced())
		}
		if _, err := s.Declaration(sc.rule.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the synced rule is still on disk after Raft took over: %v", err)
		}
		mustApply(t, s, 2, all[1:])
		_, root, _ = s.LogRoot()
		if !bytes.Equal(root, peerRoot) {
			t.Fatalf("Raft rebuilt root %x, want %x", root, peerRoot)
		}
		if err := s.ApplySynced(4, all, rootCheck(peerRoot)); !errors.Is(err, ErrRaftFed) {
			t.Fatalf("ApplySynced on a Raft-fed store: %v, want ErrRaftFed", err)
		}
	})
}

var errCheck = errors.New("check refused")
