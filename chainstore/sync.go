package chainstore

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// Anti-entropy for a node outside the Raft configuration (an applicant, an
// observer): it appends agreed declarations fetched from a peer, in the
// agreed order, after the caller has checked them against the peer's signed
// checkpoint. Raft never feeds such a store; if it starts to (the node was
// admitted), the first Raft entry clears what sync wrote and Raft rebuilds
// the graph from its own log or a snapshot, so every Raft replica's graph
// comes from Raft alone and stays deterministic.
//
//	"m" + "synced" -> uint64 BE: present while the graph came from sync

var keySynced = []byte{prefixMeta, 's', 'y', 'n', 'c', 'e', 'd'}

// Errors of ApplySynced.
var (
	// ErrRaftFed: the store's graph comes from Raft; agreed declarations
	// reach it only through Raft.
	ErrRaftFed = errors.New("chainstore: the graph is fed by Raft")
	// ErrSyncOrder: the page does not start right after the graph's version.
	ErrSyncOrder = errors.New("chainstore: sync page out of order")
	// ErrSyncRefused: a declaration of the page does not parse or the graph
	// refuses it: the peer's log is not a valid agreed graph.
	ErrSyncRefused = errors.New("chainstore: sync page refused")
)

// MaxSyncPage bounds the declarations ApplySynced takes at once, so that one
// page is one badger transaction.
const MaxSyncPage = 2048

// SyncCheck is given the parsed page and the log root the store would have
// after appending it (size = the graph version then); it returns an error
// to refuse the page before anything changes.
type SyncCheck func(page []*authority.Signed, size uint64, root []byte) error

// ApplySynced appends envelopes as the agreed declarations at versions
// from+1 .. from+len(envelopes). It parses them, computes the log root
// they lead to and lets check judge it (the caller compares it with a
// signed checkpoint), verifies the signatures on all cores, then applies
// them in order with every check of Graph.Apply and writes them, their log
// records and the sync marker in one transaction. Either the whole page is
// stored or nothing is.
//
// Errors: ErrRaftFed (the store has applied Raft entries), ErrSyncOrder
// (from is not the version), ErrSyncRefused (a declaration does not parse
// or is refused; wrapped with the graph's error), check's error, ErrClosed.
func (s *Store) ApplySynced(from uint64, envelopes [][]byte, check SyncCheck) error {
	if len(envelopes) == 0 {
		return nil
	}
	if len(envelopes) > MaxSyncPage {
		return fmt.Errorf("%w: %d declarations, at most %d per page", ErrSyncRefused, len(envelopes), MaxSyncPage)
	}
	page, err := parseAll(envelopes)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSyncRefused, err)
	}
	s.gs.mu.Lock()
	defer s.gs.mu.Unlock()
	s.gs.disk.Lock() // lock order: graph, disk, lifetime (graph.go)
	defer s.gs.disk.Unlock()
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.life.RUnlock()
	if s.gs.applied > 0 {
		return fmt.Errorf("%w (applied index %d)", ErrRaftFed, s.gs.applied)
	}
	g := s.gs.g
	if v := g.Version(); from != v {
		return fmt.Errorf("%w: page starts after version %d, the graph is at %d", ErrSyncOrder, from, v)
	}
	// The root first: it costs one hash per leaf and refuses a page that is
	// not the log the peer signed before any signature is checked.
	scratch, err := tlog.NewAppender(s.gs.log.Size(), s.gs.log.Frontier())
	if err != nil {
		return err
	}
	for _, sd := range page {
		if err := scratch.Append(sd.Raw, nil); err != nil {
			return err
		}
	}
	root, err := scratch.Root()
	if err != nil {
		return err
	}
	if err := check(page, scratch.Size(), root); err != nil {
		return err
	}
	authority.PreVerify(page, candidateKeys(g, page))
	for i, sd := range page {
		if err := g.Apply(sd); err != nil {
			// Memory holds part of the page and the disk none: rebuild
			// memory from the disk.
			if lerr := s.loadGraphLocked(); lerr != nil {
				panic(fmt.Sprintf("chainstore: reload after a refused sync page: %v", lerr))
			}
			return fmt.Errorf("%w: declaration %d of the page (version %d): %w", ErrSyncRefused, i, from+uint64(i)+1, err)
		}
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		for j, sd := range page {
			recs, err := allRecords(s.gs.log, sd, from+uint64(j)+1)
			if err != nil {
				return err
			}
			for _, kv := range recs {
				if err := txn.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		return txn.Set(keySynced, be64(from+uint64(len(page))))
	})
	if err != nil {
		if lerr := s.loadGraphLocked(); lerr != nil {
			panic(fmt.Sprintf("chainstore: reload after a failed sync write: %v (write: %v)", lerr, err))
		}
		return fmt.Errorf("chainstore: store sync page: %w", err)
	}
	s.gs.synced = true
	return nil
}

// Restores is how many Raft snapshots this store has restored since Open:
// a node that was away past log compaction catches up by one.
func (s *Store) Restores() uint64 {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	return s.gs.restores
}

// Synced reports whether the graph came from sync rather than Raft.
func (s *Store) Synced() bool {
	s.gs.mu.RLock()
	defer s.gs.mu.RUnlock()
	return s.gs.synced
}

// parseAll parses envelopes on all cores (a COSE parse with its canonical
// re-encoding is ~20 µs).
func parseAll(envelopes [][]byte) ([]*authority.Signed, error) {
	out := make([]*authority.Signed, len(envelopes))
	errs := make([]error, len(envelopes))
	workers := min(runtime.GOMAXPROCS(0), len(envelopes))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(envelopes); i += workers {
				out[i], errs[i] = authority.Parse(envelopes[i])
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("declaration %d: %w", i, err)
		}
	}
	return out, nil
}

// candidateKeys finds, for a signature by kid on s, the keys that might
// have made it: its issuer's root sets and operational key in the graph,
// and every key declared in the page (geneses, rotations, delegations).
// Only a hint for PreVerify; Graph.Apply decides.
func candidateKeys(g *authority.Graph, page []*authority.Signed) func(*authority.Signed, []byte) []authority.PublicKey {
	declared := map[string][]authority.PublicKey{}
	add := func(k authority.PublicKey) { declared[string(k.KeyID())] = append(declared[string(k.KeyID())], k) }
	for _, sd := range page {
		switch d := &sd.Decl; {
		case d.Genesis != nil:
			for _, k := range d.Genesis.RootKeys {
				add(k)
			}
		case d.Rotation != nil:
			for _, k := range d.Rotation.RootKeys {
				add(k)
			}
		case d.Delegation != nil:
			add(d.Delegation.Key)
		}
	}
	return func(s *authority.Signed, kid []byte) []authority.PublicKey {
		out := declared[string(kid)]
		if s.Decl.Kind == authority.KindGenesis {
			return out
		}
		if a, ok := g.Authority(s.Decl.Authority); ok {
			for _, rs := range a.Roots {
				for _, k := range rs.Keys {
					if string(k.KeyID()) == string(kid) {
						out = append(out, k)
					}
				}
			}
		}
		if o, ok := g.OperationalKey(s.Decl.Authority, kid); ok {
			out = append(out, o.Key)
		}
		return out
	}
}

// loadGraphLocked reloads the in-memory graph from the disk; the caller
// holds gs.mu and the lifetime lock.
func (s *Store) loadGraphLocked() error { return s.loadGraph() }

// loadSynced reads the sync marker (at Open).
func (s *Store) loadSynced(txn *badger.Txn) (bool, error) {
	if _, err := txn.Get(keySynced); err == nil {
		return true, nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return false, err
	}
	return false, nil
}

// dropSyncedLocked clears a graph that sync wrote, before the first Raft
// entry is applied to this store: from now on Raft alone feeds it. It marks
// the store as restoring while it deletes, so a crash in between makes the
// next start rebuild from Raft's snapshot and log. The caller holds gs.mu
// and the lifetime lock.
func (s *Store) dropSyncedLocked() error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyRestoring, nil) }); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	if err := s.deleteGraph(wb); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(keyRestoring) }); err != nil {
		return err
	}
	app, err := tlog.NewAppender(0, nil)
	if err != nil {
		return err
	}
	s.log.Info("chainstore: Raft feeds this store now; clearing the graph sync wrote", "version", s.gs.g.Version())
	s.gs.g, s.gs.log, s.gs.synced, s.gs.ev = authority.NewGraph(), app, false, evidenceState{}
	return nil
}
