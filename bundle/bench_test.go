package bundle

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// bigBundle is a bundle of a graph of n authorities with 99 rules each, made
// once per size and shared by the benchmarks (making the 100,000-declaration
// one signs 100,000 declarations: seconds, outside every timer).
type bigBundle struct {
	parties []party
	cred    *authority.Signed // of parties[1], for "alice"
	raw     []byte
	delta   []byte  // 100 more rules of parties[0] on top of raw
	open    *Bundle // opened once, lazily
}

var (
	bigMu    sync.Mutex
	bigCache = map[int]*bigBundle{}
)

func bigFixture(b *testing.B, authorities int) *bigBundle {
	b.Helper()
	bigMu.Lock()
	defer bigMu.Unlock()
	if bb, ok := bigCache[authorities]; ok {
		return bb
	}
	ps, decls, cred := bigGraph(b, authorities, 99)
	n := uint64(len(decls))
	// parties[0]'s rules are declarations 2..100 (after the n geneses).
	prev := authority.IDOf(decls[authorities+98])
	for seq := uint64(100); seq < 200; seq++ {
		r := ruleAt(b, ps[0], seq, prev, authority.Rule{
			Source: ps[1].id(), Subjects: "*", Resources: fmt.Sprintf("extra-%d/*", seq), Actions: []string{"read"},
		})
		decls = append(decls, r.Raw)
		prev = r.ID
	}
	log := logOf(b, decls)
	raw := build(b, contentsOf(b, decls, log, 0, n, ps[0], ps[2]), ps[0], ps[2])
	delta := build(b, contentsOf(b, decls, log, n, n+100, ps[0], ps[2]), ps[0], ps[2])
	bb := &bigBundle{parties: ps, cred: cred, raw: raw, delta: delta}
	bigCache[authorities] = bb
	return bb
}

func (bb *bigBundle) opened(b *testing.B) *Bundle {
	b.Helper()
	bigMu.Lock()
	defer bigMu.Unlock()
	if bb.open == nil {
		bd, err := Open(bb.raw, Policy{Trust: []authority.ID{bb.parties[0].id(), bb.parties[2].id()}, MinSignatures: 2})
		if err != nil {
			b.Fatal(err)
		}
		bb.open = bd
	}
	return bb.open
}

var benchSizes = []struct {
	name        string
	authorities int // each with a genesis and 99 rules
}{
	{"declarations=1000", 10},
	{"declarations=100000", 1000},
}

// BenchmarkOpen opens a full bundle, signed by two trusted authorities (k=2):
// dominated by one Ed25519 check per declaration, then the inclusion proofs
// (about 17 hashes each at 100,000) and decoding. bundle-B is the bundle's
// size in bytes.
func BenchmarkOpen(b *testing.B) {
	for _, bm := range benchSizes {
		b.Run(bm.name, func(b *testing.B) {
			bb := bigFixture(b, bm.authorities)
			want := uint64(bm.authorities * 100)
			p := Policy{Trust: []authority.ID{bb.parties[0].id(), bb.parties[2].id()}, MinSignatures: 2}
			b.ReportAllocs()
			for b.Loop() {
				bd, err := Open(bb.raw, p)
				if err != nil {
					b.Fatal(err)
				}
				if bd.GraphVersion != want {
					b.Fatalf("graph version %d, want %d", bd.GraphVersion, want)
				}
			}
			// After the loop: b.Loop's first call resets reported metrics.
			b.ReportMetric(float64(len(bb.raw)), "bundle-B")
		})
	}
}

// BenchmarkOpenDelta opens a delta of 100 declarations on an opened bundle:
// the delta's own checks, plus a parse of every declaration of the base to
// rebuild the graph without changing the base.
func BenchmarkOpenDelta(b *testing.B) {
	for _, bm := range benchSizes {
		b.Run(bm.name, func(b *testing.B) {
			bb := bigFixture(b, bm.authorities)
			base := bb.opened(b)
			p := Policy{Trust: []authority.ID{bb.parties[0].id(), bb.parties[2].id()}, MinSignatures: 2}
			b.ReportAllocs()
			for b.Loop() {
				bd, err := OpenDelta(base, bb.delta, p)
				if err != nil {
					b.Fatal(err)
				}
				if bd.GraphVersion != base.GraphVersion+100 {
					b.Fatalf("graph version %d", bd.GraphVersion)
				}
			}
			b.ReportMetric(float64(len(bb.delta)), "bundle-B")
		})
	}
}

// BenchmarkVerifyOffline decides one allow request against a loaded bundle
// (warm): authority 0 accepts principals of authority 1 by 99 rules, and the
// request is allowed by the first of them or by the last (so the decision
// scans all 99).
func BenchmarkVerifyOffline(b *testing.B) {
	at := exportTime.Add(36 * time.Hour)
	for _, bm := range benchSizes {
		for _, rule := range []int{1, 99} {
			b.Run(fmt.Sprintf("%s/rule=%d", bm.name, rule), func(b *testing.B) {
				bb := bigFixture(b, bm.authorities)
				bd := bb.opened(b)
				req := authority.Request{Credential: bb.cred.Raw, Target: bb.parties[0].id(), Resource: fmt.Sprintf("svc-%d/orders", rule), Action: "read"}
				o := VerifyOptions{LastSeen: bd.GraphVersion}
				if d := bd.Verify(req, at, o); !d.Allow {
					b.Fatalf("deny: %s", d.Message)
				}
				b.ReportAllocs()
				for b.Loop() {
					if d := bd.Verify(req, at, o); !d.Allow {
						b.Fatal(d.Message)
					}
				}
			})
		}
	}
}
