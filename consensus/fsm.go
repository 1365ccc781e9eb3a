package consensus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/raft"
)

// StateStore is the replicated state that the FSM drives (chainstore
// implements it; MemState is the in-memory twin).
//
// Concurrency: AppliedIndex, MarkApplied, Snapshot and Restore are called on
// Raft's FSM goroutine, one at a time, interleaved with the Handlers; Persist
// of a returned Snapshot runs concurrently with later applies. NeedsRestore
// and AppliedIndex are also called by New before Raft starts.
//
// Durability: the state is persistent. Raft is started with
// NoSnapshotRestoreOnStart, so after a restart it does not rebuild the state
// from the latest snapshot but replays the log after it, and the FSM skips
// every entry at or below AppliedIndex. That is only correct if each entry's
// effects and its index become durable together (one transaction).
type StateStore interface {
	// AppliedIndex is the highest Raft index whose effects are durable.
	// It is called twice per entry, so keep it in memory.
	// Invariant: it never decreases except through Restore.
	AppliedIndex() uint64
	// MarkApplied records that the entry at index was applied and changed
	// nothing (an unknown or malformed command). An index at or below
	// AppliedIndex is a no-op.
	MarkApplied(index uint64) error
	// NeedsRestore reports that the state is incomplete (a Restore was
	// interrupted, or the state was lost), so Raft must restore the latest
	// snapshot on start instead of trusting the state.
	NeedsRestore() bool
	// Snapshot takes a consistent view of the state, including its
	// AppliedIndex. It must be quick (it blocks applies): copy pointers or
	// open a read transaction, and leave the I/O to Persist.
	Snapshot() (Snapshot, error)
	// Restore builds fresh state from a stream written by Snapshot.Persist
	// (possibly on another node, by an older version) and swaps it in
	// whole, AppliedIndex included. The stream is untrusted in size: bound
	// what it can make Restore allocate. Restore does not close r.
	Restore(r io.Reader) error
}

// Snapshot is a point-in-time view of a StateStore.
//
// Persist may run concurrently with applies and is called at most once;
// Release is always called, after Persist if Persist was called.
type Snapshot interface {
	// Persist writes the view to w (a versioned header, then records).
	Persist(w io.Writer) error
	// Release frees the view (ends its read transaction).
	Release()
}

// Handler applies one command body committed at index and returns the result
// that Raft.Apply hands back to the proposer on the leader (an error value
// for a rejected command).
//
// A Handler must be deterministic: it reads no clock, no randomness and no
// network, only body, index and the state, so every node reaches the same
// state. It must persist its effects together with index, so that
// StateStore.AppliedIndex reaches index in the same transaction; a rejected
// command must still record index (as MarkApplied does). body must not be
// modified; copy it to keep it past the call.
type Handler func(index uint64, body []byte) any

// Errors returned by the FSM as Apply results (and so by Raft.Apply).
var (
	// ErrAlreadyApplied: the entry's index is at or below the state's
	// AppliedIndex (a replay after a restart); the handler was not called.
	ErrAlreadyApplied = errors.New("consensus: entry already applied")
	// ErrUnknownCommand: the entry is not a Command, or its type has no
	// Handler. It was marked applied without effect on every node.
	ErrUnknownCommand = errors.New("consensus: unknown command")
	// ErrHandlerPanic: the Handler panicked. The entry was marked applied;
	// its effects were not persisted unless the handler committed them
	// before panicking.
	ErrHandlerPanic = errors.New("consensus: command handler panicked")
	// ErrNotRecorded: the Handler returned without advancing the state's
	// AppliedIndex to the entry's index, breaking the Handler contract; the
	// entry would be applied again after a restart.
	ErrNotRecorded = errors.New("consensus: handler did not record the applied index")
)

type handlerEntry struct {
	name string
	h    Handler
}

// FSM is the raft.FSM over a StateStore: it dispatches each committed
// command to the Handler registered for its type.
//
// Register every handler before passing the FSM to New; a handler added later
// would make this node apply earlier entries differently from the others.
type FSM struct {
	state StateStore

	mu       sync.RWMutex
	handlers map[CommandType]handlerEntry
	started  bool // Invariant: once true, handlers never changes.
	log      *slog.Logger

	// progress is closed and replaced after every entry and restore, so
	// readers waiting for an index wake (readindex.go).
	progressMu sync.Mutex
	progress   chan struct{}
}

// NewFSM returns an FSM with no handlers that drives state.
func NewFSM(state StateStore) *FSM {
	if state == nil {
		panic("consensus: NewFSM with a nil StateStore")
	}
	return &FSM{
		state:    state,
		handlers: make(map[CommandType]handlerEntry),
		log:      slog.New(slog.DiscardHandler),
	}
}

// Register sets the handler of command type t; name is for logs. It panics
// on type 0 (reserved), a nil handler, a type registered twice, or a call
// after New has started Raft: those are programming errors that would make
// nodes diverge.
func (f *FSM) Register(t CommandType, name string, h Handler) {
	if t == 0 {
		panic("consensus: command type 0 is reserved")
	}
	if h == nil {
		panic(fmt.Sprintf("consensus: nil handler for command type %d (%s)", t, name))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		panic(fmt.Sprintf("consensus: Register of command type %d (%s) after Raft started", t, name))
	}
	if prev, ok := f.handlers[t]; ok {
		panic(fmt.Sprintf("consensus: command type %d registered twice (%s, then %s)", t, prev.name, name))
	}
	f.handlers[t] = handlerEntry{name: name, h: h}
}

// start freezes the handler set and sets the logger; New calls it.
func (f *FSM) start(log *slog.Logger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = true
	f.log = log
}

func (f *FSM) handler(t CommandType) (handlerEntry, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.handlers[t]
	return e, ok
}

// Apply implements raft.FSM. It never panics: a malformed or hostile entry
// reaches every node, and must not crash them all.
func (f *FSM) Apply(l *raft.Log) any {
	defer f.advanced()
	if l.Type != raft.LogCommand {
		return nil
	}
	if l.Index <= f.state.AppliedIndex() {
		return fmt.Errorf("%w: index %d", ErrAlreadyApplied, l.Index)
	}
	cmd, err := DecodeCommand(l.Data)
	if err != nil {
		return f.reject(l.Index, fmt.Errorf("%w: index %d: %w", ErrUnknownCommand, l.Index, err))
	}
	e, ok := f.handler(cmd.Type)
	if !ok {
		return f.reject(l.Index, fmt.Errorf("%w: index %d: type %d has no handler", ErrUnknownCommand, l.Index, cmd.Type))
	}
	res, panicked := f.dispatch(e, l.Index, cmd.Body)
	if panicked != nil {
		return f.reject(l.Index, panicked)
	}
	if got := f.state.AppliedIndex(); got < l.Index {
		f.log.Error("consensus: handler did not record the applied index",
			"handler", e.name, "index", l.Index, "applied_index", got)
		return fmt.Errorf("%w: handler %s, index %d, applied index %d", ErrNotRecorded, e.name, l.Index, got)
	}
	return res
}

// dispatch calls the handler, turning a panic into an error.
func (f *FSM) dispatch(e handlerEntry, index uint64, body []byte) (res any, panicked error) {
	defer func() {
		if p := recover(); p != nil {
			f.log.Error("consensus: command handler panicked",
				"handler", e.name, "index", index, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			panicked = fmt.Errorf("%w: handler %s, index %d: %v", ErrHandlerPanic, e.name, index, p)
		}
	}()
	return e.h(index, body), nil
}

// reject marks index applied without effect and returns why, as the result.
func (f *FSM) reject(index uint64, why error) any {
	f.log.Warn("consensus: entry applied without effect", "index", index, "error", why)
	if err := f.state.MarkApplied(index); err != nil {
		// Harmless for agreement (the entry changed nothing), but the
		// entry will be rejected again after a restart.
		f.log.Error("consensus: mark applied", "index", index, "error", err)
		return fmt.Errorf("consensus: mark index %d applied: %w (after: %w)", index, err, why)
	}
	return why
}

// Snapshot implements raft.FSM by delegating to the StateStore.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.state.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("consensus: snapshot state: %w", err)
	}
	return fsmSnapshot{s}, nil
}

// Restore implements raft.FSM by delegating to the StateStore. Raft closes
// rc.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer f.advanced()
	if err := f.state.Restore(rc); err != nil {
		return fmt.Errorf("consensus: restore state: %w", err)
	}
	f.log.Info("consensus: state restored from snapshot", "applied_index", f.state.AppliedIndex())
	return nil
}

type fsmSnapshot struct{ s Snapshot }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.s.Persist(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("consensus: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("consensus: close snapshot: %w", err)
	}
	return nil
}

func (s fsmSnapshot) Release() { s.s.Release() }

// sameState reports whether a and b are the same StateStore, without
// panicking on incomparable dynamic types.
func sameState(a, b StateStore) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || !ta.Comparable() {
		return false
	}
	return a == b
}
