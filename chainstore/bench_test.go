package chainstore

import (
	"bytes"
	"testing"
)

// benchRecords returns n records of 300-byte data starting at first, the
// size of a typical signed declaration command.
func benchRecords(first uint64, n int) []LogRecord {
	recs := make([]LogRecord, n)
	data := bytes.Repeat([]byte{0x5A}, 300)
	for i := range recs {
		recs[i] = LogRecord{Index: first + uint64(i), Term: 1, Type: 0, Data: data, AppendedAt: fixedTime}
	}
	return recs
}

// BenchmarkStoreLogs measures one raft append batch (64 records of 300 B)
// on disk with SyncWrites: one fsync per batch.
func BenchmarkStoreLogs(b *testing.B) {
	s := openDisk(b, b.TempDir())
	defer s.Close()
	const batch = 64
	recs := benchRecords(1, batch)
	b.SetBytes(batch * 300)
	b.ReportAllocs()
	next := uint64(1)
	for b.Loop() {
		for i := range recs {
			recs[i].Index = next + uint64(i)
		}
		next += batch
		if err := s.StoreLogs(recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetLog measures reading one 300-byte record from a 10,000-entry
// on-disk log.
func BenchmarkGetLog(b *testing.B) {
	s := openDisk(b, b.TempDir())
	defer s.Close()
	const n = 10_000
	for first := uint64(1); first <= n; first += 1000 {
		if err := s.StoreLogs(benchRecords(first, 1000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var out LogRecord
	i := uint64(0)
	for b.Loop() {
		if err := s.GetLog(i%n+1, &out); err != nil {
			b.Fatal(err)
		}
		i += 7919 // a prime: spread reads over the log
	}
}
