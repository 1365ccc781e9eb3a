package bundle

import (
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// BenchmarkOpen opens a bundle of 1,000 declarations (two authorities, 997
// rules, one revocation): dominated by one Ed25519 check per declaration.
func BenchmarkOpen(b *testing.B) {
	_, raw := bigBundle(b, 1000)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		bd, err := Open(raw, OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if bd.GraphVersion != 1000 {
			b.Fatalf("graph version %d", bd.GraphVersion)
		}
	}
}

// BenchmarkVerifyOffline decides one allow request against a loaded bundle
// of 1,000 declarations, all but three of them rules of the target for the
// credential's source: allowed by the first rule, and by the 500th (so the
// decision scans half of them).
func BenchmarkVerifyOffline(b *testing.B) {
	f, raw := bigBundle(b, 1000)
	bd, err := Open(raw, OpenOptions{Trust: []authority.ID{f.pki.ID}})
	if err != nil {
		b.Fatal(err)
	}
	at := exportTime.Add(36 * time.Hour)
	for _, bm := range []struct {
		name     string
		resource string
	}{
		{"first rule", "svc-1/orders"},
		{"500th rule", "svc-500/orders"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			req := authority.Request{Credential: f.alice.Raw, Target: f.pki.ID, Resource: bm.resource, Action: "read"}
			if d := bd.Verify(req, at); !d.Allow {
				b.Fatalf("deny: %s", d.Message)
			}
			b.ReportAllocs()
			for b.Loop() {
				if d := bd.Verify(req, at); !d.Allow {
					b.Fatal(d.Message)
				}
			}
		})
	}
}
