package testnet

import (
	"context"
	"testing"
)

// TestWrongGovernanceExpectationsFail: expect-evidence fails on a mesh
// where nobody equivocated, and signed-by=old fails where nobody rotated, so
// the scenarios that use them can fail.
func TestWrongGovernanceExpectationsFail(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh")
	}
	src := []byte("authority a\nauthority b\nexpect-evidence a\ncredential c issuer=a subject=s signed-by=old\nrotate b\nexpect-evidence b on=a\n")
	sc, err := Parse("wrong.scenario", src)
	if err != nil {
		t.Fatal(err)
	}
	res, mesh, err := Run(context.Background(), sc, src, RunOptions{Dir: t.TempDir(), Logger: testLogger(t)})
	if mesh != nil {
		defer mesh.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	bad := map[int]int{}
	for _, s := range res.Steps {
		if !s.OK {
			bad[s.Line]++
			t.Logf("failed as it should: line %d %s at %s: %s", s.Line, s.Op, s.Node, s.Message)
		} else if s.Line != 1 && s.Line != 2 && s.Line != 5 {
			t.Errorf("line %d (%s) held", s.Line, s.Op)
		}
	}
	if res.OK || bad[3] != 2 || bad[4] != 1 || bad[6] != 1 {
		t.Fatalf("failures per line %v, want 2 on line 3 (each node), 1 on line 4 and 1 on line 6", bad)
	}
}
