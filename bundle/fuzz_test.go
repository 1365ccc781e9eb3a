package bundle

import (
	"errors"
	"testing"
)

// FuzzOpen feeds Open arbitrary bytes: it must never panic, every refusal
// must wrap ErrInvalid, and an accepted bundle's graph must hold exactly the
// declarations its header counts.
func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.bundle)
	f.Add(fx.bundle[:len(fx.bundle)/2])
	f.Add(fx.rule1.Raw)
	f.Add(sealPayload(f, payloadOf(f, fx.contents), fx.malloryKey))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		bd, err := Open(b, OpenOptions{})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if bd.Graph.Version() != bd.GraphVersion || uint64(len(bd.Declarations)) != bd.GraphVersion {
			t.Fatalf("accepted bundle: graph version %d, header %d, %d declarations", bd.Graph.Version(), bd.GraphVersion, len(bd.Declarations))
		}
		if bd.Exporter == nil || bd.Exporter.ID != bd.Contents.Exporter {
			t.Fatalf("accepted bundle without its exporter in the graph")
		}
	})
}
