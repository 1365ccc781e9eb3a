package tlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on checkpoints and notes: everything here may come from an
// untrusted peer, so sizes are checked before any parsing or signature work.
const (
	// OriginPrefix starts every fednode origin.
	OriginPrefix = "fednode/"
	// MaxOriginLen bounds the origin line (C2SP tlog-cosignature's limit).
	MaxOriginLen = 255
	// MaxCheckpointSize bounds a checkpoint body: the longest origin, the
	// 20 digits of the largest uint64, a 44-character root, three newlines.
	MaxCheckpointSize = MaxOriginLen + 20 + 44 + 3
	// MaxSignatures bounds the signature lines of a note: x/mod's note.Open
	// refuses more, and the C2SP spec asks verifiers to accept at least 16
	// (a consortium's members plus its witnesses fit).
	MaxSignatures = 100
	// MaxKeyNameLen bounds a key name (KeyName of an authority name of
	// authority.MaxNameLen bytes is at most 3 times that).
	MaxKeyNameLen = 512
	// MaxNoteSize bounds a whole signed note: the body plus MaxSignatures
	// lines, with room for post-quantum signatures later.
	MaxNoteSize = 256 << 10
)

// ErrMalformed: a checkpoint body or signed note that is not exactly the
// format (see the package doc), or too large.
var ErrMalformed = errors.New("malformed checkpoint")

// Checkpoint is a signed tree head's content: which log, how many leaves,
// what root.
//
// Invariant (of every Checkpoint ParseCheckpoint returns, and required by
// SignCheckpoint): Origin is a valid origin (see Origin), len(Root) ==
// HashSize.
type Checkpoint struct {
	Origin string
	Size   uint64 // number of leaves: the graph version
	Root   []byte
}

// Origin is the checkpoint origin of the fednode log named logName (the
// consortium's name): OriginPrefix + KeyName(logName), so that any name gives
// an origin without spaces or '+'.
func Origin(logName string) string { return OriginPrefix + KeyName(logName) }

// Marshal returns the note body: origin, size, root, each on its own line.
// It writes whatever c holds; SignCheckpoint checks c first.
func (c Checkpoint) Marshal() []byte {
	b := make([]byte, 0, len(c.Origin)+20+base64.StdEncoding.EncodedLen(len(c.Root))+3)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Root)
	return append(b, '\n')
}

// String is the checkpoint for logs: origin, size and root in hex.
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s@%d:%x", c.Origin, c.Size, c.Root)
}

// check is what SignCheckpoint requires of c.
func (c Checkpoint) check() error {
	if err := checkOrigin(c.Origin); err != nil {
		return err
	}
	if len(c.Root) != HashSize {
		return fmt.Errorf("%w: root is %d bytes, want %d", ErrMalformed, len(c.Root), HashSize)
	}
	return nil
}

// ParseCheckpoint parses a note body strictly: exactly three lines, each
// ending in a newline, an origin without spaces, '+' or control characters,
// a decimal size without sign or leading zeros, and the padded standard
// base64 of a HashSize-byte root. Extension lines are refused: fednode
// writes none (see the package doc). It does not check any signature; that
// is OpenCheckpoint.
func ParseCheckpoint(body []byte) (Checkpoint, error) {
	c, err := parseCheckpoint(body)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: %w", err)
	}
	return c, nil
}

// parseCheckpoint is ParseCheckpoint with errors not yet prefixed.
func parseCheckpoint(body []byte) (Checkpoint, error) {
	var c Checkpoint
	if len(body) > MaxCheckpointSize {
		return c, fmt.Errorf("%w: body is %d bytes, over the %d-byte limit", ErrMalformed, len(body), MaxCheckpointSize)
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return c, fmt.Errorf("%w: body must end in a newline", ErrMalformed)
	}
	lines := strings.Split(string(body[:len(body)-1]), "\n")
	if len(lines) != 3 {
		return c, fmt.Errorf("%w: want exactly 3 lines (origin, size, root hash), got %d; fednode checkpoints have no extension lines", ErrMalformed, len(lines))
	}
	if err := checkOrigin(lines[0]); err != nil {
		return c, err
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return c, err
	}
	root, err := parseRoot(lines[2])
	if err != nil {
		return c, err
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

func checkOrigin(s string) error {
	if s == "" || len(s) > MaxOriginLen {
		return fmt.Errorf("%w: origin must be 1 to %d bytes, got %d", ErrMalformed, MaxOriginLen, len(s))
	}
	if !validName(s) {
		return fmt.Errorf("%w: origin %q must be UTF-8 without spaces, '+' or control characters", ErrMalformed, s)
	}
	return nil
}

// validName reports whether s can be a note key name or origin: valid
// UTF-8 with no Unicode space, no '+' and no control character.
func validName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '+' }) < 0
}

func parseSize(s string) (uint64, error) {
	if s == "" || len(s) > 20 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%w: size %q is not a decimal number", ErrMalformed, abbrev(s))
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%w: size %q has a leading zero", ErrMalformed, s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: size %q is over 2^64-1", ErrMalformed, s)
	}
	return n, nil
}

func parseRoot(s string) ([]byte, error) {
	if want := base64.StdEncoding.EncodedLen(HashSize); len(s) != want {
		return nil, fmt.Errorf("%w: root hash line is %d characters, want %d (base64 of %d bytes)", ErrMalformed, len(s), want, HashSize)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(s)
	// The decoder skips CR and LF even in strict mode: the re-encoding must
	// give back the line, so there is one text per root.
	if err != nil || len(root) != HashSize || base64.StdEncoding.EncodeToString(root) != s {
		return nil, fmt.Errorf("%w: root hash %q is not the padded standard base64 of %d bytes", ErrMalformed, abbrev(s), HashSize)
	}
	return root, nil
}

// abbrev shortens untrusted text quoted in an error.
func abbrev(s string) string {
	const n = 48
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// SplitView reports whether a and b are a split view: checkpoints of the
// same log at the same size with different roots. Both cannot be right, since
// every replica computes the same root for the same graph version; so some
// replica diverged or some signer equivocated. (Checkpoints at different
// sizes conflict too if no consistency proof links them; that needs the
// proof, see VerifyConsistency.)
func SplitView(a, b Checkpoint) bool {
	return a.Origin == b.Origin && a.Size == b.Size && !bytes.Equal(a.Root, b.Root)
}
