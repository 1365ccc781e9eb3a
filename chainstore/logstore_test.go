package chainstore

import (
	"bytes"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"pgregory.net/rapid"
)

func TestLogStoreEmpty(t *testing.T) {
	s := newMemStore(t)
	wantBounds(t, s, 0, 0)
	var out LogRecord
	if err := s.GetLog(1, &out); err != ErrLogNotFound {
		t.Fatalf("GetLog(1) on empty store = %v, want ErrLogNotFound itself", err)
	}
}

func TestLogRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  LogRecord
	}{
		{name: "all fields", rec: LogRecord{Index: 1, Term: 7, Type: 3, Data: []byte("hello"), Extensions: []byte("ext"), AppendedAt: fixedTime}},
		{name: "nil slices", rec: LogRecord{Index: 2, Term: 1, Type: 0, AppendedAt: fixedTime}},
		{name: "empty slices", rec: LogRecord{Index: 3, Term: 1, Data: []byte{}, Extensions: []byte{}, AppendedAt: fixedTime}},
		{name: "zero time", rec: LogRecord{Index: 4, Term: 1, Data: []byte("x")}},
		{name: "extreme values", rec: LogRecord{Index: ^uint64(0), Term: ^uint64(0), Type: 255, Data: []byte{0}, AppendedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{name: "pre-1970 time", rec: LogRecord{Index: 5, Term: 1, AppendedAt: time.Date(1901, 1, 1, 0, 0, 0, 1, time.UTC)}},
		// The largest record accepted: exactly MaxLogRecordSize encoded
		// (3-byte data length, 1-byte nil extensions).
		{name: "largest data", rec: LogRecord{Index: 6, Term: 2, Data: bytes.Repeat([]byte{0xAB}, MaxLogRecordSize-logRecordFixed-3-1), AppendedAt: fixedTime}},
	}
	s := newMemStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := len(encodeLogRecord(&tt.rec)); n > MaxLogRecordSize {
				t.Fatalf("test record encodes to %d bytes, over the limit", n)
			}
			mustStoreLogs(t, s, []LogRecord{tt.rec})
			var got LogRecord
			if err := s.GetLog(tt.rec.Index, &got); err != nil {
				t.Fatalf("GetLog: %v", err)
			}
			if !reflect.DeepEqual(got, tt.rec) {
				t.Fatalf("GetLog = %+v\nwant %+v", summary(got), summary(tt.rec))
			}
		})
	}
}

// summary keeps failure messages short when Data is large.
func summary(r LogRecord) LogRecord {
	if len(r.Data) > 64 {
		r.Data = r.Data[:64]
	}
	return r
}

func TestAppendedAtOtherZone(t *testing.T) {
	s := newMemStore(t)
	zone := time.FixedZone("UTC+5", 5*3600)
	rec := LogRecord{Index: 1, Term: 1, AppendedAt: fixedTime.In(zone)}
	mustStoreLogs(t, s, []LogRecord{rec})
	var got LogRecord
	if err := s.GetLog(1, &got); err != nil {
		t.Fatalf("GetLog: %v", err)
	}
	if !got.AppendedAt.Equal(rec.AppendedAt) {
		t.Fatalf("AppendedAt = %v, want the instant %v", got.AppendedAt, rec.AppendedAt)
	}
}

func TestGetLogMissing(t *testing.T) {
	s := newMemStore(t)
	mustStoreLogs(t, s, testRecords(10, 20))
	mustStoreLogs(t, s, testRecords(30, 40))
	tests := []struct {
		name  string
		index uint64
	}{
		{name: "zero", index: 0},
		{name: "below first", index: 9},
		{name: "in gap", index: 25},
		{name: "above last", index: 41},
		{name: "max", index: ^uint64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out LogRecord
			// == on purpose: raft compares its sentinel with ==.
			if err := s.GetLog(tt.index, &out); err != ErrLogNotFound {
				t.Fatalf("GetLog(%d) = %v, want ErrLogNotFound itself", tt.index, err)
			}
		})
	}
}

func TestStoreLogsOverwrite(t *testing.T) {
	s := newMemStore(t)
	mustStoreLogs(t, s, testRecords(1, 3))
	replaced := LogRecord{Index: 2, Term: 99, Data: []byte("new"), AppendedAt: fixedTime}
	mustStoreLogs(t, s, []LogRecord{replaced})
	var got LogRecord
	if err := s.GetLog(2, &got); err != nil {
		t.Fatalf("GetLog: %v", err)
	}
	if !reflect.DeepEqual(got, replaced) {
		t.Fatalf("GetLog(2) = %+v, want %+v", got, replaced)
	}
	wantBounds(t, s, 1, 3)
}

func TestStoreLogsEmptyBatch(t *testing.T) {
	s := newMemStore(t)
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil) = %v", err)
	}
	wantBounds(t, s, 0, 0)
}

func TestDeleteRange(t *testing.T) {
	tests := []struct {
		name      string
		del       [2]uint64 // min, max
		wantFirst uint64
		wantLast  uint64
		gone      []uint64
		kept      []uint64
	}{
		{name: "inclusive middle", del: [2]uint64{3, 5}, wantFirst: 1, wantLast: 10, gone: []uint64{3, 4, 5}, kept: []uint64{1, 2, 6, 10}},
		{name: "prefix", del: [2]uint64{1, 4}, wantFirst: 5, wantLast: 10, gone: []uint64{1, 4}, kept: []uint64{5, 10}},
		{name: "suffix", del: [2]uint64{7, 10}, wantFirst: 1, wantLast: 6, gone: []uint64{7, 10}, kept: []uint64{1, 6}},
		{name: "single", del: [2]uint64{10, 10}, wantFirst: 1, wantLast: 9, gone: []uint64{10}, kept: []uint64{9}},
		{name: "all", del: [2]uint64{1, 10}, wantFirst: 0, wantLast: 0, gone: []uint64{1, 10}},
		{name: "wider than log", del: [2]uint64{0, ^uint64(0)}, wantFirst: 0, wantLast: 0, gone: []uint64{1, 10}},
		{name: "outside log", del: [2]uint64{11, 20}, wantFirst: 1, wantLast: 10, kept: []uint64{1, 10}},
		{name: "min above max", del: [2]uint64{5, 4}, wantFirst: 1, wantLast: 10, kept: []uint64{4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMemStore(t)
			mustStoreLogs(t, s, testRecords(1, 10))
			if err := s.DeleteRange(tt.del[0], tt.del[1]); err != nil {
				t.Fatalf("DeleteRange(%d, %d): %v", tt.del[0], tt.del[1], err)
			}
			wantBounds(t, s, tt.wantFirst, tt.wantLast)
			var out LogRecord
			for _, i := range tt.gone {
				if err := s.GetLog(i, &out); err != ErrLogNotFound {
					t.Errorf("GetLog(%d) after delete = %v, want ErrLogNotFound", i, err)
				}
			}
			for _, i := range tt.kept {
				if err := s.GetLog(i, &out); err != nil {
					t.Errorf("GetLog(%d) = %v, want it kept", i, err)
				}
			}
		})
	}
}

// TestLargeLog stores 100,000 entries in one call and deletes them in one
// call: both exceed one badger transaction.
func TestLargeLog(t *testing.T) {
	const n = 100_000
	s := newMemStore(t)
	recs := make([]LogRecord, n)
	for i := range recs {
		recs[i] = LogRecord{Index: uint64(i + 1), Term: 1, Data: []byte("0123456789abcdef"), AppendedAt: fixedTime}
	}
	mustStoreLogs(t, s, recs)
	wantBounds(t, s, 1, n)

	// Compaction of all but the last ten, as raft does after a snapshot.
	if err := s.DeleteRange(1, n-10); err != nil {
		t.Fatalf("DeleteRange(1, %d): %v", n-10, err)
	}
	wantBounds(t, s, n-9, n)
	var out LogRecord
	if err := s.GetLog(n-10, &out); err != ErrLogNotFound {
		t.Fatalf("GetLog(%d) = %v, want ErrLogNotFound", n-10, err)
	}
	if err := s.GetLog(n-9, &out); err != nil {
		t.Fatalf("GetLog(%d) = %v", n-9, err)
	}
	if err := s.DeleteRange(n-9, n); err != nil {
		t.Fatalf("DeleteRange rest: %v", err)
	}
	wantBounds(t, s, 0, 0)
}

// TestWriteOrderedSplits checks that a write set too big for one badger
// transaction is committed in order, in several transactions.
func TestWriteOrderedSplits(t *testing.T) {
	s := newMemStore(t)
	// 4 MiB in all, over badger's batch limit (15% of the memtable).
	const n = 2000
	val := encodeLogRecord(&LogRecord{Term: 1, Data: make([]byte, 2048)})
	ops := make([]writeOp, n)
	for i := range ops {
		ops[i] = writeOp{key: logKey(uint64(i + 1)), val: val}
	}
	var commits [][2]int
	if err := s.writeOrdered(ops, func(lo, hi int) { commits = append(commits, [2]int{lo, hi}) }); err != nil {
		t.Fatalf("writeOrdered: %v", err)
	}
	if len(commits) < 2 {
		t.Fatalf("%d ops committed in %d transaction(s); want a split (raise n if badger's limits grew)", n, len(commits))
	}
	next := 0
	for _, c := range commits {
		if c[0] != next || c[1] <= c[0] {
			t.Fatalf("commits %v are not contiguous and ordered", commits)
		}
		next = c[1]
	}
	if next != n {
		t.Fatalf("commits %v end at %d, want %d", commits, next, n)
	}
}

func TestStoreLogsTooLarge(t *testing.T) {
	s := newMemStore(t)
	recs := testRecords(1, 3)
	recs[1].Data = make([]byte, MaxLogRecordSize)
	err := s.StoreLogs(recs)
	if !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("StoreLogs(oversized) = %v, want ErrRecordTooLarge", err)
	}
	if len(err.Error()) > 200 {
		t.Fatalf("error is %d bytes long, want a sentence: %.200s", len(err.Error()), err)
	}
	// Nothing of the batch was written.
	wantBounds(t, s, 0, 0)
}

// TestBoundsIgnoreOtherNamespaces puts keys on both sides of "L" and checks
// that the seeks stay inside the log's namespace, also when recomputed as
// at Open.
func TestBoundsIgnoreOtherNamespaces(t *testing.T) {
	s := newMemStore(t)
	others := [][]byte{{'A'}, {'K', 0xFF, 0xFF}, {'M'}, {'P', 'x'}, {'S', 'y'}, {'a'}, {'d', 1}, {'m'}, {0xFF}}
	if err := s.update(func(txn *badger.Txn) error {
		for _, k := range others {
			if err := txn.Set(k, []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("seed other namespaces: %v", err)
	}
	if err := s.loadBounds(); err != nil {
		t.Fatalf("loadBounds: %v", err)
	}
	wantBounds(t, s, 0, 0)
	mustStoreLogs(t, s, testRecords(5, 8))
	if err := s.loadBounds(); err != nil {
		t.Fatalf("loadBounds: %v", err)
	}
	wantBounds(t, s, 5, 8)
	if err := s.DeleteRange(0, ^uint64(0)); err != nil {
		t.Fatalf("DeleteRange all: %v", err)
	}
	wantBounds(t, s, 0, 0)
	if err := s.view(func(txn *badger.Txn) error {
		for _, k := range others {
			if _, err := txn.Get(k); err != nil {
				t.Errorf("key %q outside the log: %v", k, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestGetLogCorrupt(t *testing.T) {
	s := newMemStore(t)
	if err := s.update(func(txn *badger.Txn) error { return txn.Set(logKey(1), []byte{9, 9, 9}) }); err != nil {
		t.Fatal(err)
	}
	var out LogRecord
	err := s.GetLog(1, &out)
	if !errors.Is(err, ErrCorrupt) || err == ErrLogNotFound {
		t.Fatalf("GetLog(corrupt) = %v, want ErrCorrupt", err)
	}
}

func TestDecodeLogRecordCorrupt(t *testing.T) {
	good := encodeLogRecord(&LogRecord{Term: 1, Data: []byte("abc"), Extensions: []byte("de"), AppendedAt: fixedTime})
	badNsec := bytes.Clone(good)
	badNsec[appendedAtOffset+8] = 0xFF
	badVersion := bytes.Clone(good)
	badVersion[0] = 2
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "empty", in: nil},
		{name: "short header", in: good[:logRecordFixed-1]},
		{name: "unknown version", in: badVersion},
		{name: "nanoseconds out of range", in: badNsec},
		{name: "missing extensions", in: good[:logRecordFixed+4]},
		{name: "truncated data", in: good[:logRecordFixed+2]},
		{name: "trailing byte", in: append(bytes.Clone(good), 0)},
		{name: "overlong length", in: append(bytes.Clone(good[:logRecordFixed]), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeLogRecord(tt.in); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeLogRecord = %v, want ErrCorrupt", err)
			}
		})
	}
}

func FuzzDecodeLogRecord(f *testing.F) {
	f.Add(encodeLogRecord(&LogRecord{Term: 3, Type: 1, Data: []byte("data"), Extensions: []byte{}, AppendedAt: fixedTime}))
	f.Add(encodeLogRecord(&LogRecord{}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := decodeLogRecord(in)
		if err != nil {
			return
		}
		again, err := decodeLogRecord(encodeLogRecord(&r))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the record: %+v, then %+v", r, again)
		}
	})
}

// TestLogStoreModel runs random appends and deletes against the store and a
// map, and checks that the bounds agree after each step and the contents at
// the end.
func TestLogStoreModel(t *testing.T) {
	s := newMemStore(t)
	rapid.Check(t, func(rt *rapid.T) {
		if err := s.DeleteRange(0, ^uint64(0)); err != nil {
			rt.Fatalf("reset: %v", err)
		}
		model := map[uint64]LogRecord{}
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for range steps {
			if rapid.Bool().Draw(rt, "store") {
				first := rapid.Uint64Range(1, 60).Draw(rt, "first")
				n := rapid.Uint64Range(1, 10).Draw(rt, "n")
				recs := testRecords(first, first+n-1)
				if err := s.StoreLogs(recs); err != nil {
					rt.Fatalf("StoreLogs: %v", err)
				}
				for _, r := range recs {
					model[r.Index] = r
				}
			} else {
				lo := rapid.Uint64Range(0, 75).Draw(rt, "min")
				hi := rapid.Uint64Range(0, 75).Draw(rt, "max")
				if err := s.DeleteRange(lo, hi); err != nil {
					rt.Fatalf("DeleteRange: %v", err)
				}
				for i := lo; i <= hi; i++ {
					delete(model, i)
				}
			}
			var wantFirst, wantLast uint64
			for i := range model {
				if wantFirst == 0 || i < wantFirst {
					wantFirst = i
				}
				wantLast = max(wantLast, i)
			}
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if first != wantFirst || last != wantLast {
				rt.Fatalf("bounds %d..%d, model %d..%d", first, last, wantFirst, wantLast)
			}
		}
		for i := uint64(0); i <= 76; i++ {
			var got LogRecord
			err := s.GetLog(i, &got)
			want, ok := model[i]
			switch {
			case !ok && err != ErrLogNotFound:
				rt.Fatalf("GetLog(%d) = %v, model has none", i, err)
			case ok && err != nil:
				rt.Fatalf("GetLog(%d) = %v, model has it", i, err)
			case ok && !reflect.DeepEqual(got, want):
				rt.Fatalf("GetLog(%d) = %+v, model %+v", i, got, want)
			}
		}
	})
}

// TestConcurrentAppendRead checks that the cached last index is never
// ahead of what a reader can get.
func TestConcurrentAppendRead(t *testing.T) {
	s := newMemStore(t)
	const batches, batchSize = 100, 8
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for b := range uint64(batches) {
			if err := s.StoreLogs(testRecords(b*batchSize+1, (b+1)*batchSize)); err != nil {
				t.Errorf("StoreLogs: %v", err)
				return
			}
		}
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				last, err := s.LastIndex()
				if err != nil {
					t.Errorf("LastIndex: %v", err)
					return
				}
				if last == 0 {
					continue
				}
				var out LogRecord
				if err := s.GetLog(last, &out); err != nil {
					t.Errorf("GetLog(LastIndex()=%d) = %v", last, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	wantBounds(t, s, 1, batches*batchSize)
}
