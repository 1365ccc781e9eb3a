package consensus

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

func TestCommandEncoding(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		wire []byte
	}{
		{name: "type and body", cmd: Command{Type: 7, Body: []byte("abc")}, wire: []byte{7, 'a', 'b', 'c'}},
		{name: "empty body", cmd: Command{Type: 255}, wire: []byte{255}},
		{name: "zero command", cmd: Command{}, wire: []byte{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.cmd.Encode()
			if !bytes.Equal(got, tt.wire) {
				t.Fatalf("Encode = %x, want %x", got, tt.wire)
			}
			back, err := DecodeCommand(got)
			if err != nil {
				t.Fatalf("DecodeCommand: %v", err)
			}
			if back.Type != tt.cmd.Type || !bytes.Equal(back.Body, tt.cmd.Body) {
				t.Fatalf("round trip = %+v, want %+v", back, tt.cmd)
			}
		})
	}
	if _, err := DecodeCommand(nil); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("DecodeCommand(nil) = %v, want ErrBadCommand", err)
	}
}

func TestFSMApply(t *testing.T) {
	const (
		typeRecord  CommandType = 1
		typePanic   CommandType = 2
		typeForgets CommandType = 3
	)
	newFSM := func() (*FSM, *MemState) {
		st := NewMemState()
		st.MarkApplied(10)
		f := NewFSM(st)
		f.Register(typeRecord, "record", st.Handler(typeRecord))
		f.Register(typePanic, "panics", func(uint64, []byte) any { panic("boom") })
		f.Register(typeForgets, "forgets", func(uint64, []byte) any { return nil })
		return f, st
	}
	tests := []struct {
		name        string
		log         raft.Log
		wantErr     error // nil: the handler's result, the index
		wantApplied uint64
		wantEntries int
	}{
		{name: "dispatches", log: raft.Log{Index: 11, Type: raft.LogCommand, Data: []byte{1, 'x'}}, wantApplied: 11, wantEntries: 1},
		{name: "replay is skipped", log: raft.Log{Index: 10, Type: raft.LogCommand, Data: []byte{1, 'x'}}, wantErr: ErrAlreadyApplied, wantApplied: 10},
		{name: "unknown type is marked applied", log: raft.Log{Index: 12, Type: raft.LogCommand, Data: []byte{9}}, wantErr: ErrUnknownCommand, wantApplied: 12},
		{name: "empty entry is marked applied", log: raft.Log{Index: 12, Type: raft.LogCommand}, wantErr: ErrUnknownCommand, wantApplied: 12},
		{name: "zero type is unknown", log: raft.Log{Index: 12, Type: raft.LogCommand, Data: []byte{0, 'x'}}, wantErr: ErrUnknownCommand, wantApplied: 12},
		{name: "handler panic is contained", log: raft.Log{Index: 13, Type: raft.LogCommand, Data: []byte{2}}, wantErr: ErrHandlerPanic, wantApplied: 13},
		{name: "handler that records nothing", log: raft.Log{Index: 14, Type: raft.LogCommand, Data: []byte{3}}, wantErr: ErrNotRecorded, wantApplied: 10},
		{name: "non-command entry is ignored", log: raft.Log{Index: 15, Type: raft.LogNoop, Data: []byte{1, 'x'}}, wantApplied: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, st := newFSM()
			res := f.Apply(&tt.log)
			if tt.wantErr != nil {
				err, _ := res.(error)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Apply = %v, want %v", res, tt.wantErr)
				}
			} else if tt.log.Type == raft.LogCommand && res != tt.log.Index {
				t.Fatalf("Apply = %v, want the index %d", res, tt.log.Index)
			}
			if got := st.AppliedIndex(); got != tt.wantApplied {
				t.Fatalf("applied index %d, want %d", got, tt.wantApplied)
			}
			if got := len(st.Entries()); got != tt.wantEntries {
				t.Fatalf("%d entries, want %d", got, tt.wantEntries)
			}
		})
	}
}

func TestFSMRegisterPanics(t *testing.T) {
	h := func(uint64, []byte) any { return nil }
	tests := []struct {
		name string
		do   func(f *FSM)
	}{
		{name: "duplicate type", do: func(f *FSM) { f.Register(1, "a", h); f.Register(1, "b", h) }},
		{name: "reserved type 0", do: func(f *FSM) { f.Register(0, "zero", h) }},
		{name: "nil handler", do: func(f *FSM) { f.Register(1, "nil", nil) }},
		{name: "after start", do: func(f *FSM) { f.start(testLogger(t)); f.Register(1, "late", h) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.do(NewFSM(NewMemState()))
		})
	}
}

func TestMemStateSnapshotRoundTrip(t *testing.T) {
	src := NewMemState()
	for i, body := range []string{"a", "", "ccc"} {
		if err := src.Record(uint64(2*i+1), CommandType(i+1), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	src.MarkApplied(9)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Applies after the snapshot must not leak into it.
	if err := src.Record(10, 1, []byte("late")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst := NewMemState()
	dst.Record(50, 1, []byte("old"))
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if dst.AppliedIndex() != 9 || dst.Restores() != 1 {
		t.Fatalf("applied %d, restores %d; want 9, 1", dst.AppliedIndex(), dst.Restores())
	}
	got, want := dst.Entries(), src.Entries()[:3]
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Index != want[i].Index || got[i].Type != want[i].Type || !bytes.Equal(got[i].Body, want[i].Body) {
			t.Fatalf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	good := buf.Bytes()
	bad := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "bad magic", data: append([]byte("XXXX"), good[4:]...)},
		{name: "truncated", data: good[:len(good)-2]},
		{name: "huge count", data: append(append([]byte{}, good[:13]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			st := NewMemState()
			if err := st.Restore(bytes.NewReader(tt.data)); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot", err)
			}
			if st.Restores() != 0 {
				t.Fatal("a failed restore counted")
			}
		})
	}
}
