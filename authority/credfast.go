package authority

import (
	"math"
	"unicode/utf8"
)

// decodeCredentialFast is the fast path of Parse for the payload every
// request presents: a credential declaration. It decodes b into d and
// returns true only when b is exactly the Core Deterministic encoding of a
// credential Declaration with only the fields this file knows (the shape
// marshal gives such a Declaration); for anything else it returns false and
// leaves d alone, and Parse takes the general path (unmarshalStrict: a
// reflective strict decode and a re-encode to compare), which is the
// definition of what is accepted. So the fast path can only ever accept
// less, never more or differently (FuzzCredentialFast checks it against
// unmarshalStrict), and a field added to Declaration or Credential simply
// sends payloads that carry it down the general path.
//
// What marshal leaves out, the fast path must not accept present: a zero
// omitzero field (Authority, Seq, Prev, IssuedAt, NotBefore, NotAfter,
// Parent) or an empty omitempty one (Serial, Attributes, Resources,
// Actions); and what marshal always writes must be there (Kind, Subject, a
// key's Alg and Key, an attribute's Key and Value). Map keys must ascend
// (canonical order), every head be in its shortest form, every text valid
// UTF-8, and nothing follow the map.
//
// c and hk, when not nil, are where the Credential and its HolderKey are
// decoded to (Parse passes fields of the Signed, to save two allocations);
// they are written only if it returns true.
func decodeCredentialFast(b []byte, d *Declaration, c *Credential, hk *PublicKey) bool {
	r := cborReader{b: b}
	var out Declaration
	var cv Credential
	var hkv PublicKey
	hasCred, hasHolder := false, false
	major, n := r.head()
	if r.err != nil || major != 5 {
		return false
	}
	last := uint64(0)
	for range n {
		k, ok := r.uintKey(&last)
		if !ok {
			return false
		}
		switch k {
		case 1:
			v, ok := r.uint(math.MaxUint8)
			if !ok || Kind(v) != KindCredential {
				return false
			}
			out.Kind = Kind(v)
		case 2:
			if !r.id(&out.Authority) {
				return false
			}
		case 5:
			v, ok := r.nonzeroInt()
			if !ok {
				return false
			}
			out.IssuedAt = v
		case 18:
			var ok bool
			if ok, hasHolder = r.credential(&cv, &hkv); !ok {
				return false
			}
			hasCred = true
		default: // Seq and Prev (never on a credential), another body, an unknown field
			return false
		}
	}
	if r.err != nil || r.off != len(b) || out.Kind == 0 || !hasCred {
		return false
	}
	if hasHolder {
		if hk == nil {
			hk = new(PublicKey)
		}
		*hk = hkv
		cv.HolderKey = hk
	}
	if c == nil {
		c = new(Credential)
	}
	*c = cv
	out.Credential = c
	*d = out
	return true
}

// uintKey reads a map key, which must be an unsigned integer above *last
// (so strictly ascending, and never 0, which is no field of ours).
func (r *cborReader) uintKey(last *uint64) (uint64, bool) {
	major, k := r.head()
	if r.err != nil || major != 0 || k <= *last {
		return 0, false
	}
	*last = k
	return k, true
}

// uint reads an unsigned integer no greater than max.
func (r *cborReader) uint(max uint64) (uint64, bool) {
	major, v := r.head()
	return v, r.err == nil && major == 0 && v <= max
}

// nonzeroInt reads a non-zero int64 (an omitzero field present).
func (r *cborReader) nonzeroInt() (int64, bool) {
	major, v := r.head()
	switch {
	case r.err != nil:
		return 0, false
	case major == 0 && v != 0 && v <= math.MaxInt64:
		return int64(v), true
	case major == 1 && v <= math.MaxInt64:
		return -1 - int64(v), true
	}
	return 0, false
}

// text reads a valid UTF-8 text string; nonempty requires at least a byte.
func (r *cborReader) text(nonempty bool) (string, bool) {
	major, n := r.head()
	if r.err != nil || major != 3 || n > uint64(len(r.b)-r.off) || (nonempty && n == 0) {
		return "", false
	}
	t := r.b[r.off : r.off+int(n)]
	if !utf8.Valid(t) {
		return "", false
	}
	r.off += int(n)
	return string(t), true
}

// bytesCopy reads a byte string into a fresh slice (never nil, as the
// reflective decoder gives); nonempty requires at least a byte.
func (r *cborReader) bytesCopy(nonempty bool) ([]byte, bool) {
	major, n := r.head()
	if r.err != nil || major != 2 || n > uint64(len(r.b)-r.off) || (nonempty && n == 0) {
		return nil, false
	}
	out := make([]byte, n)
	copy(out, r.b[r.off:])
	r.off += int(n)
	return out, true
}

// id reads a non-zero ID (a 32-byte string; omitzero).
func (r *cborReader) id(out *ID) bool {
	major, n := r.head()
	if r.err != nil || major != 2 || n != IDSize || len(r.b)-r.off < IDSize {
		return false
	}
	copy(out[:], r.b[r.off:])
	r.off += IDSize
	return !out.IsZero()
}

// arrayHead reads the head of a non-empty array (omitempty) of at most
// maxArrayElements elements.
func (r *cborReader) arrayHead() (int, bool) {
	major, n := r.head()
	return int(n), r.err == nil && major == 4 && n > 0 && n <= maxArrayElements
}

// credential reads a Credential map; a HolderKey is read into hk (and
// hasHolder says so: c.HolderKey is left for the caller to point).
func (r *cborReader) credential(c *Credential, hk *PublicKey) (ok, hasHolder bool) {
	major, n := r.head()
	if r.err != nil || major != 5 || n > maxMapPairs {
		return false, false
	}
	last, subject := uint64(0), false
	for range n {
		k, ok := r.uintKey(&last)
		if !ok {
			return false, false
		}
		switch k {
		case 1:
			if c.Subject, ok = r.text(false); !ok {
				return false, false
			}
			subject = true
		case 2:
			if c.NotBefore, ok = r.nonzeroInt(); !ok {
				return false, false
			}
		case 3:
			if c.NotAfter, ok = r.nonzeroInt(); !ok {
				return false, false
			}
		case 4:
			if c.Serial, ok = r.bytesCopy(true); !ok {
				return false, false
			}
		case 5:
			m, ok := r.arrayHead()
			if !ok {
				return false, false
			}
			c.Attributes = make([]Attr, m)
			for i := range c.Attributes {
				if !r.attr(&c.Attributes[i]) {
					return false, false
				}
			}
		case 6:
			if c.Resources, ok = r.text(true); !ok {
				return false, false
			}
		case 7:
			m, ok := r.arrayHead()
			if !ok {
				return false, false
			}
			c.Actions = make([]string, m)
			for i := range c.Actions {
				if c.Actions[i], ok = r.text(false); !ok {
					return false, false
				}
			}
		case 8:
			if !r.publicKey(hk) {
				return false, false
			}
			hasHolder = true
		case 9:
			if !r.id(&c.Parent) {
				return false, false
			}
		default:
			return false, false
		}
	}
	return subject, hasHolder
}

// attr reads an Attr map: exactly {1: key, 2: value}.
func (r *cborReader) attr(a *Attr) bool {
	var ok bool
	r.expect(0xa2, "attribute")
	r.expect(0x01, "attribute key")
	if a.Key, ok = r.text(false); !ok {
		return false
	}
	r.expect(0x02, "attribute value")
	a.Value, ok = r.text(false)
	return ok && r.err == nil
}

// publicKey reads a PublicKey map: exactly {1: alg, 2: key}.
func (r *cborReader) publicKey(k *PublicKey) bool {
	r.expect(0xa2, "public key")
	r.expect(0x01, "public key alg")
	alg, ok := r.uint(math.MaxUint8)
	if !ok {
		return false
	}
	k.Alg = Alg(alg)
	r.expect(0x02, "public key bytes")
	k.Key, ok = r.bytesCopy(false)
	return ok && r.err == nil
}
