package testnet

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// formDecls declares the names the form tests refer to, on lines 1-5.
const formDecls = `authority a
authority b kind=pki
credential c issuer=a subject=s
federate b accepts a subjects=* resources=* actions=read as=rule1
bundle bb from=b
`

// lastScenarioCmd parses src and returns the Cmd of its last step.
func lastScenarioCmd(t *testing.T, src string) any {
	t.Helper()
	sc, err := Parse("t.scenario", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(sc.Steps) == 0 {
		t.Fatal("no steps")
	}
	return sc.Steps[len(sc.Steps)-1].Cmd
}

func TestParseForms(t *testing.T) {
	abs := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		line string // appended to decls
		want any
	}{
		{"authority", "authority n1", &AuthorityCmd{Name: "n1"}},
		{"authority kind", "authority n1 kind=oidc", &AuthorityCmd{Name: "n1", Kind: "oidc"}},
		{"authority name chars", "authority 9a.B_c-d", &AuthorityCmd{Name: "9a.B_c-d"}},
		{"federate minimal", "federate a accepts b subjects=* resources=db/* actions=read",
			&FederateCmd{Target: "a", Source: "b", Subjects: "*", Resources: "db/*", Actions: []string{"read"}}},
		{"federate keys any order", "federate a accepts b as=r9 actions=read,write until=36h resources=x subjects=y",
			&FederateCmd{Target: "a", Source: "b", Subjects: "y", Resources: "x", Actions: []string{"read", "write"},
				Until: Until{Set: true, Raw: "36h", Relative: 36 * time.Hour}, As: "r9"}},
		{"federate until days", "federate a accepts b subjects=* resources=* actions=read until=1d",
			&FederateCmd{Target: "a", Source: "b", Subjects: "*", Resources: "*", Actions: []string{"read"},
				Until: Until{Set: true, Raw: "1d", Relative: 24 * time.Hour}}},
		{"federate until negative", "federate a accepts b subjects=* resources=* actions=read until=-2h",
			&FederateCmd{Target: "a", Source: "b", Subjects: "*", Resources: "*", Actions: []string{"read"},
				Until: Until{Set: true, Raw: "-2h", Relative: -2 * time.Hour}}},
		{"federate until RFC3339", "federate a accepts b subjects=* resources=* actions=read until=2030-01-02T15:04:05Z",
			&FederateCmd{Target: "a", Source: "b", Subjects: "*", Resources: "*", Actions: []string{"read"},
				Until: Until{Set: true, Raw: "2030-01-02T15:04:05Z", Absolute: abs}}},
		{"federate self", "federate a accepts a subjects=* resources=* actions=read",
			&FederateCmd{Target: "a", Source: "a", Subjects: "*", Resources: "*", Actions: []string{"read"}}},
		{"credential", "credential d issuer=b subject=role/x",
			&CredentialCmd{Name: "d", Issuer: "b", Subject: "role/x"}},
		{"credential ttl", "credential d ttl=1d12h subject=x issuer=a",
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "x", TTL: 36 * time.Hour}},
		{"revoke credential", "revoke a c", &RevokeCmd{Auth: "a", Name: "c"}},
		{"revoke rule", "revoke b rule1", &RevokeCmd{Auth: "b", Name: "rule1"}},
		{"expect defaults", "expect allow c at=b resource=db/1 action=read",
			&ExpectCmd{Allow: true, Cred: "c", At: "b", Resource: "db/1", Action: "read", On: "all"}},
		{"expect all keys", "expect deny c within=30s on=a reason=revoked action=write resource=db/1 at=b",
			&ExpectCmd{Cred: "c", At: "b", Resource: "db/1", Action: "write", Reason: "revoked", On: "a", Within: 30 * time.Second}},
		{"expect on=all explicit", "expect deny c at=b resource=r action=read on=all",
			&ExpectCmd{Cred: "c", At: "b", Resource: "r", Action: "read", On: "all"}},
		{"expect within zero", "expect deny c at=b resource=r action=read within=0s",
			&ExpectCmd{Cred: "c", At: "b", Resource: "r", Action: "read", On: "all"}},
		{"bundle", "bundle b2 from=a", &BundleCmd{Name: "b2", From: "a"}},
		{"expect-offline", "expect-offline allow c bundle=bb at=b resource=r action=read",
			&ExpectOfflineCmd{Allow: true, Cred: "c", Bundle: "bb", At: "b", Resource: "r", Action: "read"}},
		{"expect-offline reason", "expect-offline deny c reason=stale action=read resource=r at=a bundle=bb",
			&ExpectOfflineCmd{Cred: "c", Bundle: "bb", At: "a", Resource: "r", Action: "read", Reason: "stale"}},
		{"kill", "kill a", &KillCmd{Node: "a"}},
		{"restart", "restart b", &RestartCmd{Node: "b"}},
		{"wait", "wait 1500ms", &WaitCmd{D: 1500 * time.Millisecond}},
		{"wait days", "wait 2d", &WaitCmd{D: 48 * time.Hour}},
		{"wait zero", "wait 0s", &WaitCmd{}},
		{"burst", "burst a 300", &BurstCmd{Auth: "a", N: 300}},
		{"burst max", "burst b 10000", &BurstCmd{Auth: "b", N: MaxBurst}},
		{"partition one", "partition a", &PartitionCmd{Nodes: []string{"a"}}},
		{"partition from", "partition a from b", &PartitionCmd{Nodes: []string{"a"}, From: []string{"b"}}},
		{"partition list", "partition b,a", &PartitionCmd{Nodes: []string{"b", "a"}}},
		{"heal", "heal", &HealCmd{}},
		{"expect-converged", "expect-converged", &ExpectConvergedCmd{}},
		{"expect-converged within", "expect-converged within=1m", &ExpectConvergedCmd{Within: time.Minute}},
		{"expect-checkpoint-equal", "expect-checkpoint-equal", &ExpectCheckpointEqualCmd{}},

		// Governance: hops, conditions, narrowing, holder keys, delegation.
		{"federate hops", "federate b accepts a subjects=* resources=* actions=read hops=2",
			&FederateCmd{Target: "b", Source: "a", Subjects: "*", Resources: "*", Actions: []string{"read"}, Hops: 2}},
		{"federate hops zero", "federate b accepts a subjects=* resources=* actions=read hops=0",
			&FederateCmd{Target: "b", Source: "a", Subjects: "*", Resources: "*", Actions: []string{"read"}}},
		{"federate hops max", "federate b accepts a subjects=* resources=* actions=read hops=255",
			&FederateCmd{Target: "b", Source: "a", Subjects: "*", Resources: "*", Actions: []string{"read"}, Hops: 255}},
		{"federate require sorted", "federate b accepts a subjects=* resources=* actions=read require=level:2,dept:finance",
			&FederateCmd{Target: "b", Source: "a", Subjects: "*", Resources: "*", Actions: []string{"read"},
				Require: []authority.Attr{{Key: "dept", Value: "finance"}, {Key: "level", Value: "2"}}}},
		{"federate require colon in value", `federate b accepts a subjects=* resources=* actions=read require="group:cn=ops:eu west"`,
			&FederateCmd{Target: "b", Source: "a", Subjects: "*", Resources: "*", Actions: []string{"read"},
				Require: []authority.Attr{{Key: "group", Value: "cn=ops:eu west"}}}},
		{"credential narrowed", "credential d issuer=a subject=s attr=dept:ops resources=db/* actions=read,write",
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "s", Attrs: []authority.Attr{{Key: "dept", Value: "ops"}},
				Resources: "db/*", Actions: []string{"read", "write"}}},
		{"credential holder key", "credential d issuer=a subject=s holder-key=yes",
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "s", HolderKey: true}},
		{"credential holder key no", "credential d issuer=a subject=s holder-key=no",
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "s"}},
		{"credential delegated", "credential p issuer=a subject=s holder-key=yes\ncredential d issuer=a subject=s from=p ttl=1h actions=read",
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "s", From: "p", TTL: time.Hour, Actions: []string{"read"}}},
		{"credential delegated twice", "credential p issuer=a subject=s holder-key=yes\ncredential q issuer=a subject=s from=p holder-key=yes\ncredential d issuer=a subject=t from=q",
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "t", From: "q"}},
		{"expect pop no", "expect allow c at=b resource=r action=read pop=no",
			&ExpectCmd{Allow: true, Cred: "c", At: "b", Resource: "r", Action: "read", On: "all", NoPoP: true}},
		{"expect pop yes", "expect allow c at=b resource=r action=read pop=yes",
			&ExpectCmd{Allow: true, Cred: "c", At: "b", Resource: "r", Action: "read", On: "all"}},

		// Quoting, comments, escapes.
		{"quoted value with spaces", `credential d issuer=a subject="role/a b"`,
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "role/a b"}},
		{"escaped quote and backslash", `credential d issuer=a subject="say \"hi\" C:\\x"`,
			&CredentialCmd{Name: "d", Issuer: "a", Subject: `say "hi" C:\x`}},
		{"hash inside quotes is literal", `credential d issuer=a subject="a # b" # real comment`,
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "a # b"}},
		{"comment right after token", "kill a# gone",
			&KillCmd{Node: "a"}},
		{"comment right after quote", `credential d issuer=a subject="x"#c`,
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "x"}},
		{"quoted positional", `expect "allow" "c" at=b resource="r 1" action=read`,
			&ExpectCmd{Allow: true, Cred: "c", At: "b", Resource: "r 1", Action: "read", On: "all"}},
		{"quoted keyword", `federate a "accepts" b subjects=* resources=* actions=read`,
			&FederateCmd{Target: "a", Source: "b", Subjects: "*", Resources: "*", Actions: []string{"read"}}},
		{"equals in value", "credential d issuer=a subject=cn=x,o=y",
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "cn=x,o=y"}},
		{"backslash outside quotes is literal", `credential d issuer=a subject=a\b`,
			&CredentialCmd{Name: "d", Issuer: "a", Subject: `a\b`}},
		{"unicode value", `credential d issuer=a subject="Zoë Ünïcode"`,
			&CredentialCmd{Name: "d", Issuer: "a", Subject: "Zoë Ünïcode"}},
		{"tabs and extra spaces", "\t kill \t  a   ", &KillCmd{Node: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lastScenarioCmd(t, formDecls+tt.line+"\n")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		line  int
		frags []string // each must occur in ParseError.Msg
	}{
		// Shape.
		{"unknown op", "authority a\nfederat a accepts a", 2, []string{`unknown op "federat"`, `did you mean "federate"`}},
		{"unknown op no suggestion", "launch", 1, []string{`unknown op "launch"`, "authority, federate"}},
		{"op is a key", "x=y", 1, []string{`line starts with "x=y"`}},
		{"op quoted", `"kill" a`, 1, []string{`line starts with "\"kill\""`}},
		{"op case sensitive", "Authority a", 1, []string{`unknown op "Authority"`, `did you mean "authority"`}},
		{"missing positional", "authority", 1, []string{"authority: missing NAME", "(want: authority NAME [kind=KIND] [alg="}},
		// External credentials and root keys.
		{"bad alg", "authority a alg=rsa", 1, []string{`bad alg= "rsa": must be ed25519, mldsa65 or hybrid`}},
		{"threshold above keys", "authority a keys=2 threshold=3", 1, []string{"threshold=3 exceeds the 2 root keys"}},
		{"threshold without keys", "authority a threshold=2", 1, []string{"threshold=2 exceeds the 1 root keys"}},
		{"jwks without issuer", "authority a jwks=k.json", 1, []string{"jwks= and issuer= go together"}},
		{"issuer without jwks", "authority a issuer=https://x", 1, []string{"jwks= and issuer= go together"}},
		{"expect no credential", "authority a\nexpect allow at=a resource=r action=read", 2, []string{"exactly one of a credential name, jwt=FILE and x509=FILE"}},
		{"expect cred and jwt", "authority a\ncredential c issuer=a subject=s\nexpect allow c jwt=t.jwt at=a resource=r action=read", 3, []string{"exactly one of"}},
		{"expect jwt and x509", "authority a\nexpect allow jwt=t.jwt x509=c.pem at=a resource=r action=read", 2, []string{"exactly one of"}},
		{"extra positional", "authority a b", 1, []string{`unexpected argument "b"`}},
		{"positional after key", "authority a kind=x b", 1, []string{`argument "b" after key=value pairs`}},
		{"accepts missing", "authority a\nauthority b\nfederate a b subjects=* resources=* actions=read", 3,
			[]string{`want keyword "accepts", got "b"`}},
		{"accepts misspelt", "authority a\nfederate a accept a", 2, []string{`want keyword "accepts", got "accept"`}},
		{"source missing", "authority a\nfederate a accepts subjects=* resources=* actions=read", 2, []string{"missing SOURCE"}},
		{"verdictValue", "authority a\ncredential c issuer=a subject=s\nexpect permit c at=a resource=r action=read", 3,
			[]string{`bad allow|deny "permit": must be allow or deny`}},
		{"missing required key", "authority a\nfederate a accepts a subjects=* resources=*", 2,
			[]string{"federate: missing actions=", "(want: federate TARGET accepts SOURCE"}},
		{"missing first required key reported", "authority a\ncredential c", 2, []string{"missing issuer="}},
		{"unknown key", "authority a\ncredential c issuer=a subject=s hops=2", 2,
			[]string{`unknown key "hops=2"`, "allowed: issuer=, subject=, ttl="}},
		{"unknown key suggestion", "authority a\ncredential c issuer=a subject=s tll=1h", 2, []string{"did you mean ttl=?"}},
		{"key on op without keys", "authority a\nkill a now=1", 2, []string{`unknown key "now=1"`, "kill takes no keys"}},
		{"duplicate key", "authority a\ncredential c issuer=a subject=s subject=t", 2, []string{"duplicate key subject="}},
		{"empty value", "authority a\ncredential c issuer=a subject=", 2, []string{`empty value in "subject="`}},
		{"empty quoted value", "authority a\ncredential c issuer=a subject=\"\"", 2, []string{`empty value in "subject=\"\""`}},
		{"empty quoted positional", `authority ""`, 1, []string{"empty NAME"}},
		{"missing key before =", "authority a =x", 1, []string{`missing key before = in "=x"`}},

		// Values.
		{"bad name", "authority a/b", 1, []string{`bad NAME "a/b": must match [A-Za-z0-9][A-Za-z0-9._-]*`}},
		{"name leading dot", "authority .a", 1, []string{`bad NAME ".a"`}},
		{"name with space quoted", `authority "a b"`, 1, []string{`bad NAME "\"a b\""`}},
		{"reserved name", "authority all", 1, []string{`"all" is reserved`}},
		{"bad kind", "authority a kind=a+b", 1, []string{`bad kind= "a+b"`}},
		{"bad duration", "authority a\ncredential c issuer=a subject=s ttl=5", 2, []string{`bad ttl= "5": must be a duration`}},
		{"bad days", "wait 1.5d", 1, []string{`bad DUR "1.5d"`, "whole number"}},
		{"days not first", "wait 12h1d", 1, []string{`bad DUR "12h1d"`}},
		{"signed tail", "wait 1d-1h", 1, []string{`bad DUR "1d-1h"`}},
		{"days overflow", "wait 999999999d", 1, []string{"too long"}},
		{"days plus tail overflow", "wait 106751d23h59m59s", 1, []string{"too long"}},
		{"negative wait", "wait -1s", 1, []string{"must not be negative"}},
		{"zero ttl", "authority a\ncredential c issuer=a subject=s ttl=0s", 2, []string{"must be positive"}},
		{"negative within", "authority a\ncredential c issuer=a subject=s\nexpect allow c at=a resource=r action=x within=-1s", 3,
			[]string{`bad within= "-1s"`}},
		{"bad until", "authority a\nfederate a accepts a subjects=* resources=* actions=r until=tomorrow", 2,
			[]string{`bad until= "tomorrow"`, "RFC3339"}},
		{"bad until date only", "authority a\nfederate a accepts a subjects=* resources=* actions=r until=2030-01-02", 2,
			[]string{`bad until= "2030-01-02"`}},
		{"zero until", "authority a\nfederate a accepts a subjects=* resources=* actions=r until=0s", 2, []string{"must not be zero"}},
		{"zero time until", "authority a\nfederate a accepts a subjects=* resources=* actions=r until=0001-01-01T00:00:00Z", 2,
			[]string{"zero time"}},
		{"empty action", "authority a\nfederate a accepts a subjects=* resources=* actions=read,,write", 2, []string{"empty item"}},
		{"trailing comma action", "authority a\nfederate a accepts a subjects=* resources=* actions=read,", 2, []string{"empty item"}},
		{"bad action", "authority a\nfederate a accepts a subjects=* resources=* actions=read,wr!te", 2, []string{`action "wr!te" must match`}},
		{"duplicate action", "authority a\nfederate a accepts a subjects=* resources=* actions=read,read", 2, []string{`"read" is listed twice`}},
		{"bad reason", "authority a\ncredential c issuer=a subject=s\nexpect deny c at=a resource=r action=x reason=\"no rule\"", 3,
			[]string{`bad reason= "no rule"`}},

		// Lexing.
		{"unterminated quote", "authority a\ncredential c issuer=a subject=\"role/admin", 2,
			[]string{`unterminated quote in "subject=\"role/admin"`}},
		{"unterminated quoted positional", `authority "a`, 1, []string{"unterminated quote"}},
		{"quote escaped at end", `authority "a\"`, 1, []string{"unterminated quote"}},
		{"unknown escape", `authority a kind="x\ny"`, 1, []string{`unknown escape "\\n"`}},
		{"backslash at end", `authority a kind="x\`, 1, []string{`unknown escape "\\"`}},
		{"quote mid token", `authority a"b"`, 1, []string{`unexpected quote in "a\""`}},
		{"quote mid value", `authority a kind=x"y"`, 1, []string{`unexpected quote in "kind=x\""`}},
		{"text after quote", `authority a kind="x"y`, 1, []string{`unexpected "y" after closing quote`}},
		{"quoted key", `authority a "kind"=x`, 1, []string{`unexpected "=" after closing quote`}},
		{"control char", "authority a\x01", 1, []string{"control character U+0001"}},
		{"bare CR mid line", "authority a\rkind=x", 1, []string{"control character U+000D"}},
		{"invalid utf8", "authority a\xff", 1, []string{"invalid UTF-8"}},
		{"error after blank lines", "\n\n# c\n\nbogus", 5, []string{`unknown op "bogus"`}},
		{"CRLF line numbers", "authority a\r\n\r\nbogus\r\n", 3, []string{`unknown op "bogus"`}},

		// Semantics.
		{"undeclared target", "authority a\nfederate b accepts a subjects=* resources=* actions=read", 2,
			[]string{`TARGET "b": no authority named "b"`, "authority NAME [kind=KIND]"}},
		{"undeclared source", "authority a\nfederate a accepts b subjects=* resources=* actions=read", 2, []string{`SOURCE "b"`}},
		{"declared later", "federate a accepts a subjects=* resources=* actions=read\nauthority a", 1, []string{`TARGET "a"`}},
		{"undeclared issuer", "credential c issuer=x subject=s", 1, []string{`issuer= "x": no authority`}},
		{"undeclared at", "authority a\ncredential c issuer=a subject=s\nexpect allow c at=z resource=r action=x", 3, []string{`at= "z"`}},
		{"undeclared on", "authority a\ncredential c issuer=a subject=s\nexpect allow c at=a resource=r action=x on=z", 3,
			[]string{`on= "z": want all or the name of an authority`}},
		{"undeclared from", "bundle b from=a", 1, []string{`from= "a"`}},
		{"undeclared kill", "kill a", 1, []string{`kill: NODE "a": no authority`}},
		{"undeclared restart", "restart a", 1, []string{`restart: NODE "a"`}},
		{"undeclared revoke auth", "revoke a c", 1, []string{`revoke: AUTH "a"`}},
		{"undefined credential", "authority a\nexpect allow c at=a resource=r action=x", 2,
			[]string{`CRED "c": no credential named "c"`, "credential NAME issuer=AUTH"}},
		{"undefined offline credential", "authority a\nbundle bb from=a\nexpect-offline allow c bundle=bb at=a resource=r action=x", 3,
			[]string{`CRED "c"`}},
		{"undefined bundle", "authority a\ncredential c issuer=a subject=s\nexpect-offline allow c bundle=bb at=a resource=r action=x", 3,
			[]string{`bundle= "bb": no bundle`}},
		{"expect names a rule", "authority a\nfederate a accepts a subjects=* resources=* actions=r as=r1\nexpect allow r1 at=a resource=r action=x", 3,
			[]string{`"r1" is a federate as= rule (line 2), not a credential`}},
		{"revoke undefined", "authority a\nrevoke a nope", 2, []string{`NAME "nope": no credential or federate as= rule`}},
		{"revoke an authority", "authority a\nrevoke a a", 2, []string{`NAME "a": no credential or federate as= rule`}},
		{"duplicate authority", "authority a\nauthority a kind=x", 2, []string{`authority "a" is already defined on line 1`}},
		{"duplicate credential", "authority a\ncredential c issuer=a subject=s\ncredential c issuer=a subject=t", 3,
			[]string{`credential "c" is already defined on line 2`}},
		{"duplicate bundle", "authority a\nbundle x from=a\nbundle x from=a", 3, []string{`bundle "x" is already defined on line 2`}},
		{"duplicate rule", "authority a\nfederate a accepts a subjects=* resources=* actions=r as=r1\nfederate a accepts a subjects=* resources=* actions=w as=r1", 3,
			[]string{`as= "r1"`, "already defined on line 2"}},
		{"credential named like rule", "authority a\nfederate a accepts a subjects=* resources=* actions=r as=x\ncredential x issuer=a subject=s", 3,
			[]string{"already defined on line 2 as a federate as= rule", "share names"}},
		{"first bad line wins", "bogus1\nbogus2", 1, []string{`"bogus1"`}},

		// Faults and load.
		{"partition nothing", "partition", 1, []string{"partition: missing NODE[,NODE...]",
			"(want: partition NODE[,NODE...] [from NODE[,NODE...]])"}},
		{"partition undeclared", "authority a\npartition a,b", 2, []string{`partition: NODE[,NODE...] "b": no authority named "b"`}},
		{"partition undeclared from", "authority a\npartition a from z", 2, []string{`NODE[,NODE...] "z": no authority`}},
		{"partition from missing", "authority a\npartition a from", 2, []string{"partition: missing NODE[,NODE...]"}},
		{"partition two lists", "authority a\nauthority b\npartition a b", 3, []string{`want keyword "from", got "b"`}},
		{"partition extra", "authority a\nauthority b\npartition a from b a", 3, []string{`unexpected argument "a"`}},
		{"partition both sides", "authority a\nauthority b\npartition a,b from b", 3, []string{`node "b" is on both sides`}},
		{"partition twice", "authority a\npartition a,a", 2, []string{`"a" is listed twice`}},
		{"partition empty item", "authority a\npartition a,", 2, []string{`"" is not a name`}},
		{"partition spaces", "authority a\nauthority b\npartition a, b", 3, []string{`"" is not a name`}},
		{"partition key", "authority a\npartition a within=1s", 2, []string{"partition takes no keys"}},
		{"heal args", "heal now", 1, []string{`heal: unexpected argument "now"`}},
		{"burst no count", "authority a\nburst a", 2, []string{"burst: missing N", "(want: burst AUTH N [kill=NODE])"}},
		{"burst kills its own node", "authority a\nauthority b\nburst a 3 kill=a", 3, []string{"kill=a is the burst's own node"}},
		{"raft after an authority", "authority a\nraft snapshot-threshold=8", 2, []string{"raft must come before the first authority line"}},
		{"burst zero", "authority a\nburst a 0", 2, []string{`bad N "0": must be from 1 to 10000`}},
		{"burst too many", "authority a\nburst a 10001", 2, []string{"must be from 1 to 10000, got 10001"}},
		{"burst not a number", "authority a\nburst a 1e3", 2, []string{`bad N "1e3": must be a whole number`}},
		{"burst signed", "authority a\nburst a +5", 2, []string{`bad N "+5"`}},
		{"burst overflow", "authority a\nburst a 99999999999999999999", 2, []string{"must be a whole number"}},
		{"burst undeclared", "burst a 3", 1, []string{`burst: AUTH "a": no authority`}},
		{"expect-converged bad within", "expect-converged within=soon", 1, []string{`bad within= "soon"`}},
		{"bad line defines nothing", "authority a kind=a+b\nkill a", 1, []string{"kind="}},

		// Governance.
		{"hops too big", "authority a\nfederate a accepts a subjects=* resources=* actions=r hops=256", 2,
			[]string{`bad hops= "256": must be a whole number from 0 to 255`}},
		{"hops negative", "authority a\nfederate a accepts a subjects=* resources=* actions=r hops=-1", 2, []string{`bad hops= "-1"`}},
		{"require not a pair", "authority a\nfederate a accepts a subjects=* resources=* actions=r require=dept", 2,
			[]string{`bad require= "dept": "dept" is not KEY:VALUE`}},
		{"require empty value", "authority a\nfederate a accepts a subjects=* resources=* actions=r require=dept:", 2,
			[]string{`"dept:" is not KEY:VALUE`}},
		{"require bad key", "authority a\nfederate a accepts a subjects=* resources=* actions=r require=d/x:1", 2,
			[]string{`key "d/x" must match`}},
		{"require duplicate key", "authority a\nfederate a accepts a subjects=* resources=* actions=r require=a:1,b:2,a:3", 2,
			[]string{`key "a" is listed twice`}},
		{"attr empty item", "authority a\ncredential c issuer=a subject=s attr=a:1,", 2, []string{`bad attr= "a:1,"`}},
		{"credential duplicate action", "authority a\ncredential c issuer=a subject=s actions=read,read", 2, []string{`"read" is listed twice`}},
		{"holder key maybe", "authority a\ncredential c issuer=a subject=s holder-key=maybe", 2, []string{`bad holder-key= "maybe": must be yes or no`}},
		{"pop maybe", "authority a\ncredential c issuer=a subject=s\nexpect allow c at=a resource=r action=x pop=off", 3,
			[]string{`bad pop= "off": must be yes or no`}},
		{"from undefined", "authority a\ncredential c issuer=a subject=s from=p", 2, []string{`from= "p": no credential named "p"`}},
		{"from without holder key", "authority a\ncredential p issuer=a subject=s\ncredential c issuer=a subject=s from=p", 3,
			[]string{`credential: from=p: credential "p" has no holder key`, "holder-key=yes"}},
		{"from holder-key=no", "authority a\ncredential p issuer=a subject=s holder-key=no\ncredential c issuer=a subject=s from=p", 3,
			[]string{`credential "p" has no holder key`}},
		{"from a rule", "authority a\nfederate a accepts a subjects=* resources=* actions=r as=r1\ncredential c issuer=a subject=s from=r1", 3,
			[]string{`"r1" is a federate as= rule (line 2), not a credential`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := Parse("t.scenario", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded with %d steps; want an error on line %d", len(sc.Steps), tt.line)
			}
			if sc != nil {
				t.Errorf("Parse returned a scenario along with the error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if !errors.Is(err, ErrInvalidScenario) {
				t.Errorf("errors.Is(err, ErrInvalidScenario) = false")
			}
			if pe.File != "t.scenario" || pe.Line != tt.line {
				t.Errorf("error at %s:%d, want t.scenario:%d (%v)", pe.File, pe.Line, tt.line, err)
			}
			for _, f := range tt.frags {
				if !strings.Contains(pe.Msg, f) {
					t.Errorf("message %q lacks %q", pe.Msg, f)
				}
			}
		})
	}
}

func TestParseErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  *ParseError
		want string
	}{
		{"line", &ParseError{File: "story.scenario", Line: 7, Msg: "federate: x"}, "story.scenario:7: federate: x"},
		{"whole file", &ParseError{File: "big.scenario", Msg: "too big"}, "big.scenario: too big"},
		{"no name", &ParseError{Line: 2, Msg: "m"}, "<scenario>:2: m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// The example from the language's documentation, end to end.
	_, err := Parse("story.scenario", []byte("authority a\nauthority b\n\n\n\n\nfederate b accepts a subjects=* resources=*\n"))
	want := "story.scenario:7: federate: missing actions= (want: federate TARGET accepts SOURCE subjects=GLOB " +
		"resources=GLOB actions=A[,A...] [until=DUR|RFC3339] [as=NAME] [hops=N] [require=KEY:VALUE[,KEY:VALUE...]])"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestUsage pins the grammar: it is a public interface, so a table edit
// that changes an existing form must show up here.
func TestUsage(t *testing.T) {
	want := `authority NAME [kind=KIND] [alg=ed25519|mldsa65|hybrid] [keys=N] [threshold=K] [jwks=FILE] [issuer=URL] [x509-roots=FILE]
federate TARGET accepts SOURCE subjects=GLOB resources=GLOB actions=A[,A...] [until=DUR|RFC3339] [as=NAME] [hops=N] [require=KEY:VALUE[,KEY:VALUE...]]
credential NAME issuer=AUTH subject=S [ttl=DUR] [attr=KEY:VALUE[,KEY:VALUE...]] [resources=GLOB] [actions=A[,A...]] [holder-key=yes] [from=CRED] [signed-by=current|old] [signatures=N]
revoke AUTH NAME
burst AUTH N [kill=NODE]
expect allow|deny [CRED] at=AUTH resource=R action=A [reason=CODE] [on=all|NODE] [within=DUR] [pop=no] [jwt=FILE] [x509=FILE]
bundle NAME from=NODE [max-age=DUR] [cosign=A,B]
expect-offline allow|deny CRED bundle=NAME at=AUTH resource=R action=A [reason=CODE] [at-time=RFC3339] [allow-stale=DUR]
expect-checkpoint-equal [within=DUR]
expect-converged [within=DUR]
kill NODE
restart NODE [snapshot=yes]
partition NODE[,NODE...] [from NODE[,NODE...]]
heal
wait DUR
rotate AUTH [keys=N] [threshold=K]
equivocate AUTH
expect-evidence AUTH [on=all|NODE] [within=DUR]
charter threshold=K [voters=A,B,...] [admit-voters=yes|no]
join NAME [kind=KIND]
approve AUTH NAME
approve-removal AUTH NAME
leave NAME
expect-member NAME [on=all|NODE] [within=DUR] [status=member|pending|removed]
raft [snapshot-threshold=N] [trailing-logs=M] [snapshot-interval=DUR]
`
	if got := Usage(); got != want {
		t.Errorf("Usage() =\n%s\nwant\n%s", got, want)
	}
}

func TestParseLinesAndText(t *testing.T) {
	src := "\ufeff# header\n\nauthority a   # the first\r\n\t\n  kill a\t\nwait 1s # w\n# trailing"
	sc, err := Parse("t", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{Line: 3, Text: "authority a", Op: "authority", Cmd: &AuthorityCmd{Name: "a"}},
		{Line: 5, Text: "kill a", Op: "kill", Cmd: &KillCmd{Node: "a"}},
		{Line: 6, Text: "wait 1s", Op: "wait", Cmd: &WaitCmd{D: time.Second}},
	}
	if !reflect.DeepEqual(sc.Steps, want) {
		t.Errorf("got  %#v\nwant %#v", sc.Steps, want)
	}
}

func TestParseEmpty(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"nil", ""},
		{"blank lines", "\n\n  \t\n"},
		{"comments only", "# a\n   # b \"unbalanced\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := Parse("t", []byte(tt.src))
			if err != nil || sc == nil || len(sc.Steps) != 0 {
				t.Errorf("got %v, %v; want an empty scenario", sc, err)
			}
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	line := "wait 1s\n"
	n := MaxScenarioSize / len(line)
	fits := []byte(strings.Repeat(line, n))
	if _, err := Parse("t", fits); err != nil {
		t.Fatalf("%d bytes: %v", len(fits), err)
	}
	big := make([]byte, MaxScenarioSize+1)
	_, err := Parse("big", big)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 0 || !strings.Contains(pe.Msg, "MaxScenarioSize") {
		t.Fatalf("got %v; want a whole-file ParseError naming MaxScenarioSize", err)
	}

	path := filepath.Join(t.TempDir(), "big.scenario")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(path); !errors.As(err, &pe) || pe.File != path || pe.Line != 0 {
		t.Fatalf("ParseFile: got %v; want a size ParseError naming %s", err, path)
	}
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "nope.scenario"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalidScenario) {
		t.Fatalf("got %v; want a not-exist I/O error", err)
	}
	if !strings.HasPrefix(err.Error(), "testnet: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"go seconds", "90s", 90 * time.Second, true},
		{"go compound", "1h30m", 90 * time.Minute, true},
		{"fraction", "1.5h", 90 * time.Minute, true},
		{"day", "1d", 24 * time.Hour, true},
		{"days and hours", "2d3h", 51 * time.Hour, true},
		{"negative days", "-1d", -24 * time.Hour, true},
		{"negative days and hours", "-1d1h", -25 * time.Hour, true},
		{"plus days", "+1d", 24 * time.Hour, true},
		{"zero", "0", 0, true},
		{"zero days", "0d", 0, true},
		{"max days", "106751d", 106751 * 24 * time.Hour, true},
		{"no unit", "5", 0, false},
		{"bare d", "d", 0, false},
		{"fraction days", "0.5d", 0, false},
		{"two d", "1d1d", 0, false},
		{"unknown unit", "1w", 0, false},
		{"empty", "", 0, false},
		{"sign only", "-", 0, false},
		{"days too many", "106752d", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestLex(t *testing.T) {
	type tok struct{ key, val string }
	tests := []struct {
		name string
		in   string
		want []tok
		text string
	}{
		{"words", "a b  c", []tok{{"", "a"}, {"", "b"}, {"", "c"}}, "a b  c"},
		{"kv", "k=v k2=\"v 2\"", []tok{{"k", "v"}, {"k2", "v 2"}}, `k=v k2="v 2"`},
		{"comment", "a # b c", []tok{{"", "a"}}, "a"},
		{"comment only", "# x", nil, ""},
		{"hash in quotes", `"a#b" k="#"`, []tok{{"", "a#b"}, {"k", "#"}}, `"a#b" k="#"`},
		{"escapes", `"\"\\"`, []tok{{"", `"\`}}, `"\"\\"`},
		{"empty quoted", `""`, []tok{{"", ""}}, `""`},
		{"value with equals", "k=a=b", []tok{{"k", "a=b"}}, "k=a=b"},
		{"empty value", "k=", []tok{{"k", ""}}, "k="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks, text, err := lexLine(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []tok
			for _, x := range toks {
				got = append(got, tok{x.key, x.val})
			}
			if !reflect.DeepEqual(got, tt.want) || text != tt.text {
				t.Errorf("lexLine(%q) = %q, %q; want %q, %q", tt.in, got, text, tt.want, tt.text)
			}
		})
	}
}

// TestTableChecks shows that mistakes in the op table fail at init rather
// than misparse.
func TestTableChecks(t *testing.T) {
	build := func(*stepArgs) (any, error) { return &KillCmd{}, nil }
	tests := []struct {
		name  string
		table []*opSpec
	}{
		{"duplicate op", []*opSpec{{op: "x", build: build}, {op: "x", build: build}}},
		{"no builder", []*opSpec{{op: "x"}}},
		{"duplicate key", []*opSpec{{op: "x", build: build,
			keys: []keySpec{{name: "k", meta: "K", parse: nameValue}, {name: "k", meta: "K", parse: nameValue}}}}},
		{"key without parser", []*opSpec{{op: "x", build: build, keys: []keySpec{{name: "k", meta: "K"}}}}},
		{"positional without parser", []*opSpec{{op: "x", build: build, pos: []posSpec{{label: "N"}}}}},
		{"required after optional", []*opSpec{{op: "x", build: build, pos: []posSpec{
			{label: "A", parse: nameValue, optional: true}, {label: "B", parse: nameValue}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("indexOps did not panic")
				}
			}()
			indexOps(tt.table)
		})
	}
}

// TestEveryOpHasACmdType keeps opTable and scenarioCmdTypes (used by the fuzz
// target) in step.
func TestEveryOpHasACmdType(t *testing.T) {
	for _, s := range opTable {
		if _, ok := scenarioCmdTypes[s.op]; !ok {
			t.Errorf("op %q missing from scenarioCmdTypes", s.op)
		}
	}
	if len(scenarioCmdTypes) != len(opTable) {
		t.Errorf("scenarioCmdTypes has %d entries, opTable %d", len(scenarioCmdTypes), len(opTable))
	}
}

// ---- fixtures ----

const parseFixtureDir = "testdata/parse"

// parseFixtureErrors lists every invalid fixture with where and why it fails.
// TestFixtures fails on a fixture missing from this table, so a new file
// cannot be silently skipped.
var parseFixtureErrors = map[string]struct {
	line int
	frag string
}{
	"missing-actions.scenario":      {4, "federate: missing actions= (want: federate TARGET accepts SOURCE"},
	"unknown-op.scenario":           {3, `unknown op "federat"`},
	"undeclared-authority.scenario": {3, `federate: TARGET "b": no authority named "b"`},
	"unterminated-quote.scenario":   {2, `unterminated quote in "subject=\"role/admin"`},
	"duplicate-credential.scenario": {3, `credential "alice" is already defined on line 2`},
	"bad-duration.scenario":         {2, `bad ttl= "5minutes": must be a duration`},
	"revoke-undefined.scenario":     {5, `NAME "a-to-b": no credential or federate as= rule`},
}

func TestFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(parseFixtureDir, "*.scenario"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		base := filepath.Base(path)
		if base == "every-form.scenario" {
			continue
		}
		t.Run(base, func(t *testing.T) {
			want, ok := parseFixtureErrors[base]
			if !ok {
				t.Fatalf("fixture %s is not listed in parseFixtureErrors", base)
			}
			_, err := ParseFile(path)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v; want a *ParseError", err)
			}
			if pe.File != path || pe.Line != want.line || !strings.Contains(pe.Msg, want.frag) {
				t.Errorf("got %v\nwant %s:%d: ...%s...", err, path, want.line, want.frag)
			}
		})
	}
}

func TestEveryFormFixture(t *testing.T) {
	path := filepath.Join(parseFixtureDir, "every-form.scenario")
	sc, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"*"}
	read := []string{"read"}
	want := []Step{
		{3, "raft snapshot-threshold=8 trailing-logs=4 snapshot-interval=200ms", "raft", &RaftCmd{SnapshotThreshold: 8, TrailingLogs: 4, SnapshotInterval: 200 * time.Millisecond}},
		{4, "authority aws kind=aws", "authority", &AuthorityCmd{Name: "aws", Kind: "aws"}},
		{5, "authority\tpki", "authority", &AuthorityCmd{Name: "pki"}},
		{6, "authority edge-1.site_a kind=sovereign", "authority", &AuthorityCmd{Name: "edge-1.site_a", Kind: "sovereign"}},
		{7, "charter threshold=2 voters=aws,pki admit-voters=no", "charter", &CharterCmd{Threshold: 2, Voters: []string{"aws", "pki"}, NoAdmitVoters: true}},
		{8, `federate pki accepts aws subjects="role/*" resources=db/* actions=read`, "federate",
			&FederateCmd{Target: "pki", Source: "aws", Subjects: "role/*", Resources: "db/*", Actions: read}},
		{9, `federate pki accepts aws actions=read,write resources="vault/# not a comment" subjects=* until=36h as=aws-to-pki`, "federate",
			&FederateCmd{Target: "pki", Source: "aws", Subjects: "*", Resources: "vault/# not a comment",
				Actions: []string{"read", "write"}, Until: Until{Set: true, Raw: "36h", Relative: 36 * time.Hour}, As: "aws-to-pki"}},
		{10, "federate edge-1.site_a accepts pki subjects=* resources=* actions=read until=1d12h as=r2", "federate",
			&FederateCmd{Target: "edge-1.site_a", Source: "pki", Subjects: all[0], Resources: "*", Actions: read,
				Until: Until{Set: true, Raw: "1d12h", Relative: 36 * time.Hour}, As: "r2"}},
		{11, "federate aws accepts pki subjects=* resources=* actions=read until=2030-01-02T15:04:05Z", "federate",
			&FederateCmd{Target: "aws", Source: "pki", Subjects: "*", Resources: "*", Actions: read,
				Until: Until{Set: true, Raw: "2030-01-02T15:04:05Z", Absolute: time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)}}},
		{12, "federate aws accepts edge-1.site_a subjects=* resources=* actions=read until=-1h", "federate",
			&FederateCmd{Target: "aws", Source: "edge-1.site_a", Subjects: "*", Resources: "*", Actions: read,
				Until: Until{Set: true, Raw: "-1h", Relative: -time.Hour}}},
		{14, `credential alice issuer=aws subject="role/admin \"ops\" team" ttl=1d`, "credential",
			&CredentialCmd{Name: "alice", Issuer: "aws", Subject: `role/admin "ops" team`, TTL: 24 * time.Hour}},
		{15, "credential bob issuer=aws subject=role/dev", "credential", &CredentialCmd{Name: "bob", Issuer: "aws", Subject: "role/dev"}},
		{16, `credential carol issuer=pki subject="C:\\certs\\carol"`, "credential",
			&CredentialCmd{Name: "carol", Issuer: "pki", Subject: `C:\certs\carol`}},
		{18, "expect allow alice at=pki resource=db/orders action=read", "expect",
			&ExpectCmd{Allow: true, Cred: "alice", At: "pki", Resource: "db/orders", Action: "read", On: "all"}},
		{19, "expect deny bob at=pki resource=db/orders action=write reason=no-rule on=pki within=5s", "expect",
			&ExpectCmd{Cred: "bob", At: "pki", Resource: "db/orders", Action: "write", Reason: "no-rule", On: "pki", Within: 5 * time.Second}},
		{20, `expect "deny" carol at=aws resource="x y" action=read on=all`, "expect",
			&ExpectCmd{Cred: "carol", At: "aws", Resource: "x y", Action: "read", On: "all"}},
		{22, "bundle b1 from=pki", "bundle", &BundleCmd{Name: "b1", From: "pki"}},
		{23, "expect-offline allow alice bundle=b1 at=pki resource=db/orders action=read", "expect-offline",
			&ExpectOfflineCmd{Allow: true, Cred: "alice", Bundle: "b1", At: "pki", Resource: "db/orders", Action: "read"}},
		{24, "expect-offline deny bob reason=revoked action=read resource=db/orders at=pki bundle=b1", "expect-offline",
			&ExpectOfflineCmd{Cred: "bob", Bundle: "b1", At: "pki", Resource: "db/orders", Action: "read", Reason: "revoked"}},
		{26, "revoke aws bob", "revoke", &RevokeCmd{Auth: "aws", Name: "bob"}},
		{27, "revoke pki aws-to-pki", "revoke", &RevokeCmd{Auth: "pki", Name: "aws-to-pki"}},
		{28, "kill edge-1.site_a", "kill", &KillCmd{Node: "edge-1.site_a"}},
		{29, "wait 2s", "wait", &WaitCmd{D: 2 * time.Second}},
		{30, "restart edge-1.site_a", "restart", &RestartCmd{Node: "edge-1.site_a"}},
		{31, "wait 1d", "wait", &WaitCmd{D: 24 * time.Hour}},
		{32, "bundle b2 from=pki max-age=12h cosign=aws,edge-1.site_a", "bundle",
			&BundleCmd{Name: "b2", From: "pki", MaxAge: 12 * time.Hour, Cosign: []string{"aws", "edge-1.site_a"}}},
		{33, "expect-offline deny alice bundle=b2 at=pki resource=db/orders action=read reason=stale-bundle at-time=2030-01-01T00:00:00Z allow-stale=1h", "expect-offline",
			&ExpectOfflineCmd{Cred: "alice", Bundle: "b2", At: "pki", Resource: "db/orders", Action: "read", Reason: "stale-bundle",
				AtTime: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), AllowStale: time.Hour}},
		{34, "expect-checkpoint-equal within=3s", "expect-checkpoint-equal", &ExpectCheckpointEqualCmd{Within: 3 * time.Second}},
		{35, "burst aws 3", "burst", &BurstCmd{Auth: "aws", N: 3}},
		{36, "partition edge-1.site_a", "partition", &PartitionCmd{Nodes: []string{"edge-1.site_a"}}},
		{37, `partition aws,pki from "edge-1.site_a"`, "partition",
			&PartitionCmd{Nodes: []string{"aws", "pki"}, From: []string{"edge-1.site_a"}}},
		{38, "heal", "heal", &HealCmd{}},
		{39, "expect-converged", "expect-converged", &ExpectConvergedCmd{}},
		{40, "expect-converged within=30s", "expect-converged", &ExpectConvergedCmd{Within: 30 * time.Second}},
		{41, "federate pki accepts aws subjects=* resources=* actions=read hops=1 require=level:2,dept:finance", "federate",
			&FederateCmd{Target: "pki", Source: "aws", Subjects: "*", Resources: "*", Actions: read, Hops: 1,
				Require: []authority.Attr{{Key: "dept", Value: "finance"}, {Key: "level", Value: "2"}}}},
		{42, "credential dave issuer=aws subject=role/dave ttl=1h attr=dept:finance resources=db/* actions=read,write holder-key=yes", "credential",
			&CredentialCmd{Name: "dave", Issuer: "aws", Subject: "role/dave", TTL: time.Hour, Attrs: []authority.Attr{{Key: "dept", Value: "finance"}},
				Resources: "db/*", Actions: []string{"read", "write"}, HolderKey: true}},
		{43, "credential dave-job issuer=aws subject=role/dave from=dave actions=read", "credential",
			&CredentialCmd{Name: "dave-job", Issuer: "aws", Subject: "role/dave", From: "dave", Actions: read}},
		{44, "expect deny dave-job at=pki resource=db/orders action=read reason=proof-of-possession pop=no", "expect",
			&ExpectCmd{Cred: "dave-job", At: "pki", Resource: "db/orders", Action: "read", Reason: "proof-of-possession", On: "all", NoPoP: true}},
		{45, "authority oidc-q alg=hybrid keys=3 threshold=2 jwks=ext/jwks.json issuer=https://login.example x509-roots=ext/roots.pem", "authority",
			&AuthorityCmd{Name: "oidc-q", Alg: authority.AlgHybrid, Keys: 3, Threshold: 2, JWKS: "ext/jwks.json", Issuer: "https://login.example", X509Roots: "ext/roots.pem"}},
		{46, "expect allow jwt=ext/alice.jwt at=pki resource=db/orders action=read", "expect",
			&ExpectCmd{Allow: true, JWT: "ext/alice.jwt", At: "pki", Resource: "db/orders", Action: "read", On: "all"}},
		{47, "expect deny x509=ext/chain.pem at=pki resource=db/orders action=write reason=no-rule", "expect",
			&ExpectCmd{X509: "ext/chain.pem", At: "pki", Resource: "db/orders", Action: "write", Reason: "no-rule", On: "all"}},
		{48, "rotate oidc-q keys=4 threshold=3", "rotate", &RotateCmd{Auth: "oidc-q", Keys: 4, Threshold: 3}},
		{49, "credential erin issuer=oidc-q subject=role/erin signed-by=old signatures=2", "credential",
			&CredentialCmd{Name: "erin", Issuer: "oidc-q", Subject: "role/erin", SignedBy: SignedByOld, Signatures: 2}},
		{50, "equivocate aws", "equivocate", &EquivocateCmd{Auth: "aws"}},
		{51, "expect-evidence aws on=pki within=5s", "expect-evidence", &ExpectEvidenceCmd{Auth: "aws", On: "pki", Within: 5 * time.Second}},
		{52, "join newco kind=oidc", "join", &JoinCmd{Name: "newco", Kind: "oidc"}},
		{53, "approve aws newco", "approve", &MemberActCmd{Auth: "aws", Name: "newco"}},
		{54, "approve-removal pki edge-1.site_a", "approve-removal", &MemberActCmd{Auth: "pki", Name: "edge-1.site_a", Remove: true}},
		{55, "leave newco", "leave", &LeaveCmd{Name: "newco"}},
		{56, "expect-member newco on=aws within=5s status=removed", "expect-member", &ExpectMemberCmd{Name: "newco", On: "aws", Within: 5 * time.Second, Status: "removed"}},
		{57, "expect-member edge-1.site_a", "expect-member", &ExpectMemberCmd{Name: "edge-1.site_a", On: "all", Within: defaultMemberWithin, Status: "member"}},
		{58, "burst pki 4 kill=aws", "burst", &BurstCmd{Auth: "pki", N: 4, Kill: "aws"}},
		{59, "restart edge-1.site_a snapshot=yes", "restart", &RestartCmd{Node: "edge-1.site_a", Snapshot: true}},
	}
	if len(sc.Steps) != len(want) {
		t.Fatalf("got %d steps, want %d", len(sc.Steps), len(want))
	}
	seen := map[string]bool{}
	for i := range want {
		if !reflect.DeepEqual(sc.Steps[i], want[i]) {
			t.Errorf("step %d:\ngot  %#v\nwant %#v", i, sc.Steps[i], want[i])
		}
		seen[sc.Steps[i].Op] = true
	}
	// Every op and every key of it appears, so a new table entry needs a
	// new line in the fixture (and so in the fuzz seeds).
	keysSeen := map[string]bool{}
	for _, st := range sc.Steps {
		toks, _, err := lexLine(st.Text)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range toks {
			if tk.isKV {
				keysSeen[st.Op+" "+tk.key] = true
			}
		}
	}
	for _, s := range opTable {
		if !seen[s.op] {
			t.Errorf("every-form.scenario has no %q step", s.op)
		}
		for _, k := range s.keys {
			if !keysSeen[s.op+" "+k.name] {
				t.Errorf("every-form.scenario has no %s step with %s=", s.op, k.name)
			}
		}
	}
}
