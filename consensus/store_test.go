package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/fednode/fednode/chainstore"
)

func TestRaftLogAdapter(t *testing.T) {
	st, err := chainstore.Open("", chainstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := raftLog{st}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("cfg"), AppendedAt: at},
		{Index: 2, Term: 2, Type: raft.LogCommand, Data: []byte{1, 'x'}, Extensions: []byte("ext"), AppendedAt: at},
		{Index: 3, Term: 2, Type: raft.LogBarrier, AppendedAt: at},
	}
	if err := l.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := l.StoreLog(&raft.Log{Index: 4, Term: 2, Type: raft.LogNoop, AppendedAt: at}); err != nil {
		t.Fatal(err)
	}
	for _, want := range logs {
		var got raft.Log
		if err := l.GetLog(want.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", want.Index, err)
		}
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
		}
	}
	if err := l.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	if first != 3 || last != 4 {
		t.Fatalf("bounds %d-%d, want 3-4", first, last)
	}
	// raft compares with ==: the adapter must return the sentinel itself.
	var got raft.Log
	if err := l.GetLog(1, &got); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog of a deleted index = %v, want raft.ErrLogNotFound unwrapped", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	st, err := chainstore.Open("", chainstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ln := NewLoopbackNetwork()
	good := func() Config {
		return Config{Network: ln.Member("n1"), Log: st, Stable: st, FSM: NewFSM(NewMemState()), SnapshotDir: t.TempDir(), Logger: testLogger(t)}
	}
	tests := []struct {
		name  string
		spoil func(*Config)
	}{
		{name: "no network", spoil: func(c *Config) { c.Network = nil }},
		{name: "no log", spoil: func(c *Config) { c.Log = nil }},
		{name: "no stable", spoil: func(c *Config) { c.Stable = nil }},
		{name: "no fsm", spoil: func(c *Config) { c.FSM = nil }},
		{name: "no snapshot dir", spoil: func(c *Config) { c.SnapshotDir = "" }},
		{name: "empty local id", spoil: func(c *Config) { c.Network = ln.Member("") }},
		{name: "state not the fsm's", spoil: func(c *Config) { c.State = NewMemState() }},
		{name: "lease above heartbeat", spoil: func(c *Config) { c.LeaderLeaseTimeout = time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.spoil(&cfg)
			r, err := New(cfg)
			if !errors.Is(err, ErrBadConfig) {
				if r != nil {
					r.Shutdown()
				}
				t.Fatalf("New = %v, want ErrBadConfig", err)
			}
		})
	}
}

func TestHCLogAdapter(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level
		log   func(l hclog.Logger)
		want  []string // substrings of the output; nil: no output
	}{
		{name: "key values become attributes", level: slog.LevelInfo,
			log:  func(l hclog.Logger) { l.Info("elected", "term", 3, "id", "n1") },
			want: []string{`msg="raft: elected"`, "term=3", "id=n1"}},
		{name: "below level is dropped", level: slog.LevelWarn,
			log: func(l hclog.Logger) { l.Info("chatty") }},
		{name: "odd args and Fmt", level: slog.LevelInfo,
			log:  func(l hclog.Logger) { l.Warn("w", "servers", hclog.Fmt("%d+%d", 1, 2), "dangling") },
			want: []string{"servers=1+2", "extra=dangling", "level=WARN"}},
		{name: "named and with", level: slog.LevelDebug,
			log:  func(l hclog.Logger) { l.Named("snapshot").With("k", "v").Debug("d") },
			want: []string{`msg="raft.snapshot: d"`, "k=v", "level=DEBUG"}},
		{name: "closed connection is not a warning", level: slog.LevelWarn,
			log: func(l hclog.Logger) {
				l.Error("failed to decode incoming command", "error", fmt.Errorf("read: %w", net.ErrClosed))
			}},
		{name: "standard logger", level: slog.LevelInfo,
			log:  func(l hclog.Logger) { l.StandardLogger(nil).Print("line") },
			want: []string{`msg="raft: line"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			sl := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			tt.log(newHCLog(sl, tt.level))
			out := buf.String()
			if tt.want == nil && out != "" {
				t.Fatalf("output %q, want none", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output %q lacks %q", out, w)
				}
			}
		})
	}
}

// consensus is the only package that imports raft, and it must not import
// libp2p or badger itself.
func TestForbiddenImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(path, "libp2p") || strings.Contains(path, "badger") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
