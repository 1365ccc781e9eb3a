package chainstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrLogNotFound is returned, unwrapped, by GetLog for an index not in the
// log.
//
// WARNING: it is deliberately not wrapped, against the house rule: raft
// compares raft.ErrLogNotFound with ==, and the consensus adapter maps this
// one to that one with ==. Wrapped, a leader never falls back to
// InstallSnapshot and a lagging follower never catches up.
var ErrLogNotFound = errors.New("chainstore: log not found")

// ErrRecordTooLarge is returned by StoreLogs for a record whose encoding
// exceeds MaxLogRecordSize. Nothing of the batch is written.
var ErrRecordTooLarge = errors.New("chainstore: log record too large")

// MaxLogRecordSize bounds the encoded size of one log record: Data plus
// Extensions plus a header of at most 42 bytes. It is badger's limit for a
// value in in-memory mode, applied on disk too so that tests (in memory)
// and nodes (on disk) accept the same entries. The consensus package must
// reject larger commands before raft.Apply: a leader whose StoreLogs fails
// steps down, and would again after re-election.
//
// WARNING: not 1 MiB. Badger v4.9.6 in memory accepts a value of exactly
// its 1 MiB threshold in Txn.Set and then panics in its write goroutine
// (index out of range in writeToLSM), killing the process.
const MaxLogRecordSize = maxInMemoryValue

// maxInMemoryValue is the largest value badger v4.9.6 can hold in memory
// mode: one byte under its default 1 MiB value threshold (see
// MaxLogRecordSize). Every writer in this package must stay at or under it.
const maxInMemoryValue = 1<<20 - 1

// LogRecord is one Raft log entry, field for field raft.Log without
// depending on raft.
type LogRecord struct {
	Index, Term uint64
	Type        uint8
	Data        []byte
	Extensions  []byte
	AppendedAt  time.Time
}

// logBounds caches the first and last index of the log.
type logBounds struct {
	mu          sync.RWMutex
	first, last uint64 // Invariant: first == 0 iff last == 0 (empty log); otherwise first <= last.
}

func (b *logBounds) get() (first, last uint64) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.first, b.last
}

func (b *logBounds) set(first, last uint64) {
	b.mu.Lock()
	b.first, b.last = first, last
	b.mu.Unlock()
}

// FirstIndex returns the lowest index in the log, 0 when it is empty.
func (s *Store) FirstIndex() (uint64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.life.RUnlock()
	first, _ := s.bounds.get()
	return first, nil
}

// LastIndex returns the highest index in the log, 0 when it is empty.
func (s *Store) LastIndex() (uint64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.life.RUnlock()
	_, last := s.bounds.get()
	return last, nil
}

// GetLog reads the entry at index into out. A missing index yields
// ErrLogNotFound itself, never wrapped. out's slices are fresh: the caller
// owns them.
func (s *Store) GetLog(index uint64, out *LogRecord) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.life.RUnlock()
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if err != nil {
			return err
		}
		// The value is valid only inside the transaction; decoding aliases
		// it, so copy first.
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("chainstore: get log %d: %w", index, err)
	}
	rec, err := decodeLogRecord(val)
	if err != nil {
		return fmt.Errorf("chainstore: get log %d: %w", index, err)
	}
	rec.Index = index
	*out = rec
	return nil
}

// StoreLogs writes recs, replacing any entries at the same indexes.
//
// Callers pass recs in ascending index order, as raft does. The batch is
// committed in one transaction, hence atomically, when it fits in one
// (every batch of raft's default 64 entries of ordinary size does).
// Otherwise it is committed in index-ordered transactions, one after the
// other, so a crash part-way leaves a contiguous prefix of the batch:
// raft has not been told the batch is durable, and treats the log as
// ending earlier.
func (s *Store) StoreLogs(recs []LogRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.life.RUnlock()

	ops := make([]writeOp, len(recs))
	for i := range recs {
		val := encodeLogRecord(&recs[i])
		if len(val) > MaxLogRecordSize {
			return fmt.Errorf("%w: index %d encodes to %d bytes, limit %d", ErrRecordTooLarge, recs[i].Index, len(val), MaxLogRecordSize)
		}
		ops[i] = writeOp{key: logKey(recs[i].Index), val: val}
	}

	s.logMu.Lock()
	defer s.logMu.Unlock()
	err := s.writeOrdered(ops, func(lo, hi int) {
		first, last := s.bounds.get()
		for _, r := range recs[lo:hi] {
			if first == 0 || r.Index < first {
				first = r.Index
			}
			if r.Index > last {
				last = r.Index
			}
		}
		s.bounds.set(first, last)
	})
	if err != nil {
		return fmt.Errorf("chainstore: store logs %d..%d: %w", recs[0].Index, recs[len(recs)-1].Index, err)
	}
	return nil
}

// DeleteRange deletes the entries with min <= index <= max (both ends
// inclusive). Any size works: deletes are split across transactions as
// badger requires.
//
// The deletes run from the end of the range that is farther from the rest
// of the log: a range reaching the last entry (raft truncating a
// conflicting suffix) is deleted from the top down, any other range (raft
// compacting a prefix) from the bottom up. Either way a crash part-way
// leaves the log contiguous.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.life.RUnlock()

	s.logMu.Lock()
	defer s.logMu.Unlock()
	// Whatever happens below, the cache must reflect what was committed.
	defer func() {
		if err := s.loadBounds(); err != nil {
			s.log.Error("chainstore: reload log bounds after delete", "err", err)
		}
	}()

	_, last := s.bounds.get()
	topDown := max >= last

	// Iterate the keys that exist rather than min..max, which raft may
	// pass far wider than the log.
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: false,
			Prefix:         []byte{prefixLog},
		})
		defer it.Close()
		end := logKey(max)
		for it.Seek(logKey(min)); it.Valid(); it.Next() {
			k := it.Item().Key()
			if string(k) > string(end) {
				break
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("chainstore: delete logs %d..%d: %w", min, max, err)
	}
	ops := make([]writeOp, len(keys))
	for i, k := range keys {
		j := i
		if topDown {
			j = len(keys) - 1 - i
		}
		ops[j] = writeOp{key: k, del: true}
	}
	if err := s.writeOrdered(ops, func(int, int) {}); err != nil {
		return fmt.Errorf("chainstore: delete logs %d..%d: %w", min, max, err)
	}
	return nil
}

// loadBounds sets the cached bounds from the database: a forward seek for
// the first index, a reverse seek for the last.
func (s *Store) loadBounds() error {
	var first, last uint64
	err := s.db.View(func(txn *badger.Txn) error {
		fwd := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixLog}})
		fwd.Rewind()
		if fwd.Valid() {
			first, _ = logIndexOf(fwd.Item().Key())
		}
		fwd.Close()

		rev := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixLog}, Reverse: true})
		// Rewind in reverse would start at the last key of the whole
		// database and fail the prefix check: seek from the top of "L".
		rev.Seek(logKeyMax())
		if rev.Valid() {
			last, _ = logIndexOf(rev.Item().Key())
		}
		rev.Close()
		return nil
	})
	if err != nil {
		return fmt.Errorf("chainstore: read log bounds: %w", err)
	}
	s.bounds.set(first, last)
	return nil
}

// writeOp is one set or delete.
type writeOp struct {
	key, val []byte
	del      bool
}

// writeOrdered commits ops in order, in as few transactions as badger
// allows, each committed (and fsynced) before the next begins. After each
// commit it calls committed with the half-open range of ops it held.
func (s *Store) writeOrdered(ops []writeOp, committed func(lo, hi int)) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	start := 0
	for i := 0; i < len(ops); {
		var err error
		if ops[i].del {
			err = txn.Delete(ops[i].key)
		} else {
			err = txn.Set(ops[i].key, ops[i].val)
		}
		switch {
		case err == nil:
			i++
		case errors.Is(err, badger.ErrTxnTooBig) && i > start:
			if err := txn.Commit(); err != nil {
				return err
			}
			committed(start, i)
			txn = s.db.NewTransaction(true)
			start = i // retry ops[i] in the fresh transaction
		default:
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	committed(start, len(ops))
	return nil
}

// Log record encoding, version 1, all integers big-endian:
//
//	version    1 byte  (logRecordV1)
//	term       8 bytes
//	type       1 byte
//	appendedAt 8 bytes Unix seconds (signed) + 4 bytes nanoseconds
//	data       uvarint n, then n-1 bytes; n = 0 means nil
//	extensions uvarint n, then n-1 bytes; n = 0 means nil
//
// A fixed binary layout rather than CBOR: it is written once per Raft entry
// on the hot path, never signed and never leaves the node, so determinism
// and interoperability buy nothing. Seconds plus nanoseconds (not UnixNano)
// cover every time.Time, including the zero time. The index is the key.
const (
	logRecordV1      byte = 1
	logRecordFixed        = 1 + 8 + 1 + 8 + 4
	maxUvarintLen64       = binary.MaxVarintLen64
	appendedAtOffset      = 1 + 8 + 1
)

func encodeLogRecord(r *LogRecord) []byte {
	b := make([]byte, logRecordFixed, logRecordFixed+2*maxUvarintLen64+len(r.Data)+len(r.Extensions))
	b[0] = logRecordV1
	binary.BigEndian.PutUint64(b[1:], r.Term)
	b[9] = r.Type
	binary.BigEndian.PutUint64(b[appendedAtOffset:], uint64(r.AppendedAt.Unix()))
	binary.BigEndian.PutUint32(b[appendedAtOffset+8:], uint32(r.AppendedAt.Nanosecond()))
	b = appendBytesOrNil(b, r.Data)
	return appendBytesOrNil(b, r.Extensions)
}

// decodeLogRecord decodes a value written by encodeLogRecord. Data and
// Extensions alias buf. Index is left 0: it lives in the key.
func decodeLogRecord(buf []byte) (LogRecord, error) {
	var r LogRecord
	if len(buf) < logRecordFixed {
		return r, fmt.Errorf("log record of %d bytes, want at least %d: %w", len(buf), logRecordFixed, ErrCorrupt)
	}
	if buf[0] != logRecordV1 {
		return r, fmt.Errorf("log record version %d, want %d: %w", buf[0], logRecordV1, ErrCorrupt)
	}
	r.Term = binary.BigEndian.Uint64(buf[1:])
	r.Type = buf[9]
	sec := int64(binary.BigEndian.Uint64(buf[appendedAtOffset:]))
	nsec := binary.BigEndian.Uint32(buf[appendedAtOffset+8:])
	if nsec >= 1e9 {
		return r, fmt.Errorf("log record nanoseconds %d out of range: %w", nsec, ErrCorrupt)
	}
	r.AppendedAt = time.Unix(sec, int64(nsec)).UTC()
	rest := buf[logRecordFixed:]
	var err error
	if r.Data, rest, err = readBytesOrNil(rest); err != nil {
		return r, fmt.Errorf("log record data: %w", err)
	}
	if r.Extensions, rest, err = readBytesOrNil(rest); err != nil {
		return r, fmt.Errorf("log record extensions: %w", err)
	}
	if len(rest) != 0 {
		return r, fmt.Errorf("log record has %d trailing bytes: %w", len(rest), ErrCorrupt)
	}
	return r, nil
}

// appendBytesOrNil appends p with a length that keeps nil apart from empty,
// so a record reads back exactly as it was stored.
func appendBytesOrNil(b, p []byte) []byte {
	if p == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(p))+1)
	return append(b, p...)
}

func readBytesOrNil(b []byte) (p, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, fmt.Errorf("bad length prefix: %w", ErrCorrupt)
	}
	b = b[w:]
	if n == 0 {
		return nil, b, nil
	}
	n--
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("length %d exceeds the %d bytes left: %w", n, len(b), ErrCorrupt)
	}
	return b[:n:n], b[n:], nil
}
