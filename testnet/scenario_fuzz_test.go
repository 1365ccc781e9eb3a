package testnet

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// scenarioCmdTypes maps each op to the Cmd type Parse must produce for it.
var scenarioCmdTypes = map[string]reflect.Type{
	"authority":               reflect.TypeFor[*AuthorityCmd](),
	"federate":                reflect.TypeFor[*FederateCmd](),
	"credential":              reflect.TypeFor[*CredentialCmd](),
	"revoke":                  reflect.TypeFor[*RevokeCmd](),
	"expect":                  reflect.TypeFor[*ExpectCmd](),
	"bundle":                  reflect.TypeFor[*BundleCmd](),
	"expect-offline":          reflect.TypeFor[*ExpectOfflineCmd](),
	"expect-checkpoint-equal": reflect.TypeFor[*ExpectCheckpointEqualCmd](),
	"expect-converged":        reflect.TypeFor[*ExpectConvergedCmd](),
	"burst":                   reflect.TypeFor[*BurstCmd](),
	"kill":                    reflect.TypeFor[*KillCmd](),
	"restart":                 reflect.TypeFor[*RestartCmd](),
	"partition":               reflect.TypeFor[*PartitionCmd](),
	"heal":                    reflect.TypeFor[*HealCmd](),
	"wait":                    reflect.TypeFor[*WaitCmd](),
	"rotate":                  reflect.TypeFor[*RotateCmd](),
	"equivocate":              reflect.TypeFor[*EquivocateCmd](),
	"expect-evidence":         reflect.TypeFor[*ExpectEvidenceCmd](),
	"raft":                    reflect.TypeFor[*RaftCmd](),
}

// FuzzParse checks that Parse never panics, that a successful parse obeys
// the Step invariants, and that a scenario rebuilt from the steps' Text
// parses to the same commands (Text is faithful to what was parsed).
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(parseFixtureDir, "*.scenario"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte(formDecls + "expect deny c at=b resource=\"a \\\"b\\\" # c\" action=read on=a within=1d2h\n"))
	f.Add([]byte("authority a\r\nwait 1d\r\n"))
	f.Add([]byte("\ufeffkill \"a"))
	f.Add([]byte("authority a\nauthority b\npartition a from b\nburst a 7\nheal\nexpect-converged within=1s\n"))
	f.Add([]byte(formDecls + "federate b accepts a subjects=* resources=* actions=read hops=3 require=z:1,a:\"x y\"\n" +
		"credential h issuer=a subject=s holder-key=yes attr=k:v actions=read resources=db/*\n" +
		"credential d issuer=a subject=s from=h\nexpect deny d at=b resource=r action=read pop=no\n"))

	f.Fuzz(func(t *testing.T, src []byte) {
		sc, err := Parse("fuzz", src)
		lines := bytes.Count(src, []byte("\n")) + 1
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidScenario) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if pe.Line < 0 || pe.Line > lines || pe.File != "fuzz" || pe.Msg == "" {
				t.Fatalf("bad ParseError %#v for %d lines", pe, lines)
			}
			return
		}
		prev := 0
		var rebuilt strings.Builder
		for _, st := range sc.Steps {
			if st.Line <= prev || st.Line > lines {
				t.Fatalf("step line %d after %d, input has %d lines", st.Line, prev, lines)
			}
			prev = st.Line
			want, ok := scenarioCmdTypes[st.Op]
			if !ok {
				t.Fatalf("line %d: unknown op %q", st.Line, st.Op)
			}
			if st.Cmd == nil || reflect.TypeOf(st.Cmd) != want || reflect.ValueOf(st.Cmd).IsNil() {
				t.Fatalf("line %d: op %s has Cmd %#v, want a non-nil %v", st.Line, st.Op, st.Cmd, want)
			}
			if st.Text == "" || strings.ContainsAny(st.Text, "\n\r") {
				t.Fatalf("line %d: bad Text %q", st.Line, st.Text)
			}
			checkStepInvariants(t, st)
			rebuilt.WriteString(st.Text)
			rebuilt.WriteByte('\n')
		}
		again, err := Parse("rebuilt", []byte(rebuilt.String()))
		if err != nil {
			t.Fatalf("steps' Text does not parse again: %v\n%s", err, rebuilt.String())
		}
		if len(again.Steps) != len(sc.Steps) {
			t.Fatalf("rebuilt has %d steps, want %d", len(again.Steps), len(sc.Steps))
		}
		for i := range again.Steps {
			if !reflect.DeepEqual(again.Steps[i].Cmd, sc.Steps[i].Cmd) {
				t.Fatalf("step %d differs after rebuilding:\n%#v\n%#v", i, again.Steps[i].Cmd, sc.Steps[i].Cmd)
			}
		}
	})
}

// checkStepInvariants checks the documented Invariant: lines of the Cmd types.
func checkStepInvariants(t *testing.T, st Step) {
	t.Helper()
	switch c := st.Cmd.(type) {
	case *FederateCmd:
		if len(c.Actions) == 0 {
			t.Fatalf("line %d: no actions", st.Line)
		}
		if c.Until.Set && (c.Until.Relative != 0) == !c.Until.Absolute.IsZero() {
			t.Fatalf("line %d: until %#v is not exactly one of relative, absolute", st.Line, c.Until)
		}
		if !c.Until.Set && c.Until != (Until{}) {
			t.Fatalf("line %d: unset until %#v is not zero", st.Line, c.Until)
		}
	case *CredentialCmd:
		if c.TTL < 0 {
			t.Fatalf("line %d: negative ttl", st.Line)
		}
	case *ExpectCmd:
		if c.Within < 0 || c.On == "" {
			t.Fatalf("line %d: bad expect %#v", st.Line, c)
		}
	case *WaitCmd:
		if c.D < 0 {
			t.Fatalf("line %d: negative wait", st.Line)
		}
	case *ExpectConvergedCmd:
		if c.Within < 0 {
			t.Fatalf("line %d: negative within", st.Line)
		}
	case *BurstCmd:
		if c.N < 1 || c.N > MaxBurst {
			t.Fatalf("line %d: burst of %d", st.Line, c.N)
		}
	case *PartitionCmd:
		if len(c.Nodes) == 0 || c.From != nil && len(c.From) == 0 {
			t.Fatalf("line %d: partition %#v has an empty side", st.Line, c)
		}
		seen := map[string]bool{}
		for _, n := range append(slices.Clone(c.Nodes), c.From...) {
			if seen[n] {
				t.Fatalf("line %d: %q twice in partition %#v", st.Line, n, c)
			}
			seen[n] = true
		}
	}
}
