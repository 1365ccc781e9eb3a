package chainstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fednode/fednode/authority"
)

// equivocatedAt is what the store's view says of a's equivocation mark.
func equivocatedAt(s *Store, a authority.ID) uint64 {
	var at uint64
	s.View(func(v authority.View) {
		if info, ok := v.Authority(a); ok {
			at = info.EquivocatedAt
		}
	})
	return at
}

// evidenceWorld: A and B's geneses, B's rule at seq 1, a second rule B
// signed at seq 1 (the fork), and B's rule at seq 2 with a fork of its own
// (x2, y2: neither in the chain when the pair is ordered).
type evidenceWorld struct {
	sc           *scenario
	b            *gchain
	r1, fork1    *authority.Signed
	x2, y2       *authority.Signed
	rotation     *authority.Signed
	newKey       *authority.PrivateKey
	afterRotate  *authority.Signed
	universe     []authority.ID
	declarations [][]byte
}

func newEvidenceWorld(t tfatal) *evidenceWorld {
	t.Helper()
	a, b := newGChain(t, "alpha", seedAlpha), newGChain(t, "beta", seedBeta)
	w := &evidenceWorld{b: b}
	w.sc = &scenario{a: a, b: b, genA: a.genesis, genB: b.genesis}
	w.r1 = b.rule(t, a.id())
	w.fork1 = b.ruleAt(t, 1, b.genesis.ID, a.id(), b.key)
	w.x2 = b.ruleAt(t, 2, w.r1.ID, a.id(), b.key)
	w.y2 = b.ruleAt(t, 2, w.r1.ID, a.id(), b.key)
	b.head, b.headID = 2, w.x2.ID
	w.newKey = graphKey(t, seedGamma)
	w.rotation = mustSignDecl(t, authority.Declaration{
		Kind: authority.KindRotation, Authority: b.id(), Seq: 3, Prev: w.x2.ID, IssuedAt: graphIssuedAt,
		Rotation: &authority.Rotation{RootKeys: []authority.PublicKey{w.newKey.Public()}, Threshold: 1},
	}, b.key)
	b.head, b.headID, b.key = 3, w.rotation.ID, w.newKey
	w.afterRotate = b.rule(t, a.id())
	w.universe = idsOf(a.genesis, b.genesis, w.r1, w.fork1, w.x2, w.y2, w.rotation, w.afterRotate)
	return w
}

// apply runs the world's history on s: the fork of seq 1 committed as a
// declaration (index 11), the pair at seq 2 ordered as evidence before x2
// (index 12, 13), then the rotation and a rule under the new key (14).
func (w *evidenceWorld) apply(t testing.TB, s *Store) {
	t.Helper()
	mustApply(t, s, 10, envs(w.sc.genA, w.sc.genB, w.r1))
	errs := s.ApplyDeclarations(11, envs(w.fork1))
	if !errors.Is(errs[0], authority.ErrEquivocation) {
		t.Fatalf("fork at seq 1: %v, want equivocation", errs[0])
	}
	if got := equivocatedAt(s, w.b.id()); got != 1 {
		t.Fatalf("EquivocatedAt = %d after the fork, want 1", got)
	}
	if err := s.ApplyEvidence(12, w.x2.Raw, w.y2.Raw); err != nil {
		t.Fatalf("ApplyEvidence at the head's next position: %v", err)
	}
	mustApply(t, s, 13, envs(w.x2))
	mustApply(t, s, 14, envs(w.rotation, w.afterRotate))
	if got := equivocatedAt(s, w.b.id()); got != 0 {
		t.Fatalf("EquivocatedAt = %d after the rotation, want 0", got)
	}
}

func (w *evidenceWorld) wantEvidence(t *testing.T, s *Store) {
	t.Helper()
	want := []EvidenceInfo{
		{N: 1, After: 3, Authority: w.b.id(), Seq: 1, A: w.r1.ID, B: w.fork1.ID},
		{N: 2, After: 3, Authority: w.b.id(), Seq: 2, A: w.x2.ID, B: w.y2.ID},
	}
	if got := s.Evidence(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Evidence() = %+v\nwant %+v", got, want)
	}
	a, b, err := s.EvidenceEnvelopes(2)
	if err != nil || !bytes.Equal(a, w.x2.Raw) || !bytes.Equal(b, w.y2.Raw) {
		t.Fatalf("EvidenceEnvelopes(2) = %d, %d bytes, %v; want x2, y2", len(a), len(b), err)
	}
	if _, _, err := s.EvidenceEnvelopes(3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("EvidenceEnvelopes(3) = %v, want ErrNotFound", err)
	}
	var kept int
	s.View(func(v authority.View) { kept = len(v.(*authority.Graph).Equivocations(w.b.id())) })
	if kept != 2 {
		t.Fatalf("the graph keeps %d proofs, want 2", kept)
	}
}

// TestEvidencePersists: proofs the graph recorded, from a committed fork and
// from an ordered pair, survive a restart, replayed at their point: the
// pair at seq 2 came before x2 was applied, so replaying it after all
// declarations would be judged differently (and before them is a gap).
func TestEvidencePersists(t *testing.T) {
	w := newEvidenceWorld(t)
	dir := t.TempDir()
	s := openDisk(t, dir)
	w.apply(t, s)
	w.wantEvidence(t, s)
	before := dumpStore(t, s, w.universe)

	// The same fork again, and the pair again: no new proof.
	if errs := s.ApplyDeclarations(15, envs(w.fork1)); !errors.Is(errs[0], authority.ErrEquivocation) {
		t.Fatalf("fork again: %v", errs[0])
	}
	if err := s.ApplyEvidence(16, w.y2.Raw, w.x2.Raw); !errors.Is(err, authority.ErrDuplicate) {
		t.Fatalf("pair again: %v, want ErrDuplicate", err)
	}
	if s.AppliedIndex() != 16 {
		t.Fatalf("AppliedIndex = %d after a refused pair, want 16", s.AppliedIndex())
	}
	w.wantEvidence(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openDisk(t, dir)
	defer s.Close()
	w.wantEvidence(t, s)
	before.Applied = 16
	wantSameDump(t, "after restart", dumpStore(t, s, w.universe), before)
	if got := equivocatedAt(s, w.b.id()); got != 0 {
		t.Fatalf("EquivocatedAt = %d after restart, want 0", got)
	}
}

// TestApplyEvidenceRefusals: a pair that proves nothing changes nothing but
// the applied index, and a replayed index is skipped.
func TestApplyEvidenceRefusals(t *testing.T) {
	w := newEvidenceWorld(t)
	tests := []struct {
		name string
		a, b []byte
		want error
	}{
		{name: "the same declaration twice", a: w.r1.Raw, b: w.r1.Raw, want: authority.ErrNotEvidence},
		{name: "two positions", a: w.r1.Raw, b: w.x2.Raw, want: authority.ErrNotEvidence},
		{name: "garbage", a: w.r1.Raw, b: []byte{0xd2}, want: authority.ErrMalformed},
		{name: "forged half", a: w.r1.Raw, b: mustSignDecl(t, w.fork1.Decl, graphKey(t, seedStranger)).Raw, want: authority.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMemStore(t)
			mustApply(t, s, 10, envs(w.sc.genA, w.sc.genB, w.r1))
			before := dumpStore(t, s, w.universe)
			if err := s.ApplyEvidence(11, tt.a, tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("ApplyEvidence = %v, want %v", err, tt.want)
			}
			before.Applied = 11
			wantSameDump(t, "after a refused pair", dumpStore(t, s, w.universe), before)
			if len(s.Evidence()) != 0 || equivocatedAt(s, w.b.id()) != 0 {
				t.Fatal("a refused pair left evidence")
			}
			if err := s.ApplyEvidence(11, w.r1.Raw, w.fork1.Raw); err != nil || len(s.Evidence()) != 0 {
				t.Fatalf("a replayed index was applied: %v, %d proofs", err, len(s.Evidence()))
			}
		})
	}
}

// TestSnapshotCarriesEvidence: a snapshot restores the evidence at its
// point, and a restored store snapshots to the same bytes.
func TestSnapshotCarriesEvidence(t *testing.T) {
	w := newEvidenceWorld(t)
	src := newMemStore(t)
	w.apply(t, src)
	snap := snapshotBytes(t, src)
	if snap[7] != snapFormat {
		t.Fatalf("format byte %d, want %d", snap[7], snapFormat)
	}
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			dst := kind.open(t)
			mustRestore(t, dst, snap)
			w.wantEvidence(t, dst)
			wantSameDump(t, "restored", dumpStore(t, dst, w.universe), dumpStore(t, src, w.universe))
			if again := snapshotBytes(t, dst); !bytes.Equal(again, snap) {
				t.Fatal("the restored store snapshots to other bytes")
			}
		})
	}

	// A faulty sender's evidence is refused when it proves nothing or
	// cannot be at its point. (Dropping a proof cannot be told from a graph
	// that never had it: Raft's snapshot integrity covers that.)
	second := encodeEvidence(3, w.x2.Raw, w.y2.Raw)
	at := bytes.LastIndex(snap, second)
	edit := func(f func(b []byte)) []byte { b := bytes.Clone(snap); f(b); return b }
	first := encodeEvidence(3, w.r1.Raw, w.fork1.Raw)
	var lenBuf [binary.MaxVarintLen64]byte
	countAt := bytes.Index(snap, first) - binary.PutUvarint(lenBuf[:], uint64(len(first))) - 1
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{name: "evidence before its point", b: edit(func(b []byte) { copy(b[at:], encodeEvidence(2, w.x2.Raw, w.y2.Raw)) })},
		{name: "evidence of nothing", b: edit(func(b []byte) { copy(b[at:], encodeEvidence(3, w.x2.Raw, w.x2.Raw)) })},
		{name: "count over the records", b: edit(func(b []byte) { b[countAt] = 3 })},
		{name: "count over the graph version", b: edit(func(b []byte) { b[countAt] = 7 })},
		{name: "evidence in a format-1 stream", b: edit(func(b []byte) { b[7] = snapFormatV1 })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if snap[countAt] != 2 {
				t.Fatalf("the evidence count is not where the test expects it")
			}
			dst := newMemStore(t)
			err := dst.Restore(bytes.NewReader(tt.b))
			if err == nil {
				t.Fatalf("Restore accepted it: %d proofs", len(dst.Evidence()))
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "chainstore: restore: ") || dst.Version() != 0 || len(dst.Evidence()) != 0 {
				t.Fatalf("Restore = %v, version %d", err, dst.Version())
			}
		})
	}
}

// formatV1 turns a format-2 snapshot without evidence into what a node of
// the previous version sends: format byte 1, no evidence section.
func formatV1(t tfatal, snap []byte) []byte {
	t.Helper()
	if snap[len(snap)-1] != 0 {
		t.Fatalf("the snapshot has evidence")
	}
	v1 := bytes.Clone(snap[:len(snap)-1])
	v1[7] = snapFormatV1
	return v1
}

func TestRestoreFormat1(t *testing.T) {
	sc := newScenario(t)
	src := newMemStore(t)
	mustApply(t, src, 4, sc.batch())
	snap := snapshotBytes(t, src)
	dst := newMemStore(t)
	mustRestore(t, dst, formatV1(t, snap))
	wantSameDump(t, "restored from format 1", dumpStore(t, dst, idsOf(sc.signed()...)), dumpStore(t, src, idsOf(sc.signed()...)))
	if again := snapshotBytes(t, dst); !bytes.Equal(again, snap) {
		t.Fatal("a store restored from format 1 does not persist as format 2")
	}
}

func TestDecodeEvidence(t *testing.T) {
	w := newEvidenceWorld(t)
	good := encodeEvidence(7, w.r1.Raw, w.fork1.Raw)
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{name: "good", b: good, ok: true},
		{name: "empty", b: nil},
		{name: "unknown format", b: append([]byte{2}, good[1:]...)},
		{name: "truncated", b: good[:len(good)-1]},
		{name: "trailing byte", b: append(bytes.Clone(good), 0)},
		{name: "non-canonical after (two-byte 7)", b: append([]byte{1, 0x83, 0x18, 7}, good[3:]...)},
		{name: "empty envelope", b: encodeEvidence(7, nil, w.fork1.Raw)},
		{name: "four elements", b: append([]byte{1, 0x84}, append(bytes.Clone(good[2:]), 0x00)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := decodeEvidence(tt.b)
			if (err == nil) != tt.ok {
				t.Fatalf("decodeEvidence = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadEvidenceRecord) {
				t.Fatalf("error %v is not ErrBadEvidenceRecord", err)
			}
			if tt.ok && (rec.After != 7 || !bytes.Equal(rec.A, w.r1.Raw) || !bytes.Equal(rec.B, w.fork1.Raw)) {
				t.Fatalf("decoded %+v", rec)
			}
		})
	}
}

// FuzzDecodeEvidence: evidence records come from disk and from snapshots
// other nodes send. The decoder never panics, and accepts only the one
// encoding of what it returns.
func FuzzDecodeEvidence(f *testing.F) {
	w := newEvidenceWorld(f)
	f.Add(encodeEvidence(3, w.r1.Raw, w.fork1.Raw))
	f.Add(encodeEvidence(0, []byte{1}, []byte{2}))
	f.Add([]byte{1, 0x83, 0x00, 0x41, 0x01, 0x41, 0x02})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeEvidence(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeEvidence(rec.After, rec.A, rec.B), b) {
			t.Fatalf("accepted a non-canonical record %x", b)
		}
	})
}

// BenchmarkApplyEvidence: what judging a proof costs a validator (two
// signature checks under the store's read lock) and decoding its record.
func BenchmarkApplyEvidence(b *testing.B) {
	w := newEvidenceWorld(b)
	s := newMemStore(b)
	mustApply(b, s, 1, envs(w.sc.genA, w.sc.genB, w.r1))
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			var err error
			s.View(func(v authority.View) { _, err = v.(*authority.Graph).CheckEvidence(w.r1.Raw, w.fork1.Raw) })
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-record", func(b *testing.B) {
		rec := encodeEvidence(3, w.r1.Raw, w.fork1.Raw)
		for b.Loop() {
			if _, err := decodeEvidence(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
