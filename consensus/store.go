package consensus

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/fednode/fednode/chainstore"
)

// LogStore is the durable Raft log (implemented by *chainstore.Store).
//
// All methods may be called concurrently (Raft reads while it appends).
// Writes must be durable (fsynced) before they return. GetLog of an index not
// in the log must return chainstore.ErrLogNotFound (wrapped or not); other
// errors are I/O failures. GetLog fills out with slices the caller owns.
type LogStore interface {
	// FirstIndex and LastIndex return the bounds of the log, 0 when empty.
	FirstIndex() (uint64, error)
	LastIndex() (uint64, error)
	GetLog(index uint64, out *chainstore.LogRecord) error
	// StoreLogs appends or replaces recs, given in ascending index order.
	StoreLogs(recs []chainstore.LogRecord) error
	// DeleteRange deletes the entries from min to max, both included.
	DeleteRange(min, max uint64) error
}

// StableStore is Raft's durable key-value store for its term and vote
// (implemented by *chainstore.Store); it has raft.StableStore's method set
// and is handed to Raft as is.
//
// A missing key must yield (nil, nil) from Get and (0, nil) from GetUint64:
// Raft recognises "missing" only that way or by an error whose text is
// exactly "not found", and a fresh node fails to start otherwise. Writes must
// be durable before they return.
type StableStore interface {
	Set(key, val []byte) error
	Get(key []byte) ([]byte, error)
	SetUint64(key []byte, val uint64) error
	GetUint64(key []byte) (uint64, error)
}

// logCacheSize is how many recent entries are kept in memory in front of the
// LogStore: replication to followers reads what was just appended, and each
// read from badger costs a transaction.
const logCacheSize = 512

// raftLog adapts a LogStore to raft.LogStore.
type raftLog struct{ s LogStore }

var _ raft.LogStore = raftLog{}

func (l raftLog) FirstIndex() (uint64, error) {
	i, err := l.s.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("consensus: log first index: %w", err)
	}
	return i, nil
}

func (l raftLog) LastIndex() (uint64, error) {
	i, err := l.s.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("consensus: log last index: %w", err)
	}
	return i, nil
}

func (l raftLog) GetLog(index uint64, out *raft.Log) error {
	var rec chainstore.LogRecord
	err := l.s.GetLog(index, &rec)
	if errors.Is(err, chainstore.ErrLogNotFound) {
		// Unwrapped, against the house rule: raft compares with ==, and a
		// wrapped error stops a leader from falling back to InstallSnapshot.
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("consensus: get log %d: %w", index, err)
	}
	*out = raft.Log{
		Index:      rec.Index,
		Term:       rec.Term,
		Type:       raft.LogType(rec.Type),
		Data:       rec.Data,
		Extensions: rec.Extensions,
		AppendedAt: rec.AppendedAt,
	}
	return nil
}

func (l raftLog) StoreLog(log *raft.Log) error {
	return l.StoreLogs([]*raft.Log{log})
}

func (l raftLog) StoreLogs(logs []*raft.Log) error {
	recs := make([]chainstore.LogRecord, len(logs))
	for i, lg := range logs {
		recs[i] = chainstore.LogRecord{
			Index:      lg.Index,
			Term:       lg.Term,
			Type:       uint8(lg.Type),
			Data:       lg.Data,
			Extensions: lg.Extensions,
			AppendedAt: lg.AppendedAt,
		}
	}
	if err := l.s.StoreLogs(recs); err != nil {
		return fmt.Errorf("consensus: store %d logs: %w", len(recs), err)
	}
	return nil
}

func (l raftLog) DeleteRange(min, max uint64) error {
	if err := l.s.DeleteRange(min, max); err != nil {
		return fmt.Errorf("consensus: delete logs %d-%d: %w", min, max, err)
	}
	return nil
}

// stableAfterShutdown guards the stable store handed to raft. After
// Shutdown returns, raft's transport goroutines may still be handling a
// heartbeat that arrived just before, and raft panics if it cannot save the
// term it carries; the caller may already have closed the store. Writes
// after Shutdown are therefore dropped: the result is the same as the
// process having stopped a moment earlier, which Raft tolerates by design.
type stableAfterShutdown struct {
	StableStore
	down atomic.Bool
}

func (s *stableAfterShutdown) Set(key, val []byte) error {
	if s.down.Load() {
		return nil
	}
	return s.afterShutdown(s.StableStore.Set(key, val))
}

func (s *stableAfterShutdown) SetUint64(key []byte, val uint64) error {
	if s.down.Load() {
		return nil
	}
	return s.afterShutdown(s.StableStore.SetUint64(key, val))
}

// afterShutdown drops the error of a write that raced with Shutdown (the
// store closed under it).
func (s *stableAfterShutdown) afterShutdown(err error) error {
	if err != nil && s.down.Load() {
		return nil
	}
	return err
}
