package chainstore

// Evidence of equivocation is graph state that is not a declaration
// (authority/equivocation.go): the graph keeps it when a committed
// declaration conflicts, validly signed, with the one at its position
// (ApplyDeclarations), or when Raft orders a gossiped pair (ApplyEvidence).
// Replicas must decide alike, so the store persists every proof the graph
// recorded in the same transaction as the Raft index that recorded it, and
// replays it on Open, in a Restore and in a snapshot at the same point
// relative to the declarations: after the first After declarations.
//
//	"e" + uint64 BE n (1-based, recording order) -> evidence record
//
// An evidence record (a wire format: snapshots carry it verbatim) is one
// version byte (evidenceFormat) and the Core Deterministic CBOR array
// [after, envelope A, envelope B]: after is the graph version when the graph
// recorded it, A the declaration the chain holds at that position (if it
// holds either), B the other. Decoding refuses anything that does not
// re-encode to the same bytes, so one proof has one record.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/fxamacker/cbor/v2"

	"github.com/fednode/fednode/authority"
)

const (
	prefixEvidence byte = 'e'
	// evidenceFormat is the first byte of an evidence record.
	evidenceFormat byte = 1
	// MaxEvidenceRecord bounds an evidence record: two declarations and
	// a little CBOR around them.
	MaxEvidenceRecord = 2*authority.MaxDeclarationSize + 64
)

// ErrBadEvidenceRecord: bytes that are not an evidence record (a damaged
// store or a faulty snapshot sender).
var ErrBadEvidenceRecord = errors.New("chainstore: malformed evidence record")

// EvidenceInfo describes one proof of equivocation the agreed graph holds.
type EvidenceInfo struct {
	// N is its place in recording order, from 1.
	N uint64
	// After is the graph version when it was recorded.
	After uint64
	// Authority equivocated at Seq: A is the declaration its chain holds
	// there (if it holds either), B the other one it signed.
	Authority authority.ID
	Seq       uint64
	A, B      authority.ID
}

// evidenceRec is a stored proof: its description and its record bytes.
type evidenceRec struct {
	info EvidenceInfo
	raw  []byte // the evidence record (evidenceFormat + CBOR)
}

// evidenceState is the store's memory of the evidence it persisted.
// Invariant: list holds exactly the records under "e", in order, and at
// holds the (authority, seq) of each: the positions the graph has evidence
// for, since the graph records one proof per position.
type evidenceState struct {
	list []EvidenceInfo
	at   map[evPos]bool
}

type evPos struct {
	a   authority.ID
	seq uint64
}

func (e *evidenceState) has(a authority.ID, seq uint64) bool { return e.at[evPos{a, seq}] }

func (e *evidenceState) add(info EvidenceInfo) {
	if e.at == nil {
		e.at = map[evPos]bool{}
	}
	e.at[evPos{info.Authority, info.Seq}] = true
	e.list = append(e.list, info)
}

func evidenceKey(n uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixEvidence
	binary.BigEndian.PutUint64(k[1:], n)
	return k
}

// evidenceWire is the CBOR body of an evidence record.
type evidenceWire struct {
	_     struct{} `cbor:",toarray"`
	After uint64
	A, B  []byte
}

var (
	evidenceEnc, _ = cbor.CoreDetEncOptions().EncMode()
	evidenceDec, _ = cbor.DecOptions{
		MaxArrayElements: 16,
		MaxNestedLevels:  4,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
	}.DecMode()
)

// encodeEvidence returns the record of a proof recorded after version
// declarations.
func encodeEvidence(after uint64, a, b []byte) []byte {
	body, err := evidenceEnc.Marshal(evidenceWire{After: after, A: a, B: b})
	if err != nil {
		panic(fmt.Sprintf("chainstore: encode evidence: %v", err)) // two byte strings and an integer always encode
	}
	return append([]byte{evidenceFormat}, body...)
}

// decodeEvidence parses an evidence record: its version byte, then the
// canonical CBOR array. It checks the shape only; the envelopes are judged
// by the graph.
func decodeEvidence(rec []byte) (evidenceWire, error) {
	var w evidenceWire
	if len(rec) > MaxEvidenceRecord {
		return w, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrBadEvidenceRecord, len(rec), MaxEvidenceRecord)
	}
	if len(rec) == 0 || rec[0] != evidenceFormat {
		return w, fmt.Errorf("%w: not of format %d", ErrBadEvidenceRecord, evidenceFormat)
	}
	if err := evidenceDec.Unmarshal(rec[1:], &w); err != nil {
		return w, fmt.Errorf("%w: %w", ErrBadEvidenceRecord, err)
	}
	if len(w.A) == 0 || len(w.B) == 0 || len(w.A) > authority.MaxDeclarationSize || len(w.B) > authority.MaxDeclarationSize {
		return w, fmt.Errorf("%w: envelopes of %d and %d bytes, want 1 to %d each", ErrBadEvidenceRecord, len(w.A), len(w.B), authority.MaxDeclarationSize)
	}
	if !bytes.Equal(encodeEvidence(w.After, w.A, w.B), rec) {
		return w, fmt.Errorf("%w: not the canonical encoding", ErrBadEvidenceRecord)
	}
	return w, nil
}

// infoOf describes ev, recorded after version declarations as the n-th.
func infoOf(n, after uint64, ev authority.Evidence) EvidenceInfo {
	return EvidenceInfo{N: n, After: after, Authority: ev.A.Decl.Authority, Seq: ev.A.Decl.Seq, A: ev.A.ID, B: ev.B.ID}
}

// newEvidence returns the record to persist for err, Apply's answer at
// graph version after, if err is an *EquivocationError at a position with
// no evidence yet (neither stored nor among pending, this batch's): exactly
// when the graph recorded it.
func (s *Store) newEvidence(err error, after uint64, pending []evidenceRec) (evidenceRec, bool) {
	var eq *authority.EquivocationError
	if !errors.As(err, &eq) {
		return evidenceRec{}, false
	}
	ev := eq.Evidence
	a, seq := ev.A.Decl.Authority, ev.A.Decl.Seq
	if s.gs.ev.has(a, seq) || slices.ContainsFunc(pending, func(r evidenceRec) bool { return r.info.Authority == a && r.info.Seq == seq }) {
		return evidenceRec{}, false
	}
	n := uint64(len(s.gs.ev.list)+len(pending)) + 1
	return evidenceRec{info: infoOf(n, after, ev), raw: encodeEvidence(after, ev.A.Raw, ev.B.Raw)}, true
}

func putEvidence(set func(k, v []byte) error, recs []evidenceRec) error {
	for _, r := range recs {
		if err := set(evidenceKey(r.info.N), r.raw); err != nil {
			return err
		}
	}
	return nil
}

// ApplyEvidence is the Raft FSM's handler for a proof of equivocation
// committed at index (a gossiped pair that a node ordered): the graph
// checks it (authority.Graph.ApplyEvidence) and, if it records it, the
// store persists it with index in one transaction. A refused pair is
// returned as the graph's error and only index is recorded. An index at or
// below AppliedIndex is skipped and returns nil. Deterministic: every node
// records the same proofs at the same points.
func (s *Store) ApplyEvidence(index uint64, a, b []byte) error {
	s.gs.mu.Lock()
	defer s.gs.mu.Unlock()
	// Writes of the applied index go one at a time, in order (graph.go:
	// lock order graph, disk, lifetime).
	s.gs.disk.Lock()
	defer s.gs.disk.Unlock()
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.life.RUnlock()
	if index <= s.gs.applied {
		return nil
	}
	g := s.gs.g
	ev, refused := g.CheckEvidence(a, b)
	var recs []evidenceRec
	if refused == nil {
		if err := g.ApplyEvidence(a, b); err != nil {
			panic(fmt.Sprintf("chainstore: evidence that CheckEvidence accepted was refused: %v", err))
		}
		n := uint64(len(s.gs.ev.list)) + 1
		recs = []evidenceRec{{info: infoOf(n, g.Version(), ev), raw: encodeEvidence(g.Version(), ev.A.Raw, ev.B.Raw)}}
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := putEvidence(txn.Set, recs); err != nil {
			return err
		}
		return txn.Set(keyApplied, be64(index))
	})
	if err != nil {
		if refused == nil {
			panic(fmt.Sprintf("chainstore: apply evidence at index %d: %v: memory and disk diverged", index, err))
		}
		return fmt.Errorf("chainstore: mark index %d applied: %w", index, err)
	}
	s.gs.applied = index
	for _, r := range recs {
		s.gs.ev.add(r.info)
	}
	return refused
}

// Evidence lists the proofs of equivocation the agreed graph holds, in
// recording order. The caller owns the slice.
func (s *Store) Evidence() []EvidenceInfo {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	return slices.Clone(s.gs.ev.list)
}

// EvidenceCount is len(Evidence()), without the copy.
func (s *Store) EvidenceCount() int {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	return len(s.gs.ev.list)
}

// EvidenceEnvelopes returns the two envelopes of the n-th proof (A, B as
// in EvidenceInfo).
func (s *Store) EvidenceEnvelopes(n uint64) (a, b []byte, err error) {
	err = s.graphView(func(txn *badger.Txn) error {
		item, err := txn.Get(evidenceKey(n))
		if err != nil {
			return err
		}
		rec, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		w, err := decodeEvidence(rec)
		a, b = w.A, w.B
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil, fmt.Errorf("%w: evidence %d", ErrNotFound, n)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("chainstore: read evidence %d: %w", n, err)
	}
	return a, b, nil
}

// readEvidence returns the stored evidence records in order.
func readEvidence(txn *badger.Txn) ([][]byte, error) {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{prefixEvidence}})
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		if n := binary.BigEndian.Uint64(it.Item().Key()[1:]); n != uint64(len(out))+1 {
			return nil, fmt.Errorf("%w: evidence %d where %d was expected", ErrCorrupt, n, len(out)+1)
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// evidenceReplay feeds stored or snapshotted evidence records to a graph
// being rebuilt, each at its point: call due before each declaration and
// once at the end.
type evidenceReplay struct {
	recs  [][]byte
	next  int
	state evidenceState
}

// due applies the records recorded after exactly version declarations (the
// graph's version now), and checks that none was due earlier.
func (r *evidenceReplay) due(g *authority.Graph) error {
	version := g.Version()
	for r.next < len(r.recs) {
		w, err := decodeEvidence(r.recs[r.next])
		if err != nil {
			return fmt.Errorf("evidence %d: %w", r.next+1, err)
		}
		if w.After > version {
			return nil
		}
		if w.After < version {
			return fmt.Errorf("evidence %d was recorded at graph version %d but comes after version %d", r.next+1, w.After, version)
		}
		ev, err := g.CheckEvidence(w.A, w.B)
		if err == nil {
			err = g.ApplyEvidence(w.A, w.B)
		}
		if err != nil {
			return fmt.Errorf("evidence %d (at graph version %d) does not verify: %w", r.next+1, version, err)
		}
		r.next++
		r.state.add(infoOf(uint64(r.next), version, ev))
	}
	return nil
}

// done reports records left over: recorded after more declarations than
// there are.
func (r *evidenceReplay) done(g *authority.Graph) error {
	if err := r.due(g); err != nil {
		return err
	}
	if r.next < len(r.recs) {
		return fmt.Errorf("evidence %d comes after graph version %d, the last", r.next+1, g.Version())
	}
	return nil
}

// Snapshot format 2 adds, after the N declaration records of format 1, the
// evidence section: uvarint E (at most N: one proof per chain position,
// and the positions of a graph of N declarations number N) and E records of
// uvarint length | evidence record, in recording order.

// persistEvidence writes the evidence section of a snapshot from txn.
func persistEvidence(w io.Writer, txn *badger.Txn) error {
	recs, err := readEvidence(txn)
	if err != nil {
		return err
	}
	var buf [binary.MaxVarintLen64]byte
	if _, err := w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(recs)))]); err != nil {
		return err
	}
	for _, rec := range recs {
		if _, err := w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(rec)))]); err != nil {
			return err
		}
		if _, err := w.Write(rec); err != nil {
			return err
		}
	}
	return nil
}

// readEvidenceSection reads the evidence section of a snapshot of version
// declarations.
func readEvidenceSection(r io.ByteReader, full io.Reader, version uint64) ([][]byte, error) {
	e, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("evidence count: %w", err)
	}
	if e > version {
		return nil, fmt.Errorf("%d evidence records in a graph of %d declarations (at most one per chain position)", e, version)
	}
	out := make([][]byte, 0, e)
	for i := uint64(1); i <= e; i++ {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("evidence record %d: %w", i, err)
		}
		if n > MaxEvidenceRecord {
			return nil, fmt.Errorf("evidence record %d is %d bytes, over the limit", i, n)
		}
		rec := make([]byte, n)
		if _, err := io.ReadFull(full, rec); err != nil {
			return nil, fmt.Errorf("evidence record %d: %w", i, err)
		}
		if _, err := decodeEvidence(rec); err != nil {
			return nil, fmt.Errorf("evidence record %d: %w", i, err)
		}
		out = append(out, rec)
	}
	return out, nil
}
