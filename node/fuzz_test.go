package node

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fednode/fednode/authority"
)

// frame returns v as one protocol frame.
func frame(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeFrame(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += k
	return k, err
}

func TestReadFrameBounds(t *testing.T) {
	big := make([]byte, 4)
	binary.BigEndian.PutUint32(big, maxFrame+1)
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	ok := frame(t, forwardRequest{Envelopes: [][]byte{[]byte("x")}})
	tests := []struct {
		name    string
		in      []byte
		wantErr string // substring; empty: success
		read    int    // bytes readFrame may consume
	}{
		{name: "over the limit by one", in: append(big, 0xa0), wantErr: "over the", read: 4},
		{name: "4 GiB length", in: huge, wantErr: "over the", read: 4},
		{name: "short header", in: []byte{0, 0}, wantErr: "EOF", read: 2},
		{name: "body shorter than its length", in: []byte{0, 0, 0, 9, 0xa0}, wantErr: "EOF", read: 5},
		{name: "not CBOR", in: []byte{0, 0, 0, 1, 0xff}, wantErr: "malformed message", read: 5},
		{name: "indefinite length refused", in: []byte{0, 0, 0, 2, 0xbf, 0xff}, wantErr: "malformed message", read: 6},
		{name: "a frame and the next", in: append(append([]byte{}, ok...), ok...), read: len(ok)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(tt.in)}
			var v forwardRequest
			err := readFrame(r, &v)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("readFrame: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("readFrame: err = %v, want one containing %q", err, tt.wantErr)
			}
			if r.n > tt.read {
				t.Errorf("readFrame consumed %d bytes, want at most %d", r.n, tt.read)
			}
		})
	}
	// writeFrame refuses what readFrame would refuse.
	if err := writeFrame(io.Discard, forwardRequest{Envelopes: [][]byte{make([]byte, maxFrame)}}); err == nil {
		t.Error("writeFrame sent a frame over maxFrame")
	}
}

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   any
		out  func() any
	}{
		{name: "forward", in: &forwardRequest{Envelopes: [][]byte{[]byte("a"), []byte("bc")}}, out: func() any { return &forwardRequest{} }},
		{name: "forward response", in: &forwardResponse{Accepted: 2, Errors: []string{"node: x"}}, out: func() any { return &forwardResponse{} }},
		{name: "join", in: &joinRequest{PeerID: "12D3Koo", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, Genesis: []byte{1, 2}}, out: func() any { return &joinRequest{} }},
		{name: "join response", in: &joinResponse{OK: true, Leader: "p", Peers: map[string][]string{"p": {"/ip4/127.0.0.1/tcp/1"}}}, out: func() any { return &joinResponse{} }},
		{name: "peers", in: &peersResponse{Peers: map[string][]string{"p": {"a", "b"}}}, out: func() any { return &peersResponse{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.out()
			if err := readFrame(bytes.NewReader(frame(t, tt.in)), out); err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(tt.in)
			b, _ := json.Marshal(out)
			if !bytes.Equal(a, b) {
				t.Errorf("round trip: sent %s, got %s", a, b)
			}
		})
	}
}

// detEnc compares decoded values by a deterministic encoding (writeFrame's
// map order is random, which is harmless: frames are never hashed).
var detEnc, _ = cbor.CoreDetEncOptions().EncMode()

// FuzzReadFrame feeds arbitrary streams to readFrame for every request and
// response type a peer can send us. It must never panic, never consume more
// than its frame, and whatever it accepts must re-encode to a frame that
// decodes to the same value.
func FuzzReadFrame(f *testing.F) {
	f.Add(frame(f, forwardRequest{Envelopes: [][]byte{[]byte("env")}}))
	f.Add(frame(f, joinRequest{PeerID: "12D3KooWxyz", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, Genesis: []byte{0xd2}}))
	f.Add(frame(f, peersResponse{Peers: map[string][]string{"12D3KooWxyz": {"/ip4/127.0.0.1/udp/1/quic-v1"}}}))
	f.Add(frame(f, struct{}{}))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x00, 0x80, 0x00, 0x01})
	f.Add([]byte{0, 0, 0, 3, 0xa1, 0x01, 0x80})
	f.Add([]byte{0, 0, 0, 5, 0xa1, 0x01, 0x9f, 0x40, 0xff})
	f.Add([]byte{0, 0, 0, 4, 0xa1, 0x02, 0xa1, 0x60})
	f.Add([]byte{0, 0, 0, 6, 0xa1, 0x01, 0xd8, 0x18, 0x41, 0x00})
	targets := []struct {
		name string
		new  func() any
	}{
		{"forward", func() any { return &forwardRequest{} }},
		{"join", func() any { return &joinRequest{} }},
		{"peers", func() any { return &peersResponse{} }},
		{"peers request", func() any { return &struct{}{} }},
		{"forward response", func() any { return &forwardResponse{} }},
		{"join response", func() any { return &joinResponse{} }},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tg := range targets {
			r := &countingReader{r: bytes.NewReader(data)}
			v := tg.new()
			err := readFrame(r, v)
			if len(data) >= 4 {
				if n := binary.BigEndian.Uint32(data); n > maxFrame {
					if err == nil {
						t.Fatalf("%s: accepted a %d-byte frame, over maxFrame", tg.name, n)
					}
					if r.n > 4 {
						t.Fatalf("%s: read %d bytes past an over-limit header", tg.name, r.n-4)
					}
					continue
				}
				if max := 4 + int(binary.BigEndian.Uint32(data)); r.n > max {
					t.Fatalf("%s: consumed %d bytes of a %d-byte frame", tg.name, r.n, max)
				}
			}
			if err != nil {
				continue
			}
			b1, err := detEnc.Marshal(v)
			if err != nil {
				t.Fatalf("%s: re-encode %#v: %v", tg.name, v, err)
			}
			v2 := tg.new()
			if err := readFrame(bytes.NewReader(frame(t, v)), v2); err != nil {
				t.Fatalf("%s: a re-encoded frame does not decode: %v", tg.name, err)
			}
			b2, _ := detEnc.Marshal(v2)
			if !bytes.Equal(b1, b2) {
				t.Fatalf("%s: unstable round trip: %x then %x", tg.name, b1, b2)
			}
		}
	})
}

// FuzzDecodeBatch feeds arbitrary Raft command bodies to decodeBatch, as a
// corrupted or hostile log entry would. It must never panic, must honour its
// bounds, and what it accepts must round-trip through encodeBatch.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(nil))
	f.Add(encodeBatch([][]byte{}))
	f.Add(encodeBatch([][]byte{[]byte("one")}))
	f.Add(encodeBatch([][]byte{{}, {0}, bytes.Repeat([]byte{7}, 300)}))
	f.Add([]byte{})
	f.Add([]byte{0x9f, 0x40, 0xff})                   // indefinite array
	f.Add([]byte{0x81, 0x5f, 0x41, 0x00, 0xff})       // indefinite byte string
	f.Add([]byte{0xd8, 0x18, 0x81, 0x40})             // tagged
	f.Add([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff}) // absurd array length
	f.Add([]byte{0x81, 0x60})                         // text, not bytes
	f.Add([]byte{0x81, 0x40, 0x00})                   // trailing byte
	f.Fuzz(func(t *testing.T, body []byte) {
		envs, err := decodeBatch(body)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "node: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		if len(envs) > maxBatchCount*2 {
			t.Fatalf("decoded %d envelopes, over the %d bound", len(envs), maxBatchCount*2)
		}
		again, err := decodeBatch(encodeBatch(envs))
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if len(again) != len(envs) {
			t.Fatalf("round trip: %d envelopes then %d", len(envs), len(again))
		}
		for i := range envs {
			if !bytes.Equal(envs[i], again[i]) {
				t.Fatalf("round trip: envelope %d differs", i)
			}
		}
	})
}

// FuzzVerifyAPI posts arbitrary bodies to the node's API handler, routing
// included, as any local process may. The node is a real one with a small
// graph. It must never panic nor answer 5xx, every answer is JSON, and a 200
// is a decision.
func FuzzVerifyAPI(f *testing.F) {
	n, h := startSingle(f, "aws-prod")
	okta := newOutsider(f, "okta")
	if _, err := n.Submit(f.Context(), okta.gen.Raw); err != nil {
		f.Fatal(err)
	}
	r := rule(f, h.Authority, 1, h.Authority, okta.id(), "s3://logs/*", h.Root)
	if _, err := n.Submit(f.Context(), r.Raw); err != nil {
		f.Fatal(err)
	}
	waitFor(f, waitAgreed, "the rule agreed", agreedAt(r.ID, n))
	handler := n.apiSrv.Handler
	cred := base64.StdEncoding.EncodeToString(credential(f, okta.id(), "alice@okta", okta.root).Raw)
	req := func(c, target, res, act, at string) []byte {
		b, _ := json.Marshal(VerifyRequest{Credential: c, Target: target, Resource: res, Action: act, At: at})
		return b
	}
	f.Add(req(cred, "aws-prod", "s3://logs/x", "read", tJudge.Format(time.RFC3339)))
	f.Add(req(cred, h.Authority.String(), "s3://logs/x", "read", ""))
	f.Add(req(cred, "nobody", "s3://logs/x", "read", ""))
	f.Add(req(cred, "aws-prod", "s3://logs/x", "read", "0000-01-01T00:00:00Z"))
	f.Add(req(cred, "aws-prod", "s3://logs/x", "read", "9999-12-31T23:59:59+23:59"))
	f.Add(req(base64.StdEncoding.EncodeToString(r.Raw), "aws-prod", "x", "read", ""))
	f.Add(req(base64.StdEncoding.EncodeToString(okta.gen.Raw), "okta", "x", "read", ""))
	f.Add(req("", "aws-prod", "x", "read", ""))
	f.Add(req("AAAA", "aws-prod", "x", "read", ""))
	f.Add([]byte(`{"credential":"` + cred + `","target":"aws-prod","resource":"s3://logs/x","action":"read"} trailing`))
	f.Add([]byte(`{"credential":null,"target":1}`))
	f.Add([]byte(`{"at":"2026-01-01T00:00:00.999999999999Z"}`))
	f.Add([]byte(`[`))
	f.Add([]byte(`"\ud800"`))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		rq := httptest.NewRequest(http.MethodPost, "/v1/verify", bytes.NewReader(body))
		rq.Header.Set("Content-Type", "application/json")
		handler.ServeHTTP(rec, rq)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		switch rec.Code {
		case http.StatusOK:
			var d authority.Decision
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
				t.Fatalf("200 without a decision: %v: %s", err, rec.Body.Bytes())
			}
			if (d.Outcome != "allow" && d.Outcome != "deny") || d.Reason == "" || d.Chain == nil {
				t.Fatalf("incomplete decision: %s", rec.Body.Bytes())
			}
			if d.Outcome == "allow" && d.Reason != authority.ReasonOK {
				t.Fatalf("allow with reason %s", d.Reason)
			}
		case http.StatusBadRequest:
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("400 without a JSON error: %s", rec.Body.Bytes())
			}
		default:
			t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body.Bytes())
		}
	})
}

// TestReadFrameAllocatesWhatArrives: a 4-byte header announcing maxFrame
// must not cost maxFrame bytes of memory before the body arrives, or any
// peer that opens a stream amplifies 4 bytes into 8 MiB per stream.
func TestReadFrameAllocatesWhatArrives(t *testing.T) {
	hdr := make([]byte, 5)
	binary.BigEndian.PutUint32(hdr, maxFrame)
	const rounds = 8
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		var v forwardRequest
		if err := readFrame(bytes.NewReader(hdr), &v); err == nil {
			t.Fatal("readFrame accepted a truncated frame")
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / rounds; per > maxFrame/8 {
		t.Fatalf("readFrame allocated %d bytes for a 5-byte input announcing %d", per, maxFrame)
	}
}
