package tlog_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fednode/fednode/tlog"
)

// goldenRoot is the bytes 0x00..0x1f.
func goldenRoot() []byte {
	r := make([]byte, tlog.HashSize)
	for i := range r {
		r[i] = byte(i)
	}
	return r
}

var golden = tlog.Checkpoint{Origin: "fednode/example-consortium", Size: 20852163, Root: goldenRoot()}

const goldenBody = "fednode/example-consortium\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"

func TestCheckpointGolden(t *testing.T) {
	if got := string(golden.Marshal()); got != goldenBody {
		t.Errorf("Marshal =\n%q\nwant\n%q", got, goldenBody)
	}
	c, err := tlog.ParseCheckpoint([]byte(goldenBody))
	if err != nil {
		t.Fatal(err)
	}
	if c.Origin != golden.Origin || c.Size != golden.Size || !bytes.Equal(c.Root, golden.Root) {
		t.Errorf("ParseCheckpoint = %v, want %v", c, golden)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    tlog.Checkpoint
	}{
		{name: "empty tree", c: tlog.Checkpoint{Origin: tlog.Origin("c"), Size: 0, Root: tlog.EmptyRoot()}},
		{name: "one leaf", c: tlog.Checkpoint{Origin: tlog.Origin("c"), Size: 1, Root: tlog.LeafHash([]byte("a"))}},
		{name: "largest size", c: tlog.Checkpoint{Origin: "fednode/x", Size: ^uint64(0), Root: goldenRoot()}},
		{name: "longest origin", c: tlog.Checkpoint{Origin: "fednode/" + strings.Repeat("o", tlog.MaxOriginLen-8), Size: 7, Root: goldenRoot()}},
		{name: "unicode origin", c: tlog.Checkpoint{Origin: "fednode/défense", Size: 7, Root: goldenRoot()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.c.Marshal()
			c, err := tlog.ParseCheckpoint(b)
			if err != nil {
				t.Fatalf("ParseCheckpoint(%q): %v", b, err)
			}
			if c.Origin != tt.c.Origin || c.Size != tt.c.Size || !bytes.Equal(c.Root, tt.c.Root) {
				t.Errorf("round trip = %v, want %v", c, tt.c)
			}
			if again := c.Marshal(); !bytes.Equal(again, b) {
				t.Errorf("re-marshal = %q, want %q", again, b)
			}
		})
	}
}

func TestParseCheckpointRefuses(t *testing.T) {
	const (
		o    = "fednode/example-consortium\n"
		s    = "20852163\n"
		r    = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
		root = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	)
	tests := []struct {
		name string
		body string
	}{
		{name: "empty", body: ""},
		{name: "missing final newline", body: o + s + root},
		{name: "missing root line", body: o + s},
		{name: "missing origin line", body: s + r},
		{name: "extension line", body: o + s + r + "graph-version 20852163\n"},
		{name: "empty extension line", body: o + s + r + "\n"},
		{name: "blank line before root", body: o + s + "\n" + r},
		{name: "empty origin", body: "\n" + s + r},
		{name: "origin with a space", body: "fednode/a b\n" + s + r},
		{name: "origin with a plus", body: "fednode/a+b\n" + s + r},
		{name: "origin with a tab", body: "fednode/a\tb\n" + s + r},
		{name: "origin with a no-break space", body: "fednode/a\u00a0b\n" + s + r},
		{name: "origin not UTF-8", body: "fednode/\xff\n" + s + r},
		{name: "origin too long", body: "fednode/" + strings.Repeat("o", tlog.MaxOriginLen-7) + "\n" + s + r},
		{name: "CRLF line ends", body: "fednode/example-consortium\r\n20852163\r\n" + root + "\r\n"},
		{name: "empty size", body: o + "\n" + r},
		{name: "leading zero", body: o + "020852163\n" + r},
		{name: "zero written twice", body: o + "00\n" + r},
		{name: "plus sign", body: o + "+20852163\n" + r},
		{name: "minus sign", body: o + "-1\n" + r},
		{name: "hex size", body: o + "0x10\n" + r},
		{name: "underscore in size", body: o + "20_852_163\n" + r},
		{name: "space after size", body: o + "20852163 \n" + r},
		{name: "size over uint64", body: o + "18446744073709551616\n" + r},
		{name: "size of 21 digits", body: o + "100000000000000000000\n" + r},
		{name: "bad base64", body: o + s + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh*=\n"},
		{name: "URL base64", body: o + s + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh_=\n"},
		{name: "unpadded base64", body: o + s + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n"},
		{name: "non-canonical padding bits", body: o + s + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n"},
		{name: "root with a CR inside", body: o + s + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh\r8=\n"},
		{name: "root of 31 bytes", body: o + s + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n"},
		{name: "root of 33 bytes", body: o + s + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n"},
		{name: "root with a space", body: o + s + " " + r},
		{name: "signed note instead of body", body: o + s + r + "\n— aws inOXKQ6J0af0xaL/fgkKvou8slWGhKN0CBiFD+jds3ZfH87eIy7avAIywuuuTCPHvHwgdPTj9qBKTZ82mR3hfvc6aQE=\n"},
		{name: "over the size limit", body: strings.Repeat("a", tlog.MaxCheckpointSize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := tlog.ParseCheckpoint([]byte(tt.body)); !errors.Is(err, tlog.ErrMalformed) {
				t.Errorf("ParseCheckpoint(%q) = %v, %v; want ErrMalformed", tt.body, c, err)
			}
		})
	}
}

func TestOrigin(t *testing.T) {
	tests := []struct {
		name, logName, want string
	}{
		{name: "plain", logName: "example-consortium", want: "fednode/example-consortium"},
		{name: "plus escaped", logName: "a+b", want: "fednode/a%2Bb"},
		{name: "space escaped", logName: "a b", want: "fednode/a%20b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tlog.Origin(tt.logName); got != tt.want {
				t.Errorf("Origin(%q) = %q, want %q", tt.logName, got, tt.want)
			}
		})
	}
}

func TestSplitView(t *testing.T) {
	other := bytes.Repeat([]byte{9}, tlog.HashSize)
	tests := []struct {
		name string
		b    tlog.Checkpoint
		want bool
	}{
		{name: "same checkpoint", b: golden, want: false},
		{name: "same size, other root", b: tlog.Checkpoint{Origin: golden.Origin, Size: golden.Size, Root: other}, want: true},
		{name: "other size", b: tlog.Checkpoint{Origin: golden.Origin, Size: golden.Size + 1, Root: other}, want: false},
		{name: "other log", b: tlog.Checkpoint{Origin: "fednode/other", Size: golden.Size, Root: other}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tlog.SplitView(golden, tt.b); got != tt.want {
				t.Errorf("SplitView = %v, want %v", got, tt.want)
			}
			if got := tlog.SplitView(tt.b, golden); got != tt.want {
				t.Errorf("SplitView reversed = %v, want %v", got, tt.want)
			}
		})
	}
}
