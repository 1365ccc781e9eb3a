package chainstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Peer IDs and addresses arrive from the network, so the book bounds them.
// The limits are far above what libp2p produces (a peer ID string is about
// 52 bytes, a multiaddr well under 200) and far below what could hurt.
const (
	maxPeers       = 1024 // peers in the book
	maxPeerIDLen   = 256  // bytes of one peer ID
	maxPeerAddrs   = 32   // addresses of one peer
	maxPeerAddrLen = 1024 // bytes of one address
)

var (
	// ErrInvalidPeer is returned by SavePeer for an empty or oversized peer
	// ID or address list.
	ErrInvalidPeer = errors.New("chainstore: invalid peer")
	// ErrPeerBookFull is returned by SavePeer for a new peer when the book
	// already holds maxPeers: forget one first.
	ErrPeerBookFull = errors.New("chainstore: peer book full")
)

// SavePeer records addrs as the addresses of peerID, replacing any it had.
// An empty addrs is stored as an empty list (the peer stays in the book).
// The strings are opaque here: the caller parses them as multiaddrs.
func (s *Store) SavePeer(peerID string, addrs []string) error {
	if err := checkPeer(peerID, addrs); err != nil {
		return err
	}
	val := encodePeerAddrs(addrs)

	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	added := false
	err := s.update(func(txn *badger.Txn) error {
		k := peerKey(peerID)
		_, err := txn.Get(k)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			if s.peerCount >= maxPeers {
				return ErrPeerBookFull
			}
			added = true
		case err != nil:
			return err
		}
		return txn.Set(k, val)
	})
	if errors.Is(err, ErrPeerBookFull) {
		return fmt.Errorf("%w: %d peers already, cannot add %q: forget one first", ErrPeerBookFull, maxPeers, peerID)
	}
	if err != nil {
		return fmt.Errorf("chainstore: save peer %q: %w", peerID, err)
	}
	if added {
		s.peerCount++
	}
	return nil
}

// Peers returns every peer in the book with its addresses. The map and its
// slices are the caller's.
func (s *Store) Peers() (map[string][]string, error) {
	peers := make(map[string][]string)
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte{prefixPeer}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id := string(item.Key()[1:])
			val, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			addrs, err := decodePeerAddrs(val)
			if err != nil {
				return fmt.Errorf("peer %q: %w", id, err)
			}
			peers[id] = addrs
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chainstore: read peer book: %w", err)
	}
	return peers, nil
}

// ForgetPeer removes peerID from the book. Forgetting an unknown peer is
// not an error.
func (s *Store) ForgetPeer(peerID string) error {
	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	existed := false
	err := s.update(func(txn *badger.Txn) error {
		k := peerKey(peerID)
		_, err := txn.Get(k)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			return nil
		case err != nil:
			return err
		}
		existed = true
		return txn.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("chainstore: forget peer %q: %w", peerID, err)
	}
	if existed {
		s.peerCount--
	}
	return nil
}

// loadPeerCount counts the book at Open.
func (s *Store) loadPeerCount() error {
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixPeer}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("chainstore: count peer book: %w", err)
	}
	s.peerCount = n
	return nil
}

func checkPeer(peerID string, addrs []string) error {
	if peerID == "" || len(peerID) > maxPeerIDLen {
		return fmt.Errorf("%w: peer ID of %d bytes, want 1 to %d", ErrInvalidPeer, len(peerID), maxPeerIDLen)
	}
	if len(addrs) > maxPeerAddrs {
		return fmt.Errorf("%w: peer %q has %d addresses, at most %d are kept", ErrInvalidPeer, peerID, len(addrs), maxPeerAddrs)
	}
	for _, a := range addrs {
		if a == "" || len(a) > maxPeerAddrLen {
			return fmt.Errorf("%w: peer %q has an address of %d bytes, want 1 to %d", ErrInvalidPeer, peerID, len(a), maxPeerAddrLen)
		}
	}
	return nil
}

// Peer addresses encoding, version 1: version byte, uvarint count, then
// per address a uvarint length and its bytes.
const peerAddrsV1 byte = 1

func encodePeerAddrs(addrs []string) []byte {
	b := []byte{peerAddrsV1}
	b = binary.AppendUvarint(b, uint64(len(addrs)))
	for _, a := range addrs {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	return b
}

// decodePeerAddrs decodes encodePeerAddrs's output, holding it to the same
// bounds SavePeer enforces. It never returns nil for a valid value.
func decodePeerAddrs(b []byte) ([]string, error) {
	if len(b) < 1 || b[0] != peerAddrsV1 {
		return nil, fmt.Errorf("peer addresses: unknown version: %w", ErrCorrupt)
	}
	b = b[1:]
	n, w := binary.Uvarint(b)
	if w <= 0 || n > maxPeerAddrs {
		return nil, fmt.Errorf("peer addresses: bad count: %w", ErrCorrupt)
	}
	b = b[w:]
	addrs := make([]string, 0, n)
	for range n {
		l, w := binary.Uvarint(b)
		if w <= 0 || l == 0 || l > maxPeerAddrLen || l > uint64(len(b)-w) {
			return nil, fmt.Errorf("peer addresses: bad address length: %w", ErrCorrupt)
		}
		b = b[w:]
		addrs = append(addrs, string(b[:l]))
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("peer addresses: %d trailing bytes: %w", len(b), ErrCorrupt)
	}
	return addrs, nil
}
