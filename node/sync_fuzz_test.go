package node

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// FuzzSyncFrames feeds arbitrary bytes to the sync protocol's frame reader
// (both messages): it must never panic, must respect its bounds, and what
// it accepts must encode and decode back to the same message.
func FuzzSyncFrames(f *testing.F) {
	seed := func(v any) {
		b, err := cbor.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(syncRequest{Version: 3, After: 1, Heads: []syncHead{{Authority: bytes.Repeat([]byte{7}, 32), Seq: 2}}})
	seed(syncRequest{})
	seed(syncResponse{From: 1, Agreed: [][]byte{{1, 2}}, Checkpoint: []byte("note"), Pending: [][]byte{{3}}, More: true, Version: 9})
	seed(syncResponse{Error: "sync: nope"})
	f.Add([]byte{0xa1, 0x01, 0x9f})                   // indefinite array
	f.Add([]byte{0xa2, 0x01, 0x00, 0x01, 0x00})       // duplicate key
	f.Add([]byte{0xa1, 0x18, 0x63, 0x00})             // unknown field 99
	f.Add([]byte{0xa1, 0x02, 0x9a, 0xff, 0xff, 0xff}) // huge array header
	f.Fuzz(func(t *testing.T, b []byte) {
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
		frame = append(frame, b...)
		var req syncRequest
		if err := readSyncFrame(bytes.NewReader(frame), &req); err == nil {
			if len(req.Heads) > MaxSyncHeads {
				t.Fatalf("accepted %d heads, over MaxSyncHeads", len(req.Heads))
			}
			again, err := cbor.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			var back syncRequest
			if err := decodeSyncFrame(again, &back); err != nil {
				t.Fatalf("re-encoded request does not decode: %v", err)
			}
		}
		var resp syncResponse
		if err := readSyncFrame(bytes.NewReader(frame), &resp); err == nil {
			again, err := cbor.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			var back syncResponse
			if err := decodeSyncFrame(again, &back); err != nil {
				t.Fatalf("re-encoded response does not decode: %v", err)
			}
		}
		// A header announcing more than the bound is refused before reading.
		big := binary.BigEndian.AppendUint32(nil, maxSyncFrame+1)
		if err := readSyncFrame(bytes.NewReader(append(big, b...)), &req); err == nil {
			t.Fatal("accepted a frame over maxSyncFrame")
		}
	})
}
