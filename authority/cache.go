package authority

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"sync"
)

// The verified-chain cache.
//
// A verifier meets the same presented credential chains again and again (a
// workload presents its credential on every request), and a cold decision
// spends nearly all its time checking the chain's signatures. Whether a
// signature verifies under a key is a pure function of the envelope's bytes
// and the key's bytes, so it can be remembered; nothing else can. A Cache
// therefore holds, per presented chain, keyed by its exact bytes:
//
//   - the parsed links (Parse and the linking checks of parseChain are pure
//     functions of the bytes too), and
//   - for each signature of each link, the key it verified under, and each
//     link's holder-key ID.
//
// A decision with a cache runs exactly the code a cold one runs, against the
// current view: which key a kid names (root set in effect, retired sets,
// operational keys and their delegations), thresholds, rotations,
// equivocation, revocations, windows at the judgement time, narrowing, the
// request's scope, the rules and the path search, and the proof of
// possession with this verifier's challenge. Only where it would run a
// signature verification it first asks the cache whether this very signature
// already verified under this very key (compared in full), and skips the
// arithmetic if so. A chain enters the cache only once every signature of
// every link verified. So a cached entry can never make a decision differ
// from the cold one (TestCacheWarmEqualsCold).
//
// The proof of possession is not cached: it answers a challenge, which
// changes per request where replay matters, so its one signature is checked
// every time.

// Default bounds of a Cache, for NewCache(0, 0).
const (
	// DefaultCacheEntries is how many chains a default cache holds.
	DefaultCacheEntries = 4096
	// DefaultCacheBytes bounds a default cache's memory (its estimate of
	// it: see Cache.Bytes).
	DefaultCacheBytes = 64 << 20
)

// cacheLinkOverhead is the estimated memory of one cached link beyond one
// and a half times its envelope's size (Raw, and what the decoded
// Declaration copies of it: for post-quantum chains mostly the holder key):
// the Signed struct with its Credential, slice headers, strings and the
// memo. Fitted to what bench verify measures (bytes_per_cached_chain),
// rounding up: 1.8 KB measured for a one-link Ed25519 chain, 68 KB for
// eight ML-DSA-65 links.
const cacheLinkOverhead = 1400

// Cache remembers verified signatures of presented credential chains (see
// above). Use it with WithCache. Safe for concurrent use; the zero value is
// not usable: call NewCache.
type Cache struct {
	maxEntries int
	maxBytes   int64
	seed       maphash.Seed

	mu sync.Mutex
	// Invariant: len(byHash) == n <= maxEntries, bytes is the sum of the
	// entries' sizes and <= maxBytes, byHash[h] is the entry with hash h,
	// and lru.next, lru.next.next, ... is every entry once, most recently
	// used first, back to lru (an intrusive ring, so that an entry is one
	// allocation).
	byHash map[uint64]*cacheEntry
	lru    cacheEntry
	n      int
	bytes  int64
	hits   uint64
	misses uint64
}

// cacheEntry is one verified chain. Immutable once in the cache.
type cacheEntry struct {
	prev, next *cacheEntry // the LRU ring; guarded by Cache.mu
	hash       uint64
	links      []*Signed // root first, as parseChain returns them
	memo       *chainMemo
	size       int64
}

// NewCache returns an empty cache holding at most maxEntries chains and about
// maxBytes of them (the least recently used go first); zero or negative
// values take the defaults.
func NewCache(maxEntries int, maxBytes int64) *Cache {
	if maxEntries <= 0 {
		maxEntries = DefaultCacheEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	c := &Cache{maxEntries: maxEntries, maxBytes: maxBytes, seed: maphash.MakeSeed(), byHash: map[uint64]*cacheEntry{}}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

// WithCache makes Verify use c for the presented credential chain: a chain
// whose every signature verified before is not checked again (everything
// else is judged afresh; see the comment at the top of cache.go). A nil c
// caches nothing.
func WithCache(c *Cache) Option { return func(o *verifyOptions) { o.cache = c } }

// CacheStats is a snapshot of a cache's use.
type CacheStats struct {
	Entries int
	// Bytes is the cache's estimate of the memory its entries hold.
	Bytes        int64
	Hits, Misses uint64
}

// Stats returns a snapshot of c's use.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Entries: c.n, Bytes: c.bytes, Hits: c.hits, Misses: c.misses}
}

// Purge empties the cache.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	clear(c.byHash)
	c.n, c.bytes = 0, 0
}

// cacheSample is how many bytes of each end of every envelope the hash
// reads. The hash only picks the candidate entry, which is then compared in
// full; reading every byte of a post-quantum chain (up to ~45 KB at depth 8)
// twice would cost more than the rest of a warm decision. The last bytes are
// the signature, which differs between any two envelopes that differ at all
// (short of a forged or repeated signature), and the seed is random per
// cache, so neither chance nor an attacker makes entries collide; and a
// collision would only cost a miss.
const cacheSample = 64

// hashChain hashes the presented chain of req: each envelope's length and
// its first and last cacheSample bytes.
func (c *Cache) hashChain(req *Request) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	var n [8]byte
	add := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		if len(b) <= 2*cacheSample {
			h.Write(b)
			return
		}
		h.Write(b[:cacheSample])
		h.Write(b[len(b)-cacheSample:])
	}
	add(req.Credential)
	for _, l := range req.Delegation {
		add(l)
	}
	return h.Sum64()
}

// matches reports whether e holds exactly the chain req presents.
func (e *cacheEntry) matches(req *Request) bool {
	n := len(e.links)
	if len(req.Delegation) != n-1 || !bytes.Equal(req.Credential, e.links[n-1].Raw) {
		return false
	}
	for i, raw := range req.Delegation {
		if !bytes.Equal(raw, e.links[n-2-i].Raw) {
			return false
		}
	}
	return true
}

// get returns the entry holding req's chain, or nil, and the chain's hash.
func (c *Cache) get(req *Request) (*cacheEntry, uint64) {
	h := c.hashChain(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHash[h]
	if !ok || !e.matches(req) {
		c.misses++
		return nil, h
	}
	c.hits++
	c.unlink(e)
	c.pushFront(e)
	return e, h
}

// put caches links, whose every signature verified as memo records, under
// hash h (of the request they were parsed from). An entry with the same
// hash is replaced; the least recently used entries go while the cache is
// over its bounds.
func (c *Cache) put(h uint64, links []*Signed, memo *chainMemo) {
	// The entry lives in the memo, allocated with it (put is called once
	// per memo, with a complete one).
	e := &memo.entry
	*e = cacheEntry{hash: h, links: links, memo: memo}
	for _, l := range links {
		e.size += int64(len(l.Raw)+len(l.Raw)/2) + cacheLinkOverhead
	}
	if e.size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byHash[h]; ok {
		c.remove(old)
	}
	c.byHash[h] = e
	c.pushFront(e)
	c.n++
	c.bytes += e.size
	for c.n > c.maxEntries || c.bytes > c.maxBytes {
		c.remove(c.lru.prev)
	}
}

// pushFront links e in as the most recently used entry.
func (c *Cache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

// unlink takes e out of the ring.
func (c *Cache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// remove drops e from the cache.
func (c *Cache) remove(e *cacheEntry) {
	c.unlink(e)
	delete(c.byHash, e.hash)
	c.n--
	c.bytes -= e.size
}

// chainMemo records what of a chain's signatures verified. While a cold
// decision fills it, it belongs to that decision; once in the cache it is
// read-only.
type chainMemo struct {
	// keys[i][j] is the key signature j of link i verified under; a zero
	// Alg where it has not (yet) verified.
	keys [MaxDelegationDepth][]PublicKey
	// holderKIDs[i] is the KeyID of link i's HolderKey, once computed.
	holderKIDs [MaxDelegationDepth][]byte
	// one backs keys when every link has one signature (the usual case),
	// so that a memo is one allocation.
	one    [MaxDelegationDepth]PublicKey
	record bool
	// entry is the memo's cache entry once put (see Cache.put): one
	// allocation for both.
	entry cacheEntry
}

func newChainMemo(links []*Signed) *chainMemo {
	n := 0
	for _, l := range links {
		n += len(l.Signatures)
	}
	// One allocation whatever the depth, two with a threshold-signed
	// root: the per-link slices share one backing array.
	m := &chainMemo{record: true}
	flat := m.one[:]
	if n > len(m.one) {
		flat = make([]PublicKey, n)
	}
	for i, l := range links {
		m.keys[i], flat = flat[:len(l.Signatures):len(l.Signatures)], flat[len(l.Signatures):]
	}
	return m
}

// complete reports whether every signature of every link verified.
func (m *chainMemo) complete() bool {
	for _, ks := range m.keys { // nil past the chain's links
		for _, k := range ks {
			if k.Alg == 0 {
				return false
			}
		}
	}
	return true
}

// link returns the memo of link i; an empty one for a nil m.
func (m *chainMemo) link(i int) sigMemo {
	if m == nil {
		return sigMemo{}
	}
	return sigMemo{keys: m.keys[i], record: m.record}
}

// holderKID returns the KeyID of link i's holder key hk, remembered.
func (m *chainMemo) holderKID(i int, hk *PublicKey) []byte {
	if m == nil {
		return hk.KeyID()
	}
	if kid := m.holderKIDs[i]; kid != nil {
		return kid
	}
	kid := hk.KeyID()
	if m.record {
		m.holderKIDs[i] = kid
	}
	return kid
}

// sigMemo is the memo of one envelope's signatures (see chainMemo); the
// zero value remembers nothing.
type sigMemo struct {
	keys   []PublicKey
	record bool
	// presented says the key is a holder key of the presented chain, not
	// a key of the graph: its unpacked form is not kept in the
	// process-wide cache of unpacked ML-DSA keys (keyCache). A delegation
	// link is checked once per chain (the Cache remembers it after), so
	// keeping its key would only churn that cache, and would let whoever
	// mints delegated credentials push the graph's root keys out of it.
	presented bool
}

// verify is k.verify of signature i of s, remembered: true without any
// arithmetic if signature i already verified under exactly k.
func (m sigMemo) verify(s *Signed, i int, k PublicKey) bool {
	if m.keys != nil {
		if got := m.keys[i]; got.Alg == k.Alg && got.Alg != 0 && sameBytes(got.Key, k.Key) {
			return true
		}
	}
	buf := tbsPool.Get().(*[]byte)
	tbs := toBeSigned((*buf)[:0], s.multi, s.raws[i].prot, s.payloadWhole)
	var ok bool
	if m.presented {
		ok = k.verifyCached(tbs, s.raws[i].sig, nil)
	} else {
		ok = k.verify(tbs, s.raws[i].sig)
	}
	if cap(tbs) <= maxPooledTBS {
		*buf = tbs
		tbsPool.Put(buf)
	}
	if ok && m.record {
		m.keys[i] = k
	}
	return ok
}

// sameBytes is bytes.Equal, quick when a and b are the very same bytes (a
// holder key of a cached parent link, a root key of the view): keys are
// immutable, so one backing array holds one value.
func sameBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return bytes.Equal(a, b)
}

// tbsPool holds buffers for the Sig_structures signatures are checked over:
// one per signature check otherwise, the largest allocation of a cold
// decision. No verifier keeps the message it is given.
var tbsPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledTBS bounds the buffers kept in tbsPool, so that one huge
// envelope does not pin its size in the pool.
const maxPooledTBS = 16 << 10
