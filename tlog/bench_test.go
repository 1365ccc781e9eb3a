package tlog_test

import (
	"sync"
	"testing"

	"github.com/fednode/fednode/tlog"
)

// BenchmarkAppend is the cost of one leaf of a typical declaration's size
// (300 B): leaf hash, merges and node writes to a MemStore; and the same
// with the new root computed after each leaf, as a node that signs every
// version would.
func BenchmarkAppend(b *testing.B) {
	for _, withRoot := range []bool{false, true} {
		name := "leaf"
		if withRoot {
			name = "leaf+root"
		}
		b.Run(name, func(b *testing.B) {
			ms := tlog.NewMemStore()
			a, err := tlog.NewAppender(0, nil)
			if err != nil {
				b.Fatal(err)
			}
			d := leaf(0, 300)
			b.SetBytes(int64(len(d)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				d[0], d[1], d[2] = byte(i), byte(i>>8), byte(i>>16)
				if err := a.Append(d, ms.PutNode); err != nil {
					b.Fatal(err)
				}
				if withRoot {
					if _, err := a.Root(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

const bigTree = 1_000_000

// bigStore is a MemStore of bigTree leaves, built once per process (about
// a second) and shared by the proof benchmarks, outside their timings.
var bigStore = sync.OnceValues(func() (*tlog.MemStore, []byte) {
	ms := tlog.NewMemStore()
	a, _ := tlog.NewAppender(0, nil)
	for i := range uint64(bigTree) {
		_ = a.Append(leaf(i, 64), ms.PutNode)
	}
	root, _ := a.Root()
	return ms, root
})

func BenchmarkInclusionProof(b *testing.B) {
	ms, root := bigStore()
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		index := (i * 7919) % bigTree
		p, err := tlog.InclusionProof(ms, index, bigTree)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			if err := tlog.VerifyInclusion(leaf(index, 64), index, bigTree, p, root); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkVerifyInclusion(b *testing.B) {
	ms, root := bigStore()
	const index = 123_457
	p, err := tlog.InclusionProof(ms, index, bigTree)
	if err != nil {
		b.Fatal(err)
	}
	d := leaf(index, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := tlog.VerifyInclusion(d, index, bigTree, p, root); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsistencyProof(b *testing.B) {
	ms, _ := bigStore()
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		old := 1 + (i*7919)%(bigTree-1)
		if _, err := tlog.ConsistencyProof(ms, old, bigTree); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRootAt(b *testing.B) {
	ms, _ := bigStore()
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		if _, err := tlog.RootAt(ms, 1+(i*7919)%bigTree); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenCheckpoint(b *testing.B) {
	known := []tlog.Witness{witness(b, "aws", seedAWS), witness(b, "azure", seedAzure)}
	msg, err := tlog.SignCheckpoint(golden, "aws", fixedKey(b, seedAWS))
	if err != nil {
		b.Fatal(err)
	}
	if msg, err = tlog.Cosign(msg, "azure", fixedKey(b, seedAzure)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tlog.OpenCheckpoint(msg, known); err != nil {
			b.Fatal(err)
		}
	}
}
