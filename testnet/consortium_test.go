package testnet

import (
	"reflect"
	"strings"
	"testing"
)

func init() {
	for op, t := range map[string]reflect.Type{
		"charter":         reflect.TypeFor[*CharterCmd](),
		"join":            reflect.TypeFor[*JoinCmd](),
		"approve":         reflect.TypeFor[*MemberActCmd](),
		"approve-removal": reflect.TypeFor[*MemberActCmd](),
		"leave":           reflect.TypeFor[*LeaveCmd](),
		"expect-member":   reflect.TypeFor[*ExpectMemberCmd](),
	} {
		scenarioCmdTypes[op] = t
	}
}

func TestParseConsortiumErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		frag string
	}{
		{"charter after another line", "authority a\nauthority b\nwait 1s\ncharter threshold=1", 4, "right after the founders"},
		{"charter first", "charter threshold=1", 1, "right after the founders"},
		{"charter without threshold", "authority a\ncharter", 2, "missing threshold="},
		{"charter unknown voter", "authority a\ncharter threshold=1 voters=z", 2, `no authority named "z"`},
		{"join before any founder", "join z", 1, "declare its founders"},
		{"join a known name", "authority a\njoin a", 2, `authority "a" is already defined`},
		{"approve own admission", "authority a\njoin b\napprove b b", 3, "its own admission"},
		{"approve own removal", "authority a\nauthority b\napprove-removal a a", 3, "leave NAME"},
		{"approve unknown", "authority a\napprove a z", 2, `no authority named "z"`},
		{"expect-member bad status", "authority a\nexpect-member a status=gone", 2, `bad status= "gone"`},
		{"leave unknown", "authority a\nleave z", 2, `no authority named "z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.scenario", []byte(tt.src))
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("Parse: %v, want a *ParseError", err)
			}
			if pe.Line != tt.line || !strings.Contains(pe.Msg, tt.frag) {
				t.Fatalf("got line %d: %s\nwant line %d: ...%s...", pe.Line, pe.Msg, tt.line, tt.frag)
			}
		})
	}
}
