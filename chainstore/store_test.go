package chainstore

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestLargestRecordIsAtLimit(t *testing.T) {
	r := LogRecord{Data: make([]byte, MaxLogRecordSize-logRecordFixed-3-1)}
	if n := len(encodeLogRecord(&r)); n != MaxLogRecordSize {
		t.Fatalf("record encodes to %d bytes, want exactly %d so TestLogRoundTrip covers the limit", n, MaxLogRecordSize)
	}
}

func TestOpenBadDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "regular-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want string // in the error
	}{
		{name: "path is a regular file", dir: file, want: file},
		{name: "parent is a regular file", dir: filepath.Join(file, "sub"), want: filepath.Join(file, "sub")},
		{name: "empty path", dir: "", want: "empty directory path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.dir, Options{Logger: testLogger(t)})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.dir)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "chainstore: ") {
				t.Fatalf("Open(%q) error %q does not name %q", tt.dir, err, tt.want)
			}
		})
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	defer s.Close()
	s2, err := Open(dir, Options{Logger: testLogger(t)})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of an open store succeeded")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q does not name the directory and say it is in use", err)
	}
}

func TestCloseIdempotentAndErrClosed(t *testing.T) {
	s, err := Open("", Options{InMemory: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var out LogRecord
	tests := []struct {
		name string
		call func() error
	}{
		{name: "FirstIndex", call: func() error { _, err := s.FirstIndex(); return err }},
		{name: "LastIndex", call: func() error { _, err := s.LastIndex(); return err }},
		{name: "GetLog", call: func() error { return s.GetLog(1, &out) }},
		{name: "StoreLogs", call: func() error { return s.StoreLogs(testRecords(1, 1)) }},
		{name: "DeleteRange", call: func() error { return s.DeleteRange(1, 2) }},
		{name: "Set", call: func() error { return s.Set([]byte("k"), []byte("v")) }},
		{name: "Get", call: func() error { _, err := s.Get([]byte("k")); return err }},
		{name: "SetUint64", call: func() error { return s.SetUint64([]byte("k"), 1) }},
		{name: "GetUint64", call: func() error { _, err := s.GetUint64([]byte("k")); return err }},
		{name: "SavePeer", call: func() error { return s.SavePeer("p", nil) }},
		{name: "Peers", call: func() error { _, err := s.Peers(); return err }},
		{name: "ForgetPeer", call: func() error { return s.ForgetPeer("p") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrClosed) {
				t.Fatalf("%s after Close = %v, want ErrClosed", tt.name, err)
			}
		})
	}
}

// TestCloseDuringUse closes the store while writers and readers run: each
// call must either succeed or return ErrClosed, never panic.
func TestCloseDuringUse(t *testing.T) {
	s, err := Open("", Options{InMemory: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ready := make(chan struct{})
	var readyOnce sync.Once
	markReady := func() { readyOnce.Do(func() { close(ready) }) }
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w == 0 {
				defer markReady() // also if it fails early
			}
			for i := uint64(1); ; i++ {
				if w == 0 && i == 50 {
					markReady()
				}
				var err error
				switch w {
				case 0:
					err = s.StoreLogs(testRecords(i, i))
				case 1:
					var out LogRecord
					if err = s.GetLog(i/2+1, &out); err == ErrLogNotFound {
						err = nil
					}
				case 2:
					err = s.SetUint64([]byte("CurrentTerm"), i)
				case 3:
					_, err = s.Peers()
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		}()
	}
	// Let the workers get going before closing.
	<-ready
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
}

func TestDurability(t *testing.T) {
	dir := t.TempDir()
	recs := testRecords(1, 500)
	peers := map[string][]string{
		"12D3KooWA": {"/ip4/127.0.0.1/tcp/4001"},
		"12D3KooWB": {"/ip4/127.0.0.1/tcp/4002", "/ip4/127.0.0.1/udp/4002/quic-v1"},
	}

	s := openDisk(t, dir)
	mustStoreLogs(t, s, recs)
	if err := s.DeleteRange(1, 99); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("12D3KooWA")); err != nil {
		t.Fatal(err)
	}
	for id, addrs := range peers {
		if err := s.SavePeer(id, addrs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openDisk(t, dir)
	defer s.Close()
	wantBounds(t, s, 100, 500)
	for _, want := range recs[99:] {
		var got LogRecord
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatalf("GetLog(%d) after reopen: %v", want.Index, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("GetLog(%d) after reopen = %+v, want %+v", want.Index, got, want)
		}
	}
	var out LogRecord
	if err := s.GetLog(99, &out); err != ErrLogNotFound {
		t.Fatalf("GetLog(99) after reopen = %v, want ErrLogNotFound", err)
	}
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("CurrentTerm after reopen = (%d, %v), want 7", term, err)
	}
	if cand, err := s.Get([]byte("LastVoteCand")); err != nil || !bytes.Equal(cand, []byte("12D3KooWA")) {
		t.Fatalf("LastVoteCand after reopen = (%q, %v)", cand, err)
	}
	got, err := s.Peers()
	if err != nil || !reflect.DeepEqual(got, peers) {
		t.Fatalf("Peers after reopen = (%v, %v), want %v", got, err, peers)
	}
	if s.peerCount != len(peers) {
		t.Fatalf("peerCount after reopen = %d, want %d", s.peerCount, len(peers))
	}
}

func TestRunGC(t *testing.T) {
	s := openDisk(t, t.TempDir())
	defer s.Close()
	mustStoreLogs(t, s, testRecords(1, 100))
	if err := s.DeleteRange(1, 100); err != nil {
		t.Fatal(err)
	}
	// A fresh store has a single value-log file, the one being written,
	// which GC never rewrites: the pass must end at once, quietly.
	if n := s.runGC(); n != 0 {
		t.Fatalf("runGC rewrote %d files of a fresh store", n)
	}
}

func TestBadgerLoggerLevels(t *testing.T) {
	tests := []struct {
		name string
		log  func(badgerLogger)
		want string
	}{
		{name: "error", log: func(b badgerLogger) { b.Errorf("disk %s\n", "full") }, want: "level=ERROR msg=\"disk full\""},
		{name: "warning", log: func(b badgerLogger) { b.Warningf("slow %d", 3) }, want: "level=WARN msg=\"slow 3\""},
		{name: "info is debug", log: func(b badgerLogger) { b.Infof("compaction") }, want: "level=DEBUG msg=compaction"},
		{name: "debug", log: func(b badgerLogger) { b.Debugf("detail") }, want: "level=DEBUG msg=detail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level:       slog.LevelDebug,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
			}))
			tt.log(badgerLogger{l: l})
			got := strings.TrimSpace(buf.String())
			if got != tt.want+" component=badger" {
				t.Fatalf("logged %q, want %q", got, tt.want+" component=badger")
			}
		})
	}
	// Below the handler's level nothing is formatted or written.
	var buf bytes.Buffer
	quiet := badgerLogger{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	quiet.Infof("chatty")
	if buf.Len() != 0 {
		t.Fatalf("Infof reached an Info handler: %q", buf.String())
	}
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
