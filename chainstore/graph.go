package chainstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// Graph-state key layout (see keys.go for the other namespaces):
//
//	"d" + id (32)                      -> envelope bytes of an accepted declaration
//	"o" + uint64 BE version (1-based)  -> id: acceptance order (the graph's log)
//	"i" + authority id + uint64 BE seq -> id: index by issuer and chain position
//	"k" + kind (1) + id                -> empty: index by kind
//	"r" + target id + issuer id        -> revocation id: the revocation set
//	"m" + "applied"                    -> uint64 BE: last Raft index applied
//	"g" + "restoring"                  -> present while a snapshot restore is
//	                                      incomplete (state must be rebuilt)
//	"e" + uint64 BE n                  -> evidence of equivocation (evidence.go)
//
// Authorities and chain heads are derived: Open replays "o" in order into an
// authority.Graph, so the in-memory graph and the disk can never disagree
// about what a head is.
const (
	prefixDecl    byte = 'd'
	prefixOrder   byte = 'o'
	prefixIssuer  byte = 'i'
	prefixKind    byte = 'k'
	prefixRevoked byte = 'r'
	prefixMeta    byte = 'm'
	prefixGuard   byte = 'g'
)

var (
	keyApplied   = []byte{prefixMeta, 'a', 'p', 'p', 'l', 'i', 'e', 'd'}
	keyRestoring = []byte{prefixGuard, 'r', 'e', 's', 't', 'o', 'r', 'i', 'n', 'g'}
)

// dropGraphData deletes every graph key but the restore marker. One
// DropPrefix call for all prefixes: each call stops writes, flushes the
// memtables and compacts, so six calls cost six times as much.
func (s *Store) dropGraphData() error {
	prefixes := make([][]byte, len(graphPrefixes))
	for i, p := range graphPrefixes {
		prefixes[i] = []byte{p}
	}
	return s.db.DropPrefix(prefixes...)
}

// graphPrefixes are the namespaces of the graph state and its log (all but
// the restore marker).
var graphPrefixes = []byte{prefixDecl, prefixOrder, prefixIssuer, prefixKind, prefixRevoked, prefixMeta, prefixTree, prefixVersion, prefixEvidence}

// ErrNotFound is returned for a declaration the graph does not hold.
var ErrNotFound = errors.New("chainstore: not found")

// graphState is the in-memory graph and its bookkeeping.
//
// Two locks, so that verification never waits for the disk: mu guards the
// in-memory state and writers hold it only while memory changes
// (microseconds to milliseconds); disk is held by the graph's writers
// across their disk write (an fsync, which on a busy disk takes up to
// seconds) and, for a moment, by readers of the graph's disk records
// (graphView, Snapshot) to open their transaction after the write in
// flight. So, between ApplyDeclarations's memory change and its fsync,
// memory is ahead of the disk, and every disk reader still sees at least
// what memory said before it was called.
// Lock order: mu, then disk, then the store's lifetime lock (acquire).
type graphState struct {
	mu   sync.RWMutex
	disk sync.Mutex
	// g is the agreed graph. Invariant: g holds exactly the declarations
	// under "o", in that order.
	g *authority.Graph
	// log is the transparency log's appender. Invariant: log.Size() ==
	// g.Version(), and its leaves are g's declarations in order.
	log          *tlog.Appender
	applied      uint64
	needsRestore bool
	// ev is the evidence of equivocation persisted (evidence.go).
	ev evidenceState
	// synced: the graph came from sync (sync.go), not from Raft.
	// Invariant: synced implies applied == 0.
	synced bool
	// restores counts the snapshots restored since Open (sync.go).
	restores uint64
}

func declKey(id authority.ID) []byte { return append([]byte{prefixDecl}, id[:]...) }

func orderKey(version uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixOrder
	binary.BigEndian.PutUint64(k[1:], version)
	return k
}

func issuerKey(a authority.ID, seq uint64) []byte {
	k := make([]byte, 0, 1+32+8)
	k = append(append(k, prefixIssuer), a[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func kindKey(kind authority.Kind, id authority.ID) []byte {
	return append([]byte{prefixKind, byte(kind)}, id[:]...)
}

func revokedKey(target, issuer authority.ID) []byte {
	k := make([]byte, 0, 65)
	k = append(append(k, prefixRevoked), target[:]...)
	return append(k, issuer[:]...)
}

// loadGraph rebuilds the in-memory graph from disk, in acceptance order.
// Declarations on disk were verified when they were accepted, so they are
// parsed but not re-verified.
func (s *Store) loadGraph() error {
	g := authority.NewGraph()
	var app *tlog.Appender
	var applied uint64
	restoring, synced := false, false
	var evr evidenceReplay
	err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(keyRestoring); err == nil {
			restoring = true
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if item, err := txn.Get(keyApplied); err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) != 8 {
				return fmt.Errorf("%w: applied index is %d bytes", ErrCorrupt, len(v))
			}
			applied = binary.BigEndian.Uint64(v)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		var err error
		if evr.recs, err = readEvidence(txn); err != nil {
			return err
		}
		if synced, err = s.loadSynced(txn); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{prefixOrder}})
		defer it.Close()
		want := uint64(1)
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if v := binary.BigEndian.Uint64(k[1:]); v != want {
				return fmt.Errorf("%w: graph log has version %d where %d was expected", ErrCorrupt, v, want)
			}
			idb, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var id authority.ID
			if len(idb) != len(id) {
				return fmt.Errorf("%w: graph log entry %d holds a %d-byte id", ErrCorrupt, want, len(idb))
			}
			copy(id[:], idb)
			item, err := txn.Get(declKey(id))
			if err != nil {
				return fmt.Errorf("%w: declaration %s of graph version %d: %v", ErrCorrupt, id.Short(), want, err)
			}
			env, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			sd, err := authority.Parse(env)
			if err != nil || sd.ID != id {
				return fmt.Errorf("%w: declaration %s of graph version %d does not parse back to itself", ErrCorrupt, id.Short(), want)
			}
			// Evidence replays at its point, as the graph recorded it.
			if err := evr.due(g); err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			g.ApplyVerified(sd)
			want++
		}
		if err := evr.done(g); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		app, err = loadAppender(txn, g.Version())
		return err
	})
	if err != nil {
		return fmt.Errorf("chainstore: load graph: %w", err)
	}
	if restoring {
		s.log.Warn("chainstore: a snapshot restore was interrupted; the graph will be rebuilt from the latest snapshot")
		// The disk holds a mix of the old graph and part of the new one.
		// Clear it, so that the reads served from disk (Declarations,
		// ByIssuer, ...) agree with the empty graph in memory. The marker
		// stays until a Restore completes.
		if err := s.dropGraphData(); err != nil {
			return fmt.Errorf("chainstore: load graph: clear an interrupted restore: %w", err)
		}
		g, applied, evr.state, synced = authority.NewGraph(), 0, evidenceState{}, false
	}
	if app == nil || restoring {
		if app, err = tlog.NewAppender(0, nil); err != nil {
			return err
		}
	}
	s.gs.g, s.gs.log, s.gs.applied, s.gs.needsRestore, s.gs.ev, s.gs.synced = g, app, applied, restoring, evr.state, synced
	return nil
}

// View runs fn with a consistent read-only view of the agreed graph. fn must
// not retain v after it returns, nor call into the Store's write methods.
// Views run concurrently with each other; Apply waits for them.
func (s *Store) View(fn func(v authority.View)) {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	fn(s.gs.g)
}

// Version is the number of declarations in the agreed graph.
func (s *Store) Version() uint64 {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	return s.gs.g.Version()
}

// AppliedIndex is the last Raft index applied to the graph here (durable
// once the ApplyDeclarations or MarkApplied call that set it returned).
func (s *Store) AppliedIndex() uint64 {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	return s.gs.applied
}

// NeedsRestore reports that a snapshot restore was interrupted: the state is
// incomplete until the latest snapshot is restored again.
func (s *Store) NeedsRestore() bool {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	return s.gs.needsRestore
}

// MarkApplied records that the entry at index was applied and changed nothing.
func (s *Store) MarkApplied(index uint64) error {
	s.gs.mu.Lock()
	if index <= s.gs.applied {
		s.gs.mu.Unlock()
		return nil
	}
	s.gs.disk.Lock()
	defer s.gs.disk.Unlock()
	prev := s.gs.applied
	s.gs.applied = index
	s.gs.mu.Unlock()
	if err := s.update(func(txn *badger.Txn) error { return txn.Set(keyApplied, be64(index)) }); err != nil {
		s.gs.mu.Lock()
		s.gs.applied = prev
		s.gs.mu.Unlock()
		return fmt.Errorf("chainstore: mark index %d applied: %w", index, err)
	}
	return nil
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// ApplyDeclarations is the Raft FSM's handler for a batch of declarations
// committed at index. It re-verifies every declaration against the graph
// (signatures authorize; Raft only orders) and accepts those that pass, in
// order, writing them and the applied index in one transaction. It is
// deterministic: no clock, no randomness, so every node accepts the same
// declarations at the same versions.
//
// It returns one error per envelope: nil for accepted, else why it was
// refused (authority.ErrDuplicate, ErrGap, ErrConflict, ErrBadSignature,
// ErrMalformed, ...). An index at or below AppliedIndex is skipped and
// returns nil. After Close every envelope gets ErrClosed and nothing changes.
func (s *Store) ApplyDeclarations(index uint64, envelopes [][]byte) []error {
	return s.ApplyDeclarationsParsed(index, envelopes, nil)
}

// ApplyDeclarationsParsed is ApplyDeclarations with envelopes parsed
// already: parsed[i], when parsed is not nil and parsed[i] is set, is an
// *authority.Signed of exactly envelopes[i] (checked here); others are
// parsed. Every signature is still checked against the graph at its
// position; a Signed that verified before only spares repeating the
// arithmetic (authority's memo).
func (s *Store) ApplyDeclarationsParsed(index uint64, envelopes [][]byte, parsed []*authority.Signed) []error {
	s.gs.mu.Lock()
	unlockMem := sync.OnceFunc(s.gs.mu.Unlock)
	defer unlockMem()
	s.gs.disk.Lock()
	defer s.gs.disk.Unlock()
	results := make([]error, len(envelopes))
	// Acquire before touching the graph: once memory has moved on, a disk
	// write refused for ErrClosed would look like divergence (the panic
	// below).
	if err := s.acquire(); err != nil {
		for i := range results {
			results[i] = err
		}
		return results
	}
	defer s.life.RUnlock()
	if index <= s.gs.applied {
		return results
	}
	if s.gs.synced {
		// Raft feeds this store from now on (sync.go).
		if err := s.dropSyncedLocked(); err != nil {
			panic(fmt.Sprintf("chainstore: apply index %d: clear the synced graph: %v", index, err))
		}
	}
	g := s.gs.g
	var accepted []*authority.Signed
	var evs []evidenceRec // the proofs of equivocation the graph records
	for i, env := range envelopes {
		var sd *authority.Signed
		if i < len(parsed) {
			if sd = parsed[i]; sd != nil && !bytes.Equal(sd.Raw, env) {
				sd = nil
			}
		}
		var err error
		if sd == nil {
			sd, err = authority.Parse(env)
		}
		if err == nil {
			err = g.Apply(sd)
		}
		if err != nil {
			if ev, ok := s.newEvidence(err, g.Version(), evs); ok {
				evs = append(evs, ev)
			}
			results[i] = err
			continue
		}
		accepted = append(accepted, sd)
	}
	base := g.Version() - uint64(len(accepted))
	// The records are built under mu (the log's appender moves on with
	// them); the write and its fsync run after mu is released, under disk,
	// so that View and Has do not wait for the disk.
	var recs [][2][]byte
	var err error
	for j, sd := range accepted {
		var r [][2][]byte
		if r, err = allRecords(s.gs.log, sd, base+uint64(j)+1); err != nil {
			break
		}
		recs = append(recs, r...)
	}
	if err == nil {
		s.gs.applied = index
		for _, ev := range evs {
			s.gs.ev.add(ev.info)
		}
		unlockMem()
		err = s.db.Update(func(txn *badger.Txn) error {
			for _, kv := range recs {
				if err := txn.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
			if err := putEvidence(txn.Set, evs); err != nil {
				return err
			}
			return txn.Set(keyApplied, be64(index))
		})
	}
	if err != nil {
		// The in-memory graph has moved on and the disk has not: this node
		// can no longer claim to hold the agreed graph. Stop; a restart
		// replays the Raft log from what the disk has.
		panic(fmt.Sprintf("chainstore: apply index %d: %v: memory and disk diverged", index, err))
	}
	return results
}

// deleteGraph adds to wb a delete of every record of the graph state and its
// log (graphPrefixes). Tombstones, not DropPrefix: DropPrefix ignores open
// read transactions, so a Snapshot taken before would persist a graph with
// its records gone.
func (s *Store) deleteGraph(wb *badger.WriteBatch) error {
	return s.db.View(func(txn *badger.Txn) error {
		for _, p := range graphPrefixes {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{p}})
			for it.Rewind(); it.Valid(); it.Next() {
				if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
}

// graphView is view for the graph's own disk records (declarations, their
// indexes, the log's nodes). Its transaction opens after the write in
// flight, if any, has landed, so it sees at least what memory (Has,
// Version, LogRoot) said before the call; the lock is not held while fn
// runs, so a long read does not hold up the next write.
func (s *Store) graphView(fn func(txn *badger.Txn) error) error {
	s.gs.disk.Lock()
	if err := s.acquire(); err != nil {
		s.gs.disk.Unlock()
		return err
	}
	txn := s.db.NewTransaction(false)
	s.gs.disk.Unlock()
	defer s.life.RUnlock()
	defer txn.Discard()
	return fn(txn)
}

// allRecords is declRecords plus the transparency log's records, appending
// sd to app.
func allRecords(app *tlog.Appender, sd *authority.Signed, version uint64) ([][2][]byte, error) {
	logRecs, err := logRecords(app, sd, version)
	if err != nil {
		return nil, err
	}
	return append(declRecords(sd, version), logRecs...), nil
}

// declRecords lists the keys and values that record one accepted declaration
// at a graph version.
func declRecords(sd *authority.Signed, version uint64) [][2][]byte {
	d := &sd.Decl
	owner := d.Authority
	if d.Kind == authority.KindGenesis {
		owner = sd.ID
	}
	recs := [][2][]byte{
		{declKey(sd.ID), sd.Raw},
		{orderKey(version), sd.ID[:]},
		{issuerKey(owner, d.Seq), sd.ID[:]},
		{kindKey(d.Kind, sd.ID), nil},
	}
	if d.Kind == authority.KindRevocation {
		recs = append(recs, [2][]byte{revokedKey(d.Revocation.Target, d.Authority), sd.ID[:]})
	}
	return recs
}

// Declaration returns the envelope of an accepted declaration.
func (s *Store) Declaration(id authority.ID) ([]byte, error) {
	var out []byte
	err := s.graphView(func(txn *badger.Txn) error {
		item, err := txn.Get(declKey(id))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: declaration %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("chainstore: read declaration %s: %w", id.Short(), err)
	}
	return out, nil
}

// Has reports whether id is in the agreed graph. It reads memory only.
func (s *Store) Has(id authority.ID) bool {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	return s.gs.g.Has(id)
}

// ByIssuer returns the IDs of an authority's declarations in chain order.
func (s *Store) ByIssuer(a authority.ID) ([]authority.ID, error) {
	var out []authority.ID
	prefix := append([]byte{prefixIssuer}, a[:]...)
	err := s.graphView(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var id authority.ID
			copy(id[:], v)
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chainstore: declarations of %s: %w", a.Short(), err)
	}
	return out, nil
}

// ByKind returns the IDs of accepted declarations of one kind (in ID order).
func (s *Store) ByKind(k authority.Kind) ([]authority.ID, error) {
	var out []authority.ID
	prefix := []byte{prefixKind, byte(k)}
	err := s.graphView(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var id authority.ID
			copy(id[:], it.Item().Key()[2:])
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chainstore: declarations of kind %v: %w", k, err)
	}
	return out, nil
}

// Declarations calls fn for each accepted declaration with version in
// (after, upTo], in order. upTo 0 means the current version. fn's env is
// only valid during the call.
func (s *Store) Declarations(after, upTo uint64, fn func(version uint64, env []byte) error) error {
	return s.graphView(func(txn *badger.Txn) error { return eachDecl(txn, after, upTo, fn) })
}

func eachDecl(txn *badger.Txn, after, upTo uint64, fn func(version uint64, env []byte) error) error {
	if after == math.MaxUint64 {
		return nil // after+1 below would wrap to the first version
	}
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{prefixOrder}})
	defer it.Close()
	for it.Seek(orderKey(after + 1)); it.Valid(); it.Next() {
		v := binary.BigEndian.Uint64(it.Item().Key()[1:])
		if upTo != 0 && v > upTo {
			break
		}
		idb, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		var id authority.ID
		copy(id[:], idb)
		item, err := txn.Get(declKey(id))
		if err != nil {
			return fmt.Errorf("%w: declaration %s of version %d: %v", ErrCorrupt, id.Short(), v, err)
		}
		env, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := fn(v, env); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot format (a wire format: Raft ships it to lagging followers):
//
//	magic "FEDSNAP" | format version (1 byte, = 2; Restore reads 1 too)
//	applied Raft index (uint64 BE) | graph version N (uint64 BE)
//	N records: uvarint length | envelope bytes, in acceptance order
//	format 2 only: uvarint E | E records: uvarint length | evidence record
//	(evidence.go), in recording order
//
// Integrity is Raft's: its snapshot store checksums what it keeps. The
// restoring node trusts nothing else in it: every declaration is verified
// again as it is applied.
var snapMagic = []byte("FEDSNAP")

// snapFormat is the format Persist writes; snapFormatV1 (no evidence
// section) is still restored, from nodes of an older version.
const (
	snapFormat   = 2
	snapFormatV1 = 1
)

// GraphSnapshot is a consistent view of the graph state taken by Snapshot.
type GraphSnapshot struct {
	s       *Store
	txn     *badger.Txn
	applied uint64
	version uint64
}

// Snapshot takes a consistent view for Raft. It is quick: the records are
// read while Persist streams them. Release must be called.
func (s *Store) Snapshot() (*GraphSnapshot, error) {
	// Lock order, everywhere: the graph lock, disk, then the store's
	// lifetime lock (acquire), so Snapshot, Apply and Close cannot
	// deadlock. disk: the transaction must hold the records of the version
	// and index it states, so it opens after the write in flight.
	s.gs.mu.RLock()
	s.gs.disk.Lock()
	if err := s.acquire(); err != nil {
		s.gs.disk.Unlock()
		s.gs.mu.RUnlock()
		return nil, err
	}
	txn := s.db.NewTransaction(false)
	snap := &GraphSnapshot{s: s, txn: txn, applied: s.gs.applied, version: s.gs.g.Version()}
	s.gs.disk.Unlock()
	s.gs.mu.RUnlock()
	return snap, nil
}

// Persist streams the snapshot to w.
func (p *GraphSnapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	hdr := append(append([]byte{}, snapMagic...), snapFormat)
	hdr = binary.BigEndian.AppendUint64(hdr, p.applied)
	hdr = binary.BigEndian.AppendUint64(hdr, p.version)
	if _, err := bw.Write(hdr); err != nil {
		return fmt.Errorf("chainstore: write snapshot: %w", err)
	}
	var lenBuf [binary.MaxVarintLen64]byte
	written := uint64(0)
	err := eachDecl(p.txn, 0, p.version, func(_ uint64, env []byte) error {
		written++
		n := binary.PutUvarint(lenBuf[:], uint64(len(env)))
		if _, err := bw.Write(lenBuf[:n]); err != nil {
			return err
		}
		_, err := bw.Write(env)
		return err
	})
	if err != nil {
		return fmt.Errorf("chainstore: write snapshot: %w", err)
	}
	// The header promised p.version records: never hand Raft a snapshot
	// that silently holds fewer.
	if written != p.version {
		return fmt.Errorf("chainstore: write snapshot: read %d of the %d declarations of graph version %d (the graph changed under the snapshot)", written, p.version, p.version)
	}
	if err := persistEvidence(bw, p.txn); err != nil {
		return fmt.Errorf("chainstore: write snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("chainstore: write snapshot: %w", err)
	}
	return nil
}

// Release ends the snapshot's read transaction.
func (p *GraphSnapshot) Release() {
	if p.txn != nil {
		p.txn.Discard()
		p.txn = nil
		p.s.life.RUnlock()
	}
}

// Restore replaces the graph with the one in a snapshot stream. It builds the
// new state apart, verifying every declaration, and swaps it in at the end;
// a crash in between leaves a marker that makes the next start restore again.
func (s *Store) Restore(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<16)
	hdr := make([]byte, len(snapMagic)+1+16)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return fmt.Errorf("chainstore: restore: read header: %w", err)
	}
	format := hdr[len(snapMagic)]
	if string(hdr[:len(snapMagic)]) != string(snapMagic) || (format != snapFormat && format != snapFormatV1) {
		return fmt.Errorf("chainstore: restore: not a fednode snapshot of format %d or %d", snapFormatV1, snapFormat)
	}
	applied := binary.BigEndian.Uint64(hdr[len(snapMagic)+1:])
	version := binary.BigEndian.Uint64(hdr[len(snapMagic)+9:])

	// Verify everything before touching the disk. Evidence comes after the
	// declarations in the stream but replays between them, so read all,
	// then apply.
	g := authority.NewGraph()
	accepted := make([]*authority.Signed, 0, min(version, 1<<20))
	var parsed []*authority.Signed
	for v := uint64(1); v <= version; v++ {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("chainstore: restore: record %d: %w", v, err)
		}
		if n > authority.MaxDeclarationSize {
			return fmt.Errorf("chainstore: restore: record %d is %d bytes, over the limit", v, n)
		}
		env := make([]byte, n)
		if _, err := io.ReadFull(br, env); err != nil {
			return fmt.Errorf("chainstore: restore: record %d: %w", v, err)
		}
		sd, err := authority.Parse(env)
		if err != nil {
			return fmt.Errorf("chainstore: restore: record %d of %d does not verify (the snapshot's sender is faulty): %w", v, version, err)
		}
		parsed = append(parsed, sd)
	}
	var evr evidenceReplay
	if format == snapFormat {
		recs, err := readEvidenceSection(br, br, version)
		if err != nil {
			return fmt.Errorf("chainstore: restore: %w", err)
		}
		evr.recs = recs
	}
	for i, sd := range parsed {
		err := evr.due(g)
		if err != nil {
			return fmt.Errorf("chainstore: restore: %w (the snapshot's sender is faulty)", err)
		}
		if err := g.Apply(sd); err != nil {
			return fmt.Errorf("chainstore: restore: record %d of %d does not verify (the snapshot's sender is faulty): %w", i+1, version, err)
		}
		accepted = append(accepted, sd)
	}
	if err := evr.done(g); err != nil {
		return fmt.Errorf("chainstore: restore: %w (the snapshot's sender is faulty)", err)
	}
	// The header counts the records: anything after them means a damaged
	// count or a faulty sender, and restoring would silently shorten the graph.
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("chainstore: restore: bytes after the %d records the header counts (the snapshot's sender is faulty)", version)
		}
		return fmt.Errorf("chainstore: restore: after record %d: %w", version, err)
	}

	s.gs.mu.Lock()
	defer s.gs.mu.Unlock()
	s.gs.disk.Lock()
	defer s.gs.disk.Unlock()
	if err := s.update(func(txn *badger.Txn) error { return txn.Set(keyRestoring, nil) }); err != nil {
		return fmt.Errorf("chainstore: restore: mark: %w", err)
	}
	if err := s.acquire(); err != nil {
		return err
	}
	app, err := tlog.NewAppender(0, nil)
	if err != nil {
		s.life.RUnlock()
		return err
	}
	err = func() error {
		defer s.life.RUnlock()
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		if err := s.deleteGraph(wb); err != nil {
			return err
		}
		for i, sd := range accepted {
			recs, err := allRecords(app, sd, uint64(i)+1)
			if err != nil {
				return err
			}
			for _, kv := range recs {
				if err := wb.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		for i, rec := range evr.recs {
			if err := wb.Set(evidenceKey(uint64(i)+1), rec); err != nil {
				return err
			}
		}
		if err := wb.Set(keyApplied, be64(applied)); err != nil {
			return err
		}
		return wb.Flush()
	}()
	if err != nil {
		// The disk may hold part of either graph now: serve the empty
		// graph and keep the marker, so the next start restores again.
		s.gs.g, s.gs.applied, s.gs.needsRestore, s.gs.ev = authority.NewGraph(), 0, true, evidenceState{}
		s.gs.log, _ = tlog.NewAppender(0, nil)
		return fmt.Errorf("chainstore: restore: write: %w", err)
	}
	if err := s.update(func(txn *badger.Txn) error { return txn.Delete(keyRestoring) }); err != nil {
		return fmt.Errorf("chainstore: restore: unmark: %w", err)
	}
	s.gs.g, s.gs.log, s.gs.applied, s.gs.needsRestore, s.gs.ev, s.gs.synced = g, app, applied, false, evr.state, false
	s.gs.restores++
	return nil
}
