package authority

import (
	"container/list"
	"sync"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/fednode/fednode/authority/internal/edwards25519"
	"github.com/veraison/go-cose"
)

// coseAlgMLDSA65 is COSE's ML-DSA-65 (-49): requested in
// draft-ietf-cose-dilithium ("TBD (requested assignment -49)", §8.1.1.2 of
// -11) and assigned by RFC 9964. Its signatures are pure ML-DSA with an
// empty context string, as that document requires.
const coseAlgMLDSA65 cose.Algorithm = -49

// maxCachedKeys bounds the cache of unpacked ML-DSA-65 public keys. An
// unpacked key holds the expanded matrix A (about 38 KiB with its vectors),
// so the cache holds at most about 10 MiB. Unpacking costs more than the
// verification itself (measured in DEPENDENCIES.md: ~59 µs per verification
// unpacking the key each time, ~18 µs with it unpacked), and a verifier
// meets the same few root keys again and again; 256 covers the root keys of
// a large federation, and past it the least recently used key is dropped.
const maxCachedKeys = 256

// mldsaKeys is the process-wide cache behind PublicKey.verify.
var mldsaKeys keyCache

// keyCache is a bounded LRU of unpacked ML-DSA-65 public keys (and of
// decoded Ed25519 ones: see edVerify), keyed by the
// packed key bytes themselves (Go's map hashes them, and a hit compares them
// in full, so no collision can ever hand back another key's unpacking).
//
// It is an optimisation with no observable effect: an entry is a pure
// function of its key bytes, mldsa65.Verify only reads it, and a miss
// unpacks afresh. Only keys under which a signature has verified are kept.
// Safe for concurrent use; the zero value is an empty cache. A nil
// *keyCache caches nothing.
type keyCache struct {
	mu sync.Mutex
	// Invariant: len(byKey) == lru.Len() <= maxCachedKeys, and byKey[k]
	// is the element of lru whose value has key k.
	byKey map[string]*list.Element
	lru   list.List // of *cachedKey, most recently used first
}

// cachedKey is one key's decoded form: pk for an ML-DSA-65 key, ed for an
// Ed25519 one (keys of the two are of different lengths, so their bytes
// never name the same entry; a lookup checks the kind anyway).
// Invariant: exactly one of pk and ed is set.
type cachedKey struct {
	key string
	pk  *mldsa65.PublicKey
	ed  *edwards25519.PublicKey
}

// unpacked returns the unpacked form of the mldsa65.PublicKeySize bytes b,
// and whether it came from the cache. A miss unpacks b without caching it:
// the caller offers it with keep once a signature has verified under it, so
// that keys which never verified anything (junk from an attacker, who need
// not sign to send it) cannot push real keys out. The caller must not modify
// the result.
func (c *keyCache) unpacked(b []byte) (*mldsa65.PublicKey, bool) {
	if e := c.lookup(b); e != nil && e.pk != nil {
		return e.pk, true
	}
	// Unpack outside the lock: it is the slow part, and goroutines that
	// unpack the same key at once get equal results.
	return unpackMLDSA(b), false
}

// lookup returns the entry of key bytes b, or nil; a nil c holds none.
func (c *keyCache) lookup(b []byte) *cachedKey {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[string(b)]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cachedKey)
}

// keep caches pk, the unpacked form of b, dropping the least recently used
// key if the cache is full. A no-op on a nil cache or a key already held.
func (c *keyCache) keep(b []byte, pk *mldsa65.PublicKey) { c.put(&cachedKey{pk: pk}, b) }

// put caches e under the key bytes b (setting e.key), as keep.
func (c *keyCache) put(e *cachedKey, b []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byKey[string(b)]; ok {
		c.lru.MoveToFront(old)
		return
	}
	if c.byKey == nil {
		c.byKey = make(map[string]*list.Element)
	}
	if c.lru.Len() >= maxCachedKeys {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.byKey, old.Value.(*cachedKey).key)
	}
	e.key = string(b)
	c.byKey[e.key] = c.lru.PushFront(e)
}

// verify checks a pure ML-DSA-65 signature with context ctx under the packed
// key b, through the cache.
func (c *keyCache) verify(b, msg, ctx, sig []byte) bool {
	pk, hit := c.unpacked(b)
	ok := mldsa65.Verify(pk, msg, ctx, sig)
	clearUpper()
	if ok && !hit {
		c.keep(b, pk)
	}
	return ok
}

// len reports how many keys are cached (for tests).
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// unpackMLDSA decodes a packed ML-DSA-65 public key. Every byte string of
// the right length is one (FIPS 204 pkDecode cannot fail).
func unpackMLDSA(b []byte) *mldsa65.PublicKey {
	var buf [mldsa65.PublicKeySize]byte
	copy(buf[:], b)
	pk := new(mldsa65.PublicKey)
	pk.Unpack(&buf)
	clearUpper()
	return pk
}
