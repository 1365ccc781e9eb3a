package node

import (
	"bytes"
	"testing"
)

// A forward of the most a follower sends in one go decodes at the leader;
// one element over the decoder's bound does not, which is why forwards are
// capped (a follower filled by a burst used to send one that was refused
// every time).
func TestForwardCapFitsTheFrameDecoder(t *testing.T) {
	env := bytes.Repeat([]byte{0xAB}, 300)
	tests := []struct {
		name string
		n    int
		ok   bool
	}{
		{name: "the cap", n: maxForwardCount, ok: true},
		{name: "over the decoder's bound", n: 4097, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := forwardRequest{Envelopes: make([][]byte, tt.n)}
			for i := range req.Envelopes {
				req.Envelopes[i] = env
			}
			var buf bytes.Buffer
			if err := writeFrame(&buf, req); err != nil {
				t.Fatal(err)
			}
			var got forwardRequest
			err := readFrame(&buf, &got)
			if (err == nil) != tt.ok {
				t.Fatalf("read a forward of %d envelopes: %v, want ok %v", tt.n, err, tt.ok)
			}
		})
	}
	if maxForwardBytes+maxForwardCount*16 > maxFrame {
		t.Fatalf("maxForwardBytes %d leaves no room for framing in %d", maxForwardBytes, maxFrame)
	}
}
