package chainstore

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fednode/fednode/authority"
)

// TestDiskReadersSeeWhatMemorySaid: ApplyDeclarations changes memory before
// its disk write lands, so that View and Has never wait for an fsync; every
// reader of the graph's disk records must still find what memory said
// before the call. Readers race a stream of applies and check, for the
// version and the newest declaration memory reported, that Declarations,
// Declaration, InclusionProof and a Snapshot agree.
func TestDiskReadersSeeWhatMemorySaid(t *testing.T) {
	const rules = 60
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s := kind.open(t)
			c := newGChain(t, "pki-one", 1)
			mustApply(t, s, 1, envs(c.genesis))
			decls := make([]*authority.Signed, rules)
			for i := range decls {
				decls[i] = c.rule(t, c.id())
			}
			var done atomic.Bool
			var newest atomic.Pointer[authority.ID]
			newest.Store(&c.genesis.ID)
			var wg sync.WaitGroup
			errs := make(chan string, 16)
			fail := func(msg string) {
				select {
				case errs <- msg:
				default:
				}
			}
			for r := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !done.Load() {
						id := *newest.Load()
						v := s.Version()
						if !s.Has(id) {
							fail("memory lost a declaration")
							return
						}
						switch r {
						case 0:
							n := uint64(0)
							if err := s.Declarations(0, v, func(uint64, []byte) error { n++; return nil }); err != nil || n != v {
								fail("Declarations(0, Version) short of Version")
								return
							}
						case 1:
							if _, err := s.Declaration(id); err != nil {
								fail("Declaration of a declaration Has reported: " + err.Error())
								return
							}
							if _, err := s.InclusionProof(v-1, v); err != nil {
								fail("InclusionProof at Version: " + err.Error())
								return
							}
						case 2:
							snap, err := s.Snapshot()
							if err != nil {
								fail(err.Error())
								return
							}
							if snap.version < v {
								fail("snapshot older than the version read before it")
							}
							snap.Release()
						}
					}
				}()
			}
			for i, sd := range decls {
				mustApply(t, s, uint64(i+2), envs(sd))
				newest.Store(&sd.ID)
			}
			done.Store(true)
			wg.Wait()
			close(errs)
			for msg := range errs {
				t.Error(msg)
			}
			if got := s.Version(); got != rules+1 {
				t.Fatalf("version %d, want %d", got, rules+1)
			}
		})
	}
}
