package consensus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// MemEntry is one command applied to a MemState.
type MemEntry struct {
	Index uint64
	Type  CommandType
	Body  []byte
}

// MemState is an in-memory StateStore for tests: it records every command
// applied through its handlers, in order, and snapshots and restores them.
// An in-memory state survives a Raft restart only if the same MemState is
// passed to New again, which is how tests model a persistent state.
//
// All methods are safe for concurrent use.
type MemState struct {
	mu       sync.Mutex
	applied  uint64     // Invariant: >= the Index of every entry.
	entries  []MemEntry // Invariant: Index strictly increasing; never modified in place, only appended or replaced (snapshots share it).
	restores int
	wiped    bool // state lost; NeedsRestore until the next Restore
}

var _ StateStore = (*MemState)(nil)

// NewMemState returns an empty MemState.
func NewMemState() *MemState { return &MemState{} }

// Handler returns a Handler that records each body under type t (register
// it for t) and returns the entry's index as the result.
func (m *MemState) Handler(t CommandType) Handler {
	return func(index uint64, body []byte) any {
		if err := m.Record(index, t, body); err != nil {
			return err
		}
		return index
	}
}

// ErrOutOfOrder is returned by MemState.Record for an index at or below the
// applied index.
var ErrOutOfOrder = errors.New("consensus: memstate: index at or below the applied index")

// Record appends a command applied at index and advances the applied index
// to it. It copies body.
func (m *MemState) Record(index uint64, t CommandType, body []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if index <= m.applied {
		return fmt.Errorf("%w: %d, applied %d", ErrOutOfOrder, index, m.applied)
	}
	m.entries = append(m.entries, MemEntry{Index: index, Type: t, Body: slices.Clone(body)})
	m.applied = index
	return nil
}

// Entries returns a copy of the applied commands, in order.
func (m *MemState) Entries() []MemEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.entries)
}

// Restores returns how many times Restore succeeded.
func (m *MemState) Restores() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restores
}

// Wipe empties the state, as if it were lost or a restore was interrupted:
// NeedsRestore reports true until the next Restore.
func (m *MemState) Wipe() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries, m.applied, m.wiped = nil, 0, true
}

// AppliedIndex implements StateStore.
func (m *MemState) AppliedIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied
}

// MarkApplied implements StateStore.
func (m *MemState) MarkApplied(index uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied = max(m.applied, index)
	return nil
}

// NeedsRestore implements StateStore.
func (m *MemState) NeedsRestore() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wiped
}

// Snapshot implements StateStore. It shares the entries (they are never
// modified in place), so it is O(1).
func (m *MemState) Snapshot() (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return memSnapshot{applied: m.applied, entries: m.entries[:len(m.entries):len(m.entries)]}, nil
}

// MemState snapshot format: memMagic, version byte, applied index (u64),
// entry count (u64), then per entry: index (u64), type (u8), body length
// (u32), body. Integers are big-endian.
const (
	memMagic   = "FNMS"
	memVersion = 1
	// maxMemEntries bounds what a snapshot stream can make Restore
	// allocate up front.
	maxMemEntries = 1 << 24
)

// ErrBadSnapshot is returned by MemState.Restore for a stream that is not a
// MemState snapshot.
var ErrBadSnapshot = errors.New("consensus: memstate: malformed snapshot")

type memSnapshot struct {
	applied uint64
	entries []MemEntry
}

func (s memSnapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var b []byte
	b = append(b, memMagic...)
	b = append(b, memVersion)
	b = binary.BigEndian.AppendUint64(b, s.applied)
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.entries)))
	if _, err := bw.Write(b); err != nil {
		return fmt.Errorf("consensus: memstate: persist: %w", err)
	}
	for _, e := range s.entries {
		b = b[:0]
		b = binary.BigEndian.AppendUint64(b, e.Index)
		b = append(b, byte(e.Type))
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Body)))
		b = append(b, e.Body...)
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("consensus: memstate: persist: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("consensus: memstate: persist: %w", err)
	}
	return nil
}

func (memSnapshot) Release() {}

// Restore implements StateStore.
func (m *MemState) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	hdr := make([]byte, len(memMagic)+1+8+8)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return fmt.Errorf("%w: header: %w", ErrBadSnapshot, err)
	}
	if string(hdr[:len(memMagic)]) != memMagic || hdr[len(memMagic)] != memVersion {
		return fmt.Errorf("%w: bad magic or version", ErrBadSnapshot)
	}
	applied := binary.BigEndian.Uint64(hdr[len(memMagic)+1:])
	count := binary.BigEndian.Uint64(hdr[len(memMagic)+9:])
	if count > maxMemEntries {
		return fmt.Errorf("%w: %d entries, at most %d", ErrBadSnapshot, count, maxMemEntries)
	}
	entries := make([]MemEntry, 0, min(count, 1024))
	var prev uint64
	for i := range count {
		var eh [8 + 1 + 4]byte
		if _, err := io.ReadFull(br, eh[:]); err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrBadSnapshot, i, err)
		}
		e := MemEntry{Index: binary.BigEndian.Uint64(eh[:8]), Type: CommandType(eh[8])}
		size := binary.BigEndian.Uint32(eh[9:])
		if size > MaxCommandSize {
			return fmt.Errorf("%w: entry %d: body of %d bytes, at most %d", ErrBadSnapshot, i, size, MaxCommandSize)
		}
		if e.Index <= prev || e.Index > applied {
			return fmt.Errorf("%w: entry %d: index %d out of order", ErrBadSnapshot, i, e.Index)
		}
		prev = e.Index
		e.Body = make([]byte, size)
		if _, err := io.ReadFull(br, e.Body); err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrBadSnapshot, i, err)
		}
		entries = append(entries, e)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries, m.applied, m.wiped = entries, applied, false
	m.restores++
	return nil
}
