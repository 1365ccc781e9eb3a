package chainstore

import (
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// fixedTime is the AppendedAt of test records: tests never read the clock.
var fixedTime = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// testLogger sends logs to t.Log, so only failing tests are noisy.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newMemStore opens an in-memory store closed at the end of the test.
func newMemStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open("", Options{InMemory: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open in-memory: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openDisk opens an on-disk store in dir; the caller closes it.
func openDisk(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open %s: %v", dir, err)
	}
	return s
}

// testRecord is a record whose every field depends on index.
func testRecord(index uint64) LogRecord {
	return LogRecord{
		Index:      index,
		Term:       index/10 + 1,
		Type:       uint8(index % 7),
		Data:       fmt.Appendf(nil, "data-%d", index),
		Extensions: fmt.Appendf(nil, "ext-%d", index),
		AppendedAt: fixedTime.Add(time.Duration(index) * time.Millisecond),
	}
}

func testRecords(first, last uint64) []LogRecord {
	recs := make([]LogRecord, 0, last-first+1)
	for i := first; i <= last; i++ {
		recs = append(recs, testRecord(i))
	}
	return recs
}

func mustStoreLogs(t testing.TB, s *Store, recs []LogRecord) {
	t.Helper()
	if err := s.StoreLogs(recs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

func wantBounds(t testing.TB, s *Store, first, last uint64) {
	t.Helper()
	gotFirst, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	gotLast, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if gotFirst != first || gotLast != last {
		t.Fatalf("bounds = %d..%d, want %d..%d", gotFirst, gotLast, first, last)
	}
}
