package chainstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Sentinel errors shared by every part of the store.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("chainstore: store closed")
	// ErrCorrupt is returned when a stored value does not decode: the
	// database was damaged or written by an incompatible version.
	ErrCorrupt = errors.New("chainstore: corrupt value")
)

const (
	// gcInterval is how often the value log is garbage-collected. Raft
	// entries are small and live in the LSM tree (below badger's value
	// threshold), so the value log grows slowly; minutes are plenty.
	gcInterval = 5 * time.Minute
	// gcDiscardRatio rewrites a value-log file once half of it is garbage:
	// badger's recommended value (write amplification about 2).
	gcDiscardRatio = 0.5
	// maxGCRounds bounds one GC pass, so Close never waits behind a long
	// series of rewrites.
	maxGCRounds = 16

	// In-memory stores are for tests, where a testnet may hold many of
	// them at once: badger's defaults (64 MiB memtable, 256 MiB block cache)
	// would add up.
	inMemoryMemTableSize   = 16 << 20
	inMemoryBlockCacheSize = 16 << 20
)

// Options configures Open.
type Options struct {
	// InMemory keeps everything in memory (badger's disk-less mode), for
	// tests. The dir argument of Open is then ignored.
	InMemory bool
	// Logger receives badger's messages (Infof and Debugf at Debug,
	// Warningf at Warn, Errorf at Error) and the store's own. Nil discards.
	Logger *slog.Logger
}

// Store is the storage of one node.
//
// All methods are safe for concurrent use. Log writes (StoreLogs,
// DeleteRange) are serialised among themselves; reads run concurrently with
// them and see each committed transaction whole.
type Store struct {
	db  *badger.DB
	log *slog.Logger

	// life guards the use of db against Close: every operation holds a read
	// lock (see acquire); Close takes the write lock.
	life   sync.RWMutex
	closed bool // Invariant: once true, db is closed or closing and never used again.

	closeOnce sync.Once
	closeErr  error
	stopGC    chan struct{} // closed by Close
	gcDone    chan struct{} // closed when the GC loop has returned; nil for in-memory stores

	// logMu serialises log writers, so the cached bounds below always
	// match what is committed once a writer releases it.
	logMu sync.Mutex
	// bounds caches the first and last log index.
	bounds logBounds

	// peerMu serialises peer-book writers, so peerCount stays exact.
	peerMu    sync.Mutex
	peerCount int // Invariant: equals the number of "P" keys; 0 <= peerCount <= maxPeers.

	// gs is the agreed graph, loaded at Open (graph.go).
	gs graphState
}

// Open opens the store in dir, creating the directory if needed. With
// opts.InMemory, dir is ignored and nothing touches the disk.
//
// The caller must Close the store; a second Open of the same dir fails while
// the first is open (badger holds a directory lock).
func Open(dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var bopts badger.Options
	if opts.InMemory {
		bopts = badger.DefaultOptions("").
			WithInMemory(true).
			WithMemTableSize(inMemoryMemTableSize).
			WithBlockCacheSize(inMemoryBlockCacheSize)
	} else {
		if dir == "" {
			return nil, errors.New("chainstore: open: empty directory path: pass the node's data directory")
		}
		// Badger's own error for a path that is a file is obscure; check
		// first so the user learns which path is wrong.
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("chainstore: open %q: not a directory: pass a directory path for the store", dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("chainstore: open %q: create directory: %w", dir, err)
		}
		bopts = badger.DefaultOptions(dir)
	}
	// Raft acknowledges entries as durable once StoreLogs returns: without
	// SyncWrites a crash could lose acknowledged entries.
	bopts = bopts.WithSyncWrites(true)
	if opts.Logger != nil {
		bopts = bopts.WithLogger(badgerLogger{l: opts.Logger})
	} else {
		// Nil here skips badger's formatting entirely.
		bopts = bopts.WithLogger(nil)
	}

	db, err := badger.Open(bopts)
	if err != nil {
		if opts.InMemory {
			return nil, fmt.Errorf("chainstore: open in-memory store: %w", err)
		}
		// Badger has no sentinel for a held directory lock; its message
		// is the only sign, and the likeliest mistake deserves a hint.
		if strings.Contains(err.Error(), "directory lock") {
			return nil, fmt.Errorf("chainstore: open %q: in use by another process (another fednode on the same data directory?): %w", dir, err)
		}
		return nil, fmt.Errorf("chainstore: open %q: %w", dir, err)
	}

	s := &Store{db: db, log: logger, stopGC: make(chan struct{})}
	if err := s.loadBounds(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.loadPeerCount(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.loadGraph(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if !opts.InMemory {
		s.gcDone = make(chan struct{})
		go s.gcLoop(gcInterval)
	}
	return s, nil
}

// Close stops the GC loop, waits for operations in flight and closes the
// database. It is idempotent: later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopGC)
		if s.gcDone != nil {
			<-s.gcDone
		}
		s.life.Lock()
		s.closed = true
		s.life.Unlock()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("chainstore: close: %w", err)
		}
	})
	return s.closeErr
}

// acquire guards one operation against Close. On success the caller must
// call s.life.RUnlock when done. It must not be called while already held
// (a waiting Close would deadlock a nested read lock).
func (s *Store) acquire() error {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return ErrClosed
	}
	return nil
}

// view runs fn in a read-only transaction, guarded against Close. For use by
// the whole package (graph.go included) instead of s.db.View.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.life.RUnlock()
	return s.db.View(fn)
}

// update runs fn in a read-write transaction, guarded against Close. For
// use by the whole package instead of s.db.Update. fn may run only once:
// badger returns ErrConflict rather than retrying.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.life.RUnlock()
	return s.db.Update(fn)
}

// gcLoop runs value-log GC every interval until Close.
func (s *Store) gcLoop(interval time.Duration) {
	defer close(s.gcDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
			s.runGC()
		}
	}
}

// runGC rewrites value-log files until badger reports nothing to do, Close
// is called, or maxGCRounds have run. It reports how many files it
// rewrote.
func (s *Store) runGC() int {
	for i := 0; i < maxGCRounds; i++ {
		select {
		case <-s.stopGC:
			return i
		default:
		}
		err := s.db.RunValueLogGC(gcDiscardRatio)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			// Nothing to do, or another GC is running.
			return i
		default:
			s.log.Warn("chainstore: value-log GC failed", "err", err)
			return i
		}
	}
	return maxGCRounds
}

// badgerLogger routes badger's printf-style logger to slog. Badger logs
// table and compaction events at Info on every start: Debug is their place.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.emit(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.emit(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.emit(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.emit(slog.LevelDebug, f, a) }

func (b badgerLogger) emit(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
