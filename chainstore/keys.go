package chainstore

import "encoding/binary"

// Key layout. This is an on-disk format: changing a prefix or an encoding
// needs a migration.
//
// Every key starts with one namespace byte, so namespaces never interleave
// and a prefix iterator visits exactly one of them.
//
//	"L" + uint64 big-endian Raft index  -> log record (see encodeLogRecord)
//	"S" + raw key                       -> Raft stable-store value (raw bytes;
//	                                       SetUint64 stores 8 bytes big-endian)
//	"P" + peer ID (UTF-8 string bytes)  -> peer addresses (see encodePeerAddrs)
//
// Big-endian indexes make badger's byte order equal numeric order, which is
// what makes FirstIndex a forward seek and LastIndex a reverse seek.
//
// Reserved for the graph state (graph.go): "d", "a", "i", "k", "r", "o", "m",
// "g", "e"; for the transparency log (tlog.go): "t", "x". The log, stable and
// peer code must never write under them.
//
// Values are versioned by their first byte where the encoding is ours, so a
// later format can be told apart from this one.
const (
	prefixLog    byte = 'L'
	prefixStable byte = 'S'
	prefixPeer   byte = 'P'
)

// logKeyLen is the length of every "L" key: prefix plus 8-byte index.
const logKeyLen = 1 + 8

func logKey(index uint64) []byte {
	k := make([]byte, logKeyLen)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// logIndexOf returns the index in a log key, and false for any key that is
// not a well-formed log key.
func logIndexOf(key []byte) (uint64, bool) {
	if len(key) != logKeyLen || key[0] != prefixLog {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[1:]), true
}

// logKeyMax sorts after every log key, for reverse seeks.
func logKeyMax() []byte { return logKey(^uint64(0)) }

func stableKey(key []byte) []byte {
	k := make([]byte, 0, 1+len(key))
	return append(append(k, prefixStable), key...)
}

func peerKey(peerID string) []byte {
	k := make([]byte, 0, 1+len(peerID))
	return append(append(k, prefixPeer), peerID...)
}
