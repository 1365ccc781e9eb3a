package bundle

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxCanonDepth bounds the nesting a bundle's CBOR may have: the payload's
// proofs (map, array, array, byte string) are the deepest.
const maxCanonDepth = 4

// checkCanonical checks that b is exactly one CBOR data item in the Core
// Deterministic encoding (RFC 8949 §4.2.1) of the kinds this format uses,
// and returns the keys of its top-level map. It is how Open checks the
// outer structure and the payload without re-encoding megabytes: every head
// is the shortest for its argument; lengths are definite; maps have
// unsigned integer keys in strictly increasing order (so no duplicates, and
// no text key that a decoder might match to a field); there are no tags,
// floats or simple values (false, true, null, undefined), which the format
// never uses. With the strict decoder's type checks and the callers' check
// of which keys are present, that leaves one encoding per value.
func checkCanonical(b []byte) ([]uint64, error) {
	c := canonChecker{b: b}
	keys, err := c.item(0)
	if errors.Is(err, errTruncated) {
		return nil, fmt.Errorf("%w at byte %d", err, c.off)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoCanon, err)
	}
	if c.off != len(b) {
		return nil, fmt.Errorf("%d bytes of trailing data after the item", len(b)-c.off)
	}
	return keys, nil
}

var errTruncated = errors.New("truncated, or not CBOR")

type canonChecker struct {
	b   []byte
	off int
}

func (c *canonChecker) rest() uint64 { return uint64(len(c.b) - c.off) }

// head reads the initial byte and argument of an item at c.off.
func (c *canonChecker) head() (major byte, arg uint64, err error) {
	if c.off >= len(c.b) {
		return 0, 0, errTruncated
	}
	at := c.off
	ib := c.b[c.off]
	c.off++
	major, ai := ib>>5, ib&0x1f
	var n int
	var min uint64
	switch {
	case ai < 24:
		return major, uint64(ai), nil
	case ai == 24:
		n, min = 1, 24
	case ai == 25:
		n, min = 2, 1<<8
	case ai == 26:
		n, min = 4, 1<<16
	case ai == 27:
		n, min = 8, 1<<32
	default:
		return 0, 0, fmt.Errorf("indefinite length or reserved value at byte %d", at)
	}
	if c.rest() < uint64(n) {
		return 0, 0, errTruncated
	}
	var buf [8]byte
	copy(buf[8-n:], c.b[c.off:c.off+n])
	c.off += n
	arg = binary.BigEndian.Uint64(buf[:])
	if arg < min {
		return 0, 0, fmt.Errorf("non-minimal integer or length at byte %d", at)
	}
	return major, arg, nil
}

// item checks one item and everything in it; for a map at depth 0 it
// returns its keys.
func (c *canonChecker) item(depth int) ([]uint64, error) {
	if depth >= maxCanonDepth {
		return nil, fmt.Errorf("nested deeper than %d levels at byte %d", maxCanonDepth, c.off)
	}
	at := c.off
	major, arg, err := c.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case 0, 1: // unsigned and negative integers: the head is all
		return nil, nil
	case 2, 3: // byte and text strings
		if arg > c.rest() {
			return nil, errTruncated
		}
		c.off += int(arg)
		return nil, nil
	case 4:
		if arg > c.rest() { // every element takes at least one byte
			return nil, errTruncated
		}
		for range arg {
			if _, err := c.item(depth + 1); err != nil {
				return nil, err
			}
		}
		return nil, nil
	case 5:
		if arg > c.rest()/2 {
			return nil, errTruncated
		}
		var keys []uint64 // kept at depth 0 only
		var prev uint64
		for i := range arg {
			kat := c.off
			km, k, err := c.head()
			if err != nil {
				return nil, err
			}
			if km != 0 {
				return nil, fmt.Errorf("map key at byte %d is not an unsigned integer", kat)
			}
			// For shortest-form unsigned integers, numeric order is the
			// bytewise order of the encodings that §4.2.1 requires.
			if i > 0 && k <= prev {
				return nil, fmt.Errorf("map key %d at byte %d is not above the previous key %d (keys must be sorted and distinct)", k, kat, prev)
			}
			prev = k
			if depth == 0 {
				keys = append(keys, k)
			}
			if _, err := c.item(depth + 1); err != nil {
				return nil, err
			}
		}
		return keys, nil
	}
	return nil, fmt.Errorf("tag or simple value (major type %d) at byte %d: the format has none", major, at)
}
