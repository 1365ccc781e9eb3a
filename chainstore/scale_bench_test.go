package chainstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/bundle"
	"github.com/fednode/fednode/tlog"
)

// BenchmarkLogProofs1M measures proof generation from badger at 1,000,000
// leaves (synthetic leaves: the tree is what is measured, not signatures).
func BenchmarkLogProofs1M(b *testing.B) {
	const n = 1_000_000
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	app, _ := tlog.NewAppender(0, nil)
	wb := s.db.NewWriteBatch()
	start := time.Now()
	leaf := make([]byte, 300)
	for i := uint64(0); i < n; i++ {
		binary.BigEndian.PutUint64(leaf, i)
		err := app.Append(leaf, func(id compact.NodeID, h []byte) {
			if err := wb.Set(treeKey(id), append([]byte(nil), h...)); err != nil {
				b.Fatal(err)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
	b.Logf("appended %d leaves in %s (%.0f leaves/s, nodes written to badger)", n, time.Since(start), n/time.Since(start).Seconds())
	root, _ := app.Root()
	ns := s.LogNodes()
	b.Run("inclusion", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			idx := uint64(i*7919) % n
			p, err := tlog.InclusionProof(ns, idx, n)
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				binary.BigEndian.PutUint64(leaf, idx)
				if err := tlog.VerifyInclusion(leaf, idx, n, p, root); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("consistency", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := tlog.ConsistencyProof(ns, uint64(i*7919)%n+1, n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// scaleKey is a deterministic key for authority i.
func scaleKey(b *testing.B, i int) *authority.PrivateKey {
	seed := sha256.Sum256([]byte(fmt.Sprint("scale-", i)))
	k, err := authority.GenerateKey(authority.AlgEd25519, bytes.NewReader(seed[:]))
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// BenchmarkExport100k builds a graph of 1,000 authorities and 100,000
// declarations (each authority declares 99 rules) through the real apply
// path, then measures what a node's bundle export does: read every
// declaration, prove each against the log, seal. It reports the bundle size.
func BenchmarkExport100k(b *testing.B) {
	const auths, rulesEach = 1000, 99
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	keys := make([]*authority.PrivateKey, auths)
	var batch [][]byte
	index := uint64(0)
	flush := func() {
		index++
		for i, err := range s.ApplyDeclarations(index, batch) {
			if err != nil {
				b.Fatalf("declaration %d of batch %d: %v", i, index, err)
			}
		}
		batch = batch[:0]
	}
	gens := make([]*authority.Signed, auths)
	for a := 0; a < auths; a++ {
		keys[a] = scaleKey(b, a)
		g, err := authority.Sign(authority.Declaration{Kind: authority.KindGenesis, IssuedAt: 1,
			Genesis: &authority.Genesis{Name: fmt.Sprintf("auth-%04d", a), Kind: "pki", RootKeys: []authority.PublicKey{keys[a].Public()}, Threshold: 1}}, keys[a])
		if err != nil {
			b.Fatal(err)
		}
		gens[a] = g
		batch = append(batch, g.Raw)
		if len(batch) == 256 {
			flush()
		}
	}
	flush()
	for a := 0; a < auths; a++ {
		prev := gens[a].ID
		for r := 1; r <= rulesEach; r++ {
			sd, err := authority.Sign(authority.Declaration{Kind: authority.KindRule, Authority: gens[a].ID, Seq: uint64(r), Prev: prev, IssuedAt: 1,
				Rule: &authority.Rule{Source: gens[(a+r)%auths].ID, Subjects: "role/*", Resources: fmt.Sprintf("res://%d/*", r), Actions: []string{"read"}}}, keys[a])
			if err != nil {
				b.Fatal(err)
			}
			prev = sd.ID
			batch = append(batch, sd.Raw)
			if len(batch) == 256 {
				flush()
			}
		}
	}
	flush()
	b.Logf("built %d declarations in %s", s.Version(), time.Since(start))
	exporter := bundle.Signer{Name: "auth-0000", ID: gens[0].ID, Key: keys[0]}
	b.ResetTimer()
	var size int
	for i := 0; i < b.N; i++ {
		n, root, err := s.LogRoot()
		if err != nil {
			b.Fatal(err)
		}
		origin := tlog.Origin("scale")
		cp, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: origin, Size: n, Root: root}, exporter.Name, exporter.Key)
		if err != nil {
			b.Fatal(err)
		}
		envs := make([][]byte, 0, n)
		if err := s.Declarations(0, n, func(_ uint64, env []byte) error {
			envs = append(envs, append([]byte(nil), env...))
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		c := bundle.Contents{GraphVersion: n, ExportedAt: 1, NotAfter: 2, Origin: origin, Checkpoint: cp, Declarations: envs}
		if err := c.ProveFull(root); err != nil {
			b.Fatal(err)
		}
		out, err := bundle.Build(c, exporter)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "bundle-bytes")
}
