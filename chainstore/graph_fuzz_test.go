package chainstore

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzRestore feeds Restore arbitrary streams: a snapshot arrives from
// another node. Restore must never panic; a refused stream must leave the
// store as it was; an accepted one must be a snapshot exactly (persisting
// the restored store gives back the same bytes).
func FuzzRestore(f *testing.F) {
	sc := newScenario(f)
	src := newMemStore(f)
	mustApply(f, src, 4, sc.batch())
	good := snapshotBytes(f, src)
	f.Add(good)
	f.Add(snapshotBytes(f, newMemStore(f)))
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add(swapRecords34(good))
	f.Add([]byte("FEDSNAP\x01"))
	f.Add(formatV1(f, good))
	w := newEvidenceWorld(f)
	withEvidence := newMemStore(f)
	w.apply(f, withEvidence)
	f.Add(snapshotBytes(f, withEvidence))
	f.Add([]byte{})

	// One store for all inputs (opening one per input would dominate): it
	// holds the scenario before every input.
	dst := newMemStore(f)
	mustRestore(f, dst, good)
	universe := idsOf(sc.signed()...)
	base := dumpStore(f, dst, universe)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := dst.Restore(bytes.NewReader(b)); err != nil {
			if got := dumpStore(t, dst, universe); !reflect.DeepEqual(got, base) {
				t.Fatalf("refused Restore (%v) changed the store: %s, was %s", err, fmtDump(got), fmtDump(base))
			}
			return
		}
		want := b
		if b[7] == snapFormatV1 {
			// Format 1 is still read, and written back as format 2 with
			// an empty evidence section.
			want = append(append([]byte{}, b...), 0)
			want[7] = snapFormat
		}
		if again := snapshotBytes(t, dst); !bytes.Equal(again, want) {
			t.Fatalf("accepted a stream that is not the snapshot of what it restored:\n in  %x\n out %x", b, again)
		}
		mustRestore(t, dst, good)
	})
}
