package chainstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// The transparency log lives beside the graph, in the same transactions:
// every accepted declaration is the next leaf (leaf i = the declaration at
// graph version i+1), so the tree size always equals the graph version and
// every replica computes the same root for the same version.
//
//	"t" + level (1) + index (uint64 BE) -> hash of a perfect subtree (leaves at level 0)
//	"x" + declaration id (32)           -> its graph version (uint64 BE; leaf index + 1)
//
// Perfect subtrees never change once complete, so any past root and any
// proof up to the current size is served from these nodes.
const (
	prefixTree    byte = 't'
	prefixVersion byte = 'x'
)

func treeKey(id compact.NodeID) []byte {
	k := make([]byte, 0, 10)
	k = append(k, prefixTree, byte(id.Level))
	return binary.BigEndian.AppendUint64(k, id.Index)
}

func versionKey(id authority.ID) []byte { return append([]byte{prefixVersion}, id[:]...) }

// logRecords appends sd to the tree and returns the records that persist
// the leaf, the subtrees it completed, and the declaration's version.
func logRecords(app *tlog.Appender, sd *authority.Signed, version uint64) ([][2][]byte, error) {
	var recs [][2][]byte
	err := app.Append(sd.Raw, func(id compact.NodeID, hash []byte) {
		recs = append(recs, [2][]byte{treeKey(id), append([]byte(nil), hash...)})
	})
	if err != nil {
		return nil, err
	}
	return append(recs, [2][]byte{versionKey(sd.ID), be64(version)}), nil
}

// txnNodes reads tree nodes within one transaction.
type txnNodes struct{ txn *badger.Txn }

func (t txnNodes) GetNodes(ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		item, err := t.txn.Get(treeKey(id))
		if err != nil {
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil, fmt.Errorf("%w: tree node level %d index %d: %w", ErrCorrupt, id.Level, id.Index, tlog.ErrNodeNotFound)
			}
			return nil, err
		}
		if out[i], err = item.ValueCopy(nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loadAppender resumes the tree at size from the stored frontier.
func loadAppender(txn *badger.Txn, size uint64) (*tlog.Appender, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := txnNodes{txn}.GetNodes(ids)
	if err != nil {
		return nil, err
	}
	return tlog.NewAppender(size, hashes)
}

// LogSize is the transparency log's size: the graph version.
func (s *Store) LogSize() uint64 { return s.Version() }

// LogRoot returns the log's size and root hash, read together.
func (s *Store) LogRoot() (uint64, []byte, error) {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	root, err := s.gs.log.Root()
	if err != nil {
		return 0, nil, fmt.Errorf("chainstore: log root: %w", err)
	}
	return s.gs.log.Size(), root, nil
}

// LogRootAt returns the root of the log when it had size leaves.
func (s *Store) LogRootAt(size uint64) ([]byte, error) {
	if err := s.checkSize(size); err != nil {
		return nil, err
	}
	var root []byte
	err := s.graphView(func(txn *badger.Txn) error {
		var err error
		root, err = tlog.RootAt(txnNodes{txn}, size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chainstore: log root at %d: %w", size, err)
	}
	return root, nil
}

// LogIndex returns the leaf index (graph version - 1) of an accepted
// declaration.
func (s *Store) LogIndex(id authority.ID) (uint64, error) {
	var v uint64
	err := s.graphView(func(txn *badger.Txn) error {
		item, err := txn.Get(versionKey(id))
		if err != nil {
			return err
		}
		b, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(b) != 8 {
			return fmt.Errorf("%w: version of %s is %d bytes", ErrCorrupt, id.Short(), len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, fmt.Errorf("%w: declaration %s is not in the log", ErrNotFound, id)
	}
	if err != nil {
		return 0, fmt.Errorf("chainstore: log index of %s: %w", id.Short(), err)
	}
	return v - 1, nil
}

// InclusionProof proves that the leaf at index is in the log of size leaves.
func (s *Store) InclusionProof(index, size uint64) ([][]byte, error) {
	if err := s.checkSize(size); err != nil {
		return nil, err
	}
	var proof [][]byte
	err := s.graphView(func(txn *badger.Txn) error {
		var err error
		proof, err = tlog.InclusionProof(txnNodes{txn}, index, size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chainstore: inclusion proof of leaf %d at size %d: %w", index, size, err)
	}
	return proof, nil
}

// ConsistencyProof proves that the log at oldSize is a prefix of the log at
// newSize.
func (s *Store) ConsistencyProof(oldSize, newSize uint64) ([][]byte, error) {
	if err := s.checkSize(newSize); err != nil {
		return nil, err
	}
	var proof [][]byte
	err := s.graphView(func(txn *badger.Txn) error {
		var err error
		proof, err = tlog.ConsistencyProof(txnNodes{txn}, oldSize, newSize)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chainstore: consistency proof %d -> %d: %w", oldSize, newSize, err)
	}
	return proof, nil
}

// ErrBeyondLog is returned for a size larger than the log.
var ErrBeyondLog = errors.New("chainstore: size beyond the log")

func (s *Store) checkSize(size uint64) error {
	if cur := s.Version(); size > cur {
		return fmt.Errorf("%w: size %d, the log has %d leaves", ErrBeyondLog, size, cur)
	}
	return nil
}

// LogNodes returns the log's stored subtree hashes as a tlog.NodeStore, for
// building proofs outside the store (bundles). Each call reads in its own
// transaction; stored nodes never change, so calls see one tree.
func (s *Store) LogNodes() tlog.NodeStore { return storeNodes{s} }

type storeNodes struct{ s *Store }

func (n storeNodes) GetNodes(ids []compact.NodeID) ([][]byte, error) {
	var out [][]byte
	err := n.s.graphView(func(txn *badger.Txn) error {
		var err error
		out, err = txnNodes{txn}.GetNodes(ids)
		return err
	})
	return out, err
}
