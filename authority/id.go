package authority

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// IDSize is the length of a declaration ID: a SHA-256 digest.
const IDSize = sha256.Size

// ID identifies a declaration: the SHA-256 of its encoded COSE envelope. An
// authority is identified by the ID of its genesis declaration.
type ID [IDSize]byte

// IDOf returns the ID of an encoded envelope.
func IDOf(envelope []byte) ID { return sha256.Sum256(envelope) }

// IsZero reports whether id is the zero ID (no declaration).
func (id ID) IsZero() bool { return id == ID{} }

// String returns the lowercase hex form used in the API, the CLI and logs.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits, for narratives meant for people.
func (id ID) Short() string { return hex.EncodeToString(id[:6]) }

// MarshalText implements encoding.TextMarshaler (JSON renders IDs as hex).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseID parses the 64-hex-digit form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("authority: id %q: want %d hex digits, got %d", abbrev(s), 2*IDSize, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("authority: id %q: %w", abbrev(s), err)
	}
	return id, nil
}

func abbrev(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
