package chainstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// The stable store has raft.StableStore's method set, so consensus passes a
// *Store to raft directly. Byte and uint64 values share one namespace, as in
// raft-boltdb: raft uses distinct key names for the two.
//
// WARNING: a missing key is (nil, nil) or (0, nil), not an error. raft
// accepts only that or an error whose text is exactly "not found"; badger's
// ErrKeyNotFound ("Key not found") would make a fresh node fail to
// bootstrap. This is the one place where a missing key is not an error.

// Set stores val under key, replacing any previous value. val is copied
// (committed) before Set returns; the caller keeps ownership.
func (s *Store) Set(key []byte, val []byte) error {
	err := s.update(func(txn *badger.Txn) error {
		return txn.Set(stableKey(key), val)
	})
	if err != nil {
		return fmt.Errorf("chainstore: set stable key %q: %w", key, err)
	}
	return nil
}

// Get returns the value under key, or (nil, nil) if there is none. The
// returned slice is the caller's.
func (s *Store) Get(key []byte) ([]byte, error) {
	var val []byte
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(stableKey(key))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chainstore: get stable key %q: %w", key, err)
	}
	return val, nil
}

// SetUint64 stores val under key as 8 bytes big-endian.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 returns the value under key, or (0, nil) if there is none. A
// value that is not 8 bytes (one written by Set) is ErrCorrupt.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	b, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if b == nil {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("chainstore: stable key %q holds %d bytes, not a uint64: %w", key, len(b), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}
