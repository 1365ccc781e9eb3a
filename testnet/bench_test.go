package testnet

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkMeshStart measures how long a mesh of N nodes takes to start:
// homes initialised, nodes up, the cluster formed, and every genesis agreed
// at every node (what the story's first step waits for).
func BenchmarkMeshStart(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			names := []string{"aws-prod", "azure-corp", "gcp-analytics", "dod-pki", "sovereign-id"}[:n]
			for i := 0; i < b.N; i++ {
				specs := make([]AuthorityCmd, n)
				for j, name := range names {
					specs[j] = AuthorityCmd{Name: name}
				}
				m, err := NewMesh(MeshOptions{Dir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				ctx := context.Background()
				if err := m.Add(ctx, specs); err != nil {
					b.Fatal(err)
				}
				r := &runner{mesh: m}
				for _, name := range names {
					if err := r.waitAgreed(ctx, name, m.Node(name).Authority()); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/start")
				b.StopTimer()
				m.Close()
				b.StartTimer()
			}
		})
	}
}
