package testnet

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlog routes node logs to t.Log, so only failing tests are noisy.
type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("FEDNODE_TEST_LOGS") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func runScenario(t *testing.T, name string, src []byte) {
	t.Helper()
	sc, err := Parse(name, src)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The story resolves its files in the embedded FS, as `fednode
	// testnet` runs it; a scenario file, relative to its directory.
	var files fs.FS
	if name != StoryName {
		files = scenarioDir(filepath.Dir(name))
	}
	res, mesh, err := Run(ctx, sc, src, RunOptions{Out: &out, Dir: t.TempDir(), Logger: testLogger(t), Files: files})
	if mesh != nil {
		defer mesh.Close()
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out.String())
	}
	if !res.OK {
		t.Fatalf("%s: expectations failed:\n%s", name, out.String())
	}
	t.Logf("%s:\n%s", name, out.String())
}

// TestStory runs the built-in cross-cloud story: the same run as
// `fednode testnet`.
func TestStory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 5-node mesh")
	}
	runScenario(t, StoryName, Story)
}

// TestScenarios runs every scenario under testdata/scenarios with the
// runner that `fednode testnet --scenario` uses.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts meshes")
	}
	files, err := filepath.Glob("testdata/scenarios/*.scenario")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".scenario"), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			runScenario(t, f, src)
		})
	}
}

// TestFailingExpectationFails makes sure the runner can fail: a scenario
// whose expectation is wrong reports ok=false with the line, want and got.
func TestFailingExpectationFails(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh")
	}
	src := []byte("authority a\nauthority b\ncredential c issuer=a subject=s\nexpect allow c at=b resource=r action=x\n")
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
	if res.OK {
		t.Fatal("a wrong expectation held")
	}
	var bad []StepResult
	for _, s := range res.Steps {
		if !s.OK {
			bad = append(bad, s)
		}
	}
	if len(bad) != 2 {
		t.Fatalf("want one failed check per node (2), got %+v", bad)
	}
	for _, s := range bad {
		if s.Line != 4 || s.Want != "allow" || s.Got != "deny" || s.Reason != "no-rule" || s.Op != "expect" {
			t.Errorf("failed step = %+v, want line 4 expect allow, got deny no-rule", s)
		}
	}
}
