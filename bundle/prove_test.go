package bundle

import (
	"bytes"
	"testing"

	"github.com/fednode/fednode/tlog"
)

// TestProveFull: proofs rebuilt from the declarations in memory equal the
// ones read from the log, and a root that is not the declarations' is
// refused.
func TestProveFull(t *testing.T) {
	f := newFixture(t)
	c := f.contents(t, 0, uint64(len(f.all)), f.pki)
	root, err := tlog.RootAt(f.log, c.GraphVersion)
	if err != nil {
		t.Fatal(err)
	}
	fromLog := c.Proofs
	c.Proofs = nil
	if err := c.ProveFull(root); err != nil {
		t.Fatal(err)
	}
	for i := range fromLog {
		for j := range fromLog[i] {
			if !bytes.Equal(fromLog[i][j], c.Proofs[i][j]) {
				t.Fatalf("proof %d hash %d differs from the log's", i, j)
			}
		}
	}
	if err := c.ProveFull(bytes.Repeat([]byte{1}, 32)); err == nil {
		t.Fatal("ProveFull accepted a root that is not the declarations'")
	}
	delta := f.contents(t, 2, uint64(len(f.all)), f.pki)
	if err := delta.ProveFull(root); err == nil {
		t.Fatal("ProveFull of a delta bundle did not refuse")
	}
}
