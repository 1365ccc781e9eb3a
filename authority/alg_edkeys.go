package authority

import (
	"crypto/ed25519"

	"github.com/fednode/fednode/authority/internal/edwards25519"
)

// Decoded Ed25519 keys of the graph.
//
// crypto/ed25519.Verify decompresses the public key (a square root in the
// field) and tabulates its multiples on every call: about a tenth of a
// verification. The keys the graph's signatures are checked under (root
// and operational keys, the issuer's root key of every presented chain)
// are few and met again and again, so their decoded form goes into the
// same bounded cache as unpacked ML-DSA keys (keyCache), under the same
// rule: only once a signature verified under it. The verification itself
// is the standard library's, run from a copy of its edwards25519 package
// that can start from a decoded key (authority/internal/edwards25519,
// checked against crypto/ed25519 on Wycheproof's vectors, random and
// corrupted signatures, and by fuzzing). Holder keys of presented chains
// are not keys of the graph and are verified without the cache (see
// sigMemo.presented), as is everything with a nil cache.

// edVerify checks a pure Ed25519 signature under the key bytes b (of
// ed25519.PublicKeySize; the caller checked the lengths) through c.
func (c *keyCache) edVerify(b, msg, sig []byte) bool {
	ok, fresh := c.edCheck(b, msg, sig)
	if ok && fresh != nil {
		c.put(&cachedKey{ed: fresh}, b)
	}
	return ok
}

// edCheck is edVerify without keeping the key: fresh is the key decoded
// afresh (nil when it came from c, or c is nil), for the caller to keep
// once everything it checks under the key verified (the hybrid checks the
// ML-DSA half too).
func (c *keyCache) edCheck(b, msg, sig []byte) (ok bool, fresh *edwards25519.PublicKey) {
	if c == nil {
		return ed25519.Verify(ed25519.PublicKey(b), msg, sig), nil
	}
	if e := c.lookup(b); e != nil && e.ed != nil {
		return e.ed.Verify(msg, sig), nil
	}
	k, err := edwards25519.NewPublicKey(b)
	if err != nil {
		return false, nil // not a point: crypto/ed25519 verifies nothing under it either
	}
	return k.Verify(msg, sig), k
}
