package testnet

// This file is the parser of the scenario language. The language is a
// public interface (operators write these files by hand, tests use them
// too), so its forms change only by addition. The grammar lives in one
// table, opTable, from which parsing, validation, the semantic checks and
// the usage lines in error messages are all derived: adding an op or a key
// is one table entry, and the usage text cannot drift from what is parsed.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fednode/fednode/authority"
)

// MaxScenarioSize is the largest scenario, in bytes, that Parse accepts.
// Scenario files are hand-written prose; the bound keeps a wrong path (a
// log file, a binary) from costing more than a moment.
const MaxScenarioSize = 1 << 20

// ErrInvalidScenario is matched (errors.Is) by every error Parse and
// ParseFile return for bad scenario text, including a too-large input. The
// concrete type is *ParseError. I/O errors from ParseFile do not match it.
var ErrInvalidScenario = errors.New("testnet: invalid scenario")

// ParseError reports the first bad line of a scenario.
type ParseError struct {
	File string // the name passed to Parse, or the path passed to ParseFile
	Line int    // 1-based; 0 when the error is about the whole input (size)
	Msg  string // "<op>: what was wrong, the offending token (want: <usage>)"
}

// Error formats as "file:line: msg", the form editors and terminals
// recognise as a jump target; this deliberately replaces the usual
// "testnet: " prefix, which errors.Is(err, ErrInvalidScenario) stands in for.
func (e *ParseError) Error() string {
	f := e.File
	if f == "" {
		f = "<scenario>"
	}
	if e.Line <= 0 {
		return f + ": " + e.Msg
	}
	return f + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalidScenario) true.
func (e *ParseError) Unwrap() error { return ErrInvalidScenario }

// Scenario is a parsed scenario: the steps in file order.
type Scenario struct {
	Steps []Step
}

// Step is one non-blank, non-comment line of a scenario.
type Step struct {
	Line int    // 1-based line number in the file. Invariant: strictly increasing across Steps.
	Text string // the source line, trimmed, without its comment
	Op   string // the keyword exactly as written: "authority", "federate", ...
	// Cmd is the parsed command: *AuthorityCmd for "authority", *FederateCmd
	// for "federate", and so on (the type is named after the op).
	// Invariant: never nil.
	Cmd any
}

// AuthorityCmd is `authority NAME [kind=KIND] [alg=ed25519|mldsa65|hybrid]
// [keys=N] [threshold=K] [jwks=FILE] [issuer=URL] [x509-roots=FILE]`: start
// a node for a new authority. FILE paths are relative to the scenario file
// (RunOptions.Files).
type AuthorityCmd struct {
	Name string
	Kind string // "" when not given: the runner picks its default kind
	// Alg is the root keys' algorithm; 0: Ed25519 (node.InitOptions.Alg).
	Alg authority.Alg
	// Keys and Threshold are node.InitOptions' (0: 1). Invariant:
	// Threshold <= max(Keys, 1).
	Keys, Threshold int
	// JWKS (a JSON Web Key Set file) and Issuer declare an OIDC anchor.
	// Invariant: both or neither.
	JWKS, Issuer string
	// X509Roots is a PEM file of CA certificates declared as X.509 roots.
	X509Roots string
}

// FederateCmd is `federate TARGET accepts SOURCE subjects=GLOB
// resources=GLOB actions=A[,A...] [until=DUR|RFC3339] [as=NAME] [hops=N]
// [require=KEY:VALUE[,KEY:VALUE...]]`: TARGET declares a rule accepting
// SOURCE's principals.
type FederateCmd struct {
	Target, Source string
	Subjects       string   // glob over SOURCE's subjects, passed through unchanged
	Resources      string   // glob over TARGET's resources, passed through unchanged
	Actions        []string // Invariant: non-empty, each a name, no duplicates
	Until          Until    // zero (Set false) when not given: no expiry
	As             string   // "" when not given; otherwise a name revoke can use
	// Hops is authority.Rule.Hops: how many further federation hops may be
	// composed through the rule; 0 (also when not given) accepts only
	// principals whose home is SOURCE.
	Hops uint8
	// Require is authority.Rule.Require: attributes the credential must
	// carry exactly. nil when not given. Invariant: sorted by Key, keys
	// unique, each key a name.
	Require []authority.Attr
}

// Until is the expiry of a federation rule as written.
type Until struct {
	Set bool
	// Raw is the value exactly as written (for messages and for
	// re-rendering the step).
	Raw string
	// Relative is a duration that the runner adds to the step's time; it may
	// be negative, for a rule that is already expired when declared.
	// Invariant: when Set, exactly one of Relative != 0 and !Absolute.IsZero().
	Relative time.Duration
	Absolute time.Time
}

// CredentialCmd is `credential NAME issuer=AUTH subject=S [ttl=DUR]
// [attr=KEY:VALUE[,...]] [resources=GLOB] [actions=A,...] [holder-key=yes]
// [from=CRED]`.
type CredentialCmd struct {
	Name, Issuer, Subject string
	// TTL is the validity from the step's time. 0 = the runner's default:
	// 24h for a root credential, the parent's end for a delegated one.
	// Invariant: >= 0.
	TTL time.Duration
	// Attrs is authority.Credential.Attributes. Invariant: sorted by Key,
	// keys unique, each key a name.
	Attrs []authority.Attr
	// Resources and Actions narrow the credential; "" and nil: no narrowing.
	Resources string
	Actions   []string // Invariant: nil or non-empty, no duplicates
	// HolderKey makes the runner generate a holder key, keep it, bind it to
	// the credential and prove possession of it when presenting it.
	HolderKey bool
	// From names the parent credential for a delegation: the new
	// credential is signed by From's holder key, not by the issuer.
	// Invariant: "" or a credential defined earlier with holder-key=yes.
	From string
	// SignedBy (signed-by=) chooses the issuer's root set: "" or
	// SignedByCurrent, or SignedByOld (the set its latest rotation
	// retired); Signatures (signatures=N) signs with only its first N keys
	// (0: its threshold). Invariant: both zero when From is set.
	SignedBy   string
	Signatures int
}

// RevokeCmd is `revoke AUTH NAME`; NAME is a credential or a rule named
// with federate ... as=.
type RevokeCmd struct {
	Auth, Name string
}

// ExpectCmd is `expect allow|deny [CRED] at=AUTH resource=R action=A
// [reason=CODE] [on=all|NODE] [within=DUR] [pop=no] [jwt=FILE]
// [x509=FILE]`. Exactly one of CRED, jwt= and x509= is given.
type ExpectCmd struct {
	Allow              bool
	Cred, At, Resource string // Cred is "" when JWT or X509 is given
	// JWT (a file holding a compact JWS) and X509 (a PEM file of a
	// certificate chain, leaf first) present an external credential;
	// paths are relative to the scenario file. Invariant: exactly one of
	// Cred, JWT and X509 is non-empty.
	JWT, X509 string
	Action    string
	Reason    string        // "" = any reason
	On        string        // "all" (the default) or an authority name
	Within    time.Duration // 0 = check once. Invariant: >= 0.
	// NoPoP (pop=no) presents a holder-bound credential without its proof
	// of possession; by default the runner proves possession of every
	// credential it made a holder key for.
	NoPoP bool
}

// BundleCmd is `bundle NAME from=NODE [max-age=DUR] [cosign=A,B]`: export
// a signed bundle, fresh for max-age (0: the node's default), cosigned by
// the named authorities' nodes.
type BundleCmd struct {
	Name, From string
	MaxAge     time.Duration
	Cosign     []string
}

// ExpectCheckpointEqualCmd is `expect-checkpoint-equal [within=DUR]`: every
// live node reports the same transparency-log checkpoint (size and root).
type ExpectCheckpointEqualCmd struct {
	Within time.Duration // 0 = check once. Invariant: >= 0.
}

// ExpectOfflineCmd is `expect-offline allow|deny CRED bundle=NAME at=AUTH
// resource=R action=A [reason=CODE]`: verify from a bundle alone.
type ExpectOfflineCmd struct {
	Allow                      bool
	Cred, Bundle, At, Resource string
	Action                     string
	Reason                     string // "" = any reason
	// AtTime is the time to judge at; zero: now. Offline, time passes too:
	// a bundle past its deadline is stale.
	AtTime time.Time
	// AllowStale lets the site decide from a bundle this long past its
	// deadline (the operator's explicit choice); 0: fail closed.
	AllowStale time.Duration
}

// ExpectConvergedCmd is `expect-converged [within=DUR]`: every live node
// has the same graph version and the same content (the same
// transparency-log root at that version).
// It also checks that every declaration any node acknowledged during
// the scenario (submissions and bursts) is agreed at every live node.
type ExpectConvergedCmd struct {
	Within time.Duration // 0 = check once. Invariant: >= 0.
}

// BurstCmd is `burst AUTH N`: AUTH signs N federation rules at consecutive
// chain positions and submits them to its node as fast as it can.
type BurstCmd struct {
	Auth string
	N    int // Invariant: 1 <= N <= MaxBurst.
	// Kill, if set (kill=NODE), is a node killed once half the burst is
	// submitted (faults.go). Invariant: Kill != Auth.
	Kill string
}

// MaxBurst bounds burst's N: each declaration is signed and held in memory
// before the first is submitted.
const MaxBurst = 10_000

// PartitionCmd is `partition NODE[,NODE...] [from NODE[,NODE...]]`: cut
// Nodes off from From (every other node of the mesh when From is nil), in
// both directions, until heal.
type PartitionCmd struct {
	Nodes []string // Invariant: non-empty, no duplicates.
	From  []string // nil: the rest of the mesh. Invariant: nil or non-empty, no duplicates, disjoint from Nodes.
}

// HealCmd is `heal`: undo every partition and reconnect the nodes.
type HealCmd struct{}

// KillCmd is `kill NODE`.
type KillCmd struct{ Node string }

// RestartCmd is `restart NODE [snapshot=yes]`. With snapshot=yes the
// node must catch up by installing a Raft snapshot (it was away past log
// compaction), and the step fails if it does not.
type RestartCmd struct {
	Node     string
	Snapshot bool
}

// WaitCmd is `wait DUR`.
type WaitCmd struct {
	D time.Duration // Invariant: >= 0.
}

// Parse parses a whole scenario. name is used in error messages (usually
// the file name).
//
// The language, one command per line:
//
//	# comment; values with spaces are double-quoted
//	authority NAME [kind=KIND] [alg=ed25519|mldsa65|hybrid] [keys=N] [threshold=K] [jwks=FILE] [issuer=URL] [x509-roots=FILE]
//	federate TARGET accepts SOURCE subjects=GLOB resources=GLOB actions=A[,A...] [until=DUR|RFC3339] [as=NAME] [hops=N] [require=KEY:VALUE[,KEY:VALUE...]]
//	credential NAME issuer=AUTH subject=S [ttl=DUR] [attr=KEY:VALUE[,KEY:VALUE...]] [resources=GLOB] [actions=A[,A...]] [holder-key=yes] [from=CRED] [signed-by=current|old] [signatures=N]
//	revoke AUTH NAME
//	rotate AUTH [keys=N] [threshold=K]
//	equivocate AUTH
//	expect-evidence AUTH [on=all|NODE] [within=DUR]
//	burst AUTH N
//	burst AUTH N [kill=NODE]
//	expect allow|deny [CRED] at=AUTH resource=R action=A [reason=CODE] [on=all|NODE] [within=DUR] [pop=no] [jwt=FILE] [x509=FILE]
//	bundle NAME from=NODE [max-age=DUR] [cosign=A,B]
//	expect-offline allow|deny CRED bundle=NAME at=AUTH resource=R action=A [reason=CODE] [at-time=RFC3339] [allow-stale=DUR]
//	expect-checkpoint-equal [within=DUR]
//	expect-converged [within=DUR]
//	kill NODE
//	restart NODE [snapshot=yes]
//	partition NODE[,NODE...] [from NODE[,NODE...]]
//	heal
//	wait DUR
//	raft [snapshot-threshold=N] [trailing-logs=M] [snapshot-interval=DUR]   (before the first authority)
//
// Usage returns the exact list. Words in brackets are optional (from and
// its list go together); NODE[,NODE...] is a comma-separated list of names
// with no spaces.
// Tokens are separated by spaces or tabs. "#" outside double quotes starts
// a comment. A value may be double-quoted, either positional ("a b") or
// after key= (key="a b"); inside quotes only \" and \\ are escapes. Quotes
// elsewhere in a token are an error. key=value pairs follow the positionals
// in any order. Durations are Go durations (time.ParseDuration) with an
// optional leading whole-days component: 1d, 1d12h, 36h. Names (NAME, AUTH,
// NODE, CRED, CODE, KIND and each action) match [A-Za-z0-9][A-Za-z0-9._-]*.
// The input must be UTF-8 without control characters other than tab; a
// leading byte-order mark and CRLF line ends are accepted.
//
// Parse checks every line, including references: an authority, credential,
// rule (as=) or bundle must be defined on an earlier line than its use, and
// defined once. "all" is not a valid authority name (on=all means every
// node). Credentials and rules share one namespace, because revoke names
// either.
//
// On error Parse returns no scenario and a *ParseError for the first bad
// line (later lines are not reported: a bad declaration would make every
// later use of it fail too, burying the real defect).
func Parse(name string, src []byte) (*Scenario, error) {
	if len(src) > MaxScenarioSize {
		return nil, &ParseError{File: name, Msg: fmt.Sprintf(
			"scenario is %d bytes; the limit is %d (MaxScenarioSize)", len(src), MaxScenarioSize)}
	}
	text := strings.TrimPrefix(string(src), "\ufeff")
	p := &scenarioParser{syms: make(map[symNS]map[string]symEntry), holders: make(map[string]bool)}
	sc := &Scenario{}
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		st, err := p.parseLine(n, strings.TrimSuffix(line, "\r"))
		if err != nil {
			return nil, &ParseError{File: name, Line: n, Msg: err.Error()}
		}
		if st != nil {
			sc.Steps = append(sc.Steps, *st)
		}
	}
	return sc, nil
}

// ParseFile reads path and parses it, naming path in errors.
func ParseFile(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("testnet: read scenario: %w", err)
	}
	defer f.Close()
	// One byte over the limit is enough for Parse to refuse it.
	src, err := io.ReadAll(io.LimitReader(f, MaxScenarioSize+1))
	if err != nil {
		return nil, fmt.Errorf("testnet: read scenario: %w", err)
	}
	return Parse(path, src)
}

// Usage returns the grammar, one form per line, as error messages show it
// (for CLI help).
func Usage() string {
	var b strings.Builder
	for _, s := range opTable {
		b.WriteString(s.usage)
		b.WriteByte('\n')
	}
	return b.String()
}

// ---- the grammar table ----

// opSpec describes one op. Positionals come first, in order; keys follow in
// any order.
type opSpec struct {
	op    string
	pos   []posSpec
	keys  []keySpec
	build func(a *stepArgs) (any, error) // called only when every check passed
	// check, when set, is a semantic check that needs the parser's memory
	// of earlier lines beyond the symbol table (which credentials hold a
	// holder key); called after build, before the line's symbols are
	// defined, and it may record what later lines need to know.
	check func(p *scenarioParser, cmd any) error
	usage string              // derived from pos and keys at init
	keyOf map[string]*keySpec // derived from keys at init
	// optFrom is the index of the first optional positional, len(pos) if
	// none; derived at init.
	optFrom int
}

// posSpec is one positional argument.
type posSpec struct {
	label   string                    // usage metavariable: NAME, AUTH, or the keyword itself
	keyword bool                      // the token must equal label (e.g. "accepts")
	parse   func(string) (any, error) // nil for a keyword
	ref     *symRef                   // the value (each item of a list value) must name an earlier definition
	defines symKind                   // the value defines a new symbol
	// optional marks a trailing group of positionals that may be left out
	// together (all or none). Invariant: the optional ones of an op are a
	// suffix of its pos.
	optional bool
}

// keySpec is one key=value argument.
type keySpec struct {
	name     string
	meta     string // usage metavariable: GLOB, DUR, ...
	required bool
	dflt     string // raw value used when the key is absent; "" = none (zero value)
	parse    func(string) (any, error)
	ref      *symRef
	defines  symKind
}

// stepArgs is what a builder sees: every value already parsed and checked.
type stepArgs struct {
	pos  []any          // one per posSpec; nil for keywords and left-out optionals
	vals map[string]any // by key name; absent keys without a default are missing
}

// keyVal returns the parsed value of key, or T's zero value if absent.
func keyVal[T any](a *stepArgs, key string) T {
	v, _ := a.vals[key].(T)
	return v
}

// posVal returns positional i.
func posVal[T any](a *stepArgs, i int) T {
	v, _ := a.pos[i].(T)
	return v
}

// Shared references.
var (
	refAuthority = &symRef{kinds: []symKind{symAuthority}}
	refCred      = &symRef{kinds: []symKind{symCredential}}
	refBundle    = &symRef{kinds: []symKind{symBundle}}
	refRevocable = &symRef{kinds: []symKind{symCredential, symRule}}
	refOn        = &symRef{kinds: []symKind{symAuthority}, also: []string{onAll}}
)

const onAll = "all"

var verdictValue = choiceValue("allow", "deny")

var opTable = []*opSpec{
	{
		op:  "authority",
		pos: []posSpec{{label: "NAME", parse: nameValueExcept(onAll), defines: symAuthority}},
		keys: []keySpec{
			{name: "kind", meta: "KIND", parse: nameValue},
			{name: "alg", meta: "ed25519|mldsa65|hybrid", parse: algValue},
			{name: "keys", meta: "N", parse: countValue(authority.MaxRootKeys)},
			{name: "threshold", meta: "K", parse: countValue(authority.MaxRootKeys)},
			{name: "jwks", meta: "FILE", parse: textValue},
			{name: "issuer", meta: "URL", parse: textValue},
			{name: "x509-roots", meta: "FILE", parse: textValue},
		},
		build: func(a *stepArgs) (any, error) {
			c := &AuthorityCmd{Name: posVal[string](a, 0), Kind: keyVal[string](a, "kind"),
				Alg: keyVal[authority.Alg](a, "alg"), Keys: keyVal[int](a, "keys"), Threshold: keyVal[int](a, "threshold"),
				JWKS: keyVal[string](a, "jwks"), Issuer: keyVal[string](a, "issuer"), X509Roots: keyVal[string](a, "x509-roots")}
			if c.Threshold > max(c.Keys, 1) {
				return nil, fmt.Errorf("threshold=%d exceeds the %d root keys (give keys=N with N >= %d)", c.Threshold, max(c.Keys, 1), c.Threshold)
			}
			if (c.JWKS == "") != (c.Issuer == "") {
				return nil, errors.New("jwks= and issuer= go together (an OIDC anchor is an issuer and its key set)")
			}
			return c, nil
		},
	},
	{
		op: "federate",
		pos: []posSpec{
			{label: "TARGET", parse: nameValue, ref: refAuthority},
			{label: "accepts", keyword: true},
			{label: "SOURCE", parse: nameValue, ref: refAuthority},
		},
		keys: []keySpec{
			{name: "subjects", meta: "GLOB", required: true, parse: textValue},
			{name: "resources", meta: "GLOB", required: true, parse: textValue},
			{name: "actions", meta: "A[,A...]", required: true, parse: actionsValue},
			{name: "until", meta: "DUR|RFC3339", parse: untilValue},
			{name: "as", meta: "NAME", parse: nameValue, defines: symRule},
			{name: "hops", meta: "N", parse: hopsValue},
			{name: "require", meta: "KEY:VALUE[,KEY:VALUE...]", parse: attrsValue},
		},
		build: func(a *stepArgs) (any, error) {
			return &FederateCmd{
				Target: posVal[string](a, 0), Source: posVal[string](a, 2),
				Subjects: keyVal[string](a, "subjects"), Resources: keyVal[string](a, "resources"),
				Actions: keyVal[[]string](a, "actions"), Until: keyVal[Until](a, "until"),
				As: keyVal[string](a, "as"), Hops: keyVal[uint8](a, "hops"),
				Require: keyVal[[]authority.Attr](a, "require"),
			}, nil
		},
	},
	{
		op:  "credential",
		pos: []posSpec{{label: "NAME", parse: nameValue, defines: symCredential}},
		keys: []keySpec{
			{name: "issuer", meta: "AUTH", required: true, parse: nameValue, ref: refAuthority},
			{name: "subject", meta: "S", required: true, parse: textValue},
			{name: "ttl", meta: "DUR", parse: positiveDuration},
			{name: "attr", meta: "KEY:VALUE[,KEY:VALUE...]", parse: attrsValue},
			{name: "resources", meta: "GLOB", parse: textValue},
			{name: "actions", meta: "A[,A...]", parse: actionsValue},
			{name: "holder-key", meta: "yes", parse: yesNoValue},
			{name: "from", meta: "CRED", parse: nameValue, ref: refCred},
			credentialGovernanceKeys[0], credentialGovernanceKeys[1],
		},
		check: func(p *scenarioParser, cmd any) error {
			c := cmd.(*CredentialCmd)
			if c.From != "" && !p.holders[c.From] {
				return fmt.Errorf("from=%s: credential %q has no holder key, so it cannot sign a delegation (give it holder-key=yes)", c.From, c.From)
			}
			if c.HolderKey {
				p.holders[c.Name] = true
			}
			return nil
		},
		build: func(a *stepArgs) (any, error) {
			c := &CredentialCmd{
				Name: posVal[string](a, 0), Issuer: keyVal[string](a, "issuer"),
				Subject: keyVal[string](a, "subject"), TTL: keyVal[time.Duration](a, "ttl"),
				Attrs: keyVal[[]authority.Attr](a, "attr"), Resources: keyVal[string](a, "resources"),
				Actions: keyVal[[]string](a, "actions"), HolderKey: keyVal[bool](a, "holder-key"),
				From: keyVal[string](a, "from"),
			}
			return c, credentialSigners(a, c)
		},
	},
	{
		op: "revoke",
		pos: []posSpec{
			{label: "AUTH", parse: nameValue, ref: refAuthority},
			{label: "NAME", parse: nameValue, ref: refRevocable},
		},
		build: func(a *stepArgs) (any, error) {
			return &RevokeCmd{Auth: posVal[string](a, 0), Name: posVal[string](a, 1)}, nil
		},
	},
	{
		op: "burst",
		pos: []posSpec{
			{label: "AUTH", parse: nameValue, ref: refAuthority},
			{label: "N", parse: countValue(MaxBurst)},
		},
		keys: []keySpec{{name: "kill", meta: "NODE", parse: nameValue, ref: refAuthority}},
		build: func(a *stepArgs) (any, error) {
			c := &BurstCmd{Auth: posVal[string](a, 0), N: posVal[int](a, 1), Kill: keyVal[string](a, "kill")}
			if c.Kill == c.Auth {
				return nil, fmt.Errorf("kill=%s is the burst's own node: kill another", c.Kill)
			}
			return c, nil
		},
	},
	{
		op: "expect",
		pos: []posSpec{
			{label: "allow|deny", parse: verdictValue},
			{label: "CRED", parse: nameValue, ref: refCred, optional: true},
		},
		keys: []keySpec{
			{name: "at", meta: "AUTH", required: true, parse: nameValue, ref: refAuthority},
			{name: "resource", meta: "R", required: true, parse: textValue},
			{name: "action", meta: "A", required: true, parse: nameValue},
			{name: "reason", meta: "CODE", parse: nameValue},
			{name: "on", meta: "all|NODE", dflt: onAll, parse: nameValue, ref: refOn},
			{name: "within", meta: "DUR", parse: nonNegDuration},
			{name: "pop", meta: "no", parse: yesNoValue},
			{name: "jwt", meta: "FILE", parse: textValue},
			{name: "x509", meta: "FILE", parse: textValue},
		},
		build: func(a *stepArgs) (any, error) {
			pop, given := a.vals["pop"].(bool)
			c := &ExpectCmd{
				Allow: posVal[string](a, 0) == "allow", Cred: posVal[string](a, 1),
				At: keyVal[string](a, "at"), Resource: keyVal[string](a, "resource"),
				Action: keyVal[string](a, "action"), Reason: keyVal[string](a, "reason"),
				On: keyVal[string](a, "on"), Within: keyVal[time.Duration](a, "within"),
				NoPoP: given && !pop, JWT: keyVal[string](a, "jwt"), X509: keyVal[string](a, "x509"),
			}
			n := 0
			for _, v := range []string{c.Cred, c.JWT, c.X509} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return nil, errors.New("give exactly one of a credential name, jwt=FILE and x509=FILE")
			}
			return c, nil
		},
	},
	{
		op:  "bundle",
		pos: []posSpec{{label: "NAME", parse: nameValue, defines: symBundle}},
		keys: []keySpec{
			{name: "from", meta: "NODE", required: true, parse: nameValue, ref: refAuthority},
			{name: "max-age", meta: "DUR", parse: positiveDuration},
			{name: "cosign", meta: "A,B", parse: namesValue},
		},
		build: func(a *stepArgs) (any, error) {
			return &BundleCmd{Name: posVal[string](a, 0), From: keyVal[string](a, "from"),
				MaxAge: keyVal[time.Duration](a, "max-age"), Cosign: keyVal[[]string](a, "cosign")}, nil
		},
	},
	{
		op: "expect-offline",
		pos: []posSpec{
			{label: "allow|deny", parse: verdictValue},
			{label: "CRED", parse: nameValue, ref: refCred},
		},
		keys: []keySpec{
			{name: "bundle", meta: "NAME", required: true, parse: nameValue, ref: refBundle},
			{name: "at", meta: "AUTH", required: true, parse: nameValue, ref: refAuthority},
			{name: "resource", meta: "R", required: true, parse: textValue},
			{name: "action", meta: "A", required: true, parse: nameValue},
			{name: "reason", meta: "CODE", parse: nameValue},
			{name: "at-time", meta: "RFC3339", parse: timeValue},
			{name: "allow-stale", meta: "DUR", parse: positiveDuration},
		},
		build: func(a *stepArgs) (any, error) {
			return &ExpectOfflineCmd{
				Allow: posVal[string](a, 0) == "allow", Cred: posVal[string](a, 1),
				Bundle: keyVal[string](a, "bundle"), At: keyVal[string](a, "at"),
				Resource: keyVal[string](a, "resource"), Action: keyVal[string](a, "action"),
				Reason: keyVal[string](a, "reason"), AtTime: keyVal[time.Time](a, "at-time"),
				AllowStale: keyVal[time.Duration](a, "allow-stale"),
			}, nil
		},
	},
	{
		op:   "expect-checkpoint-equal",
		keys: []keySpec{{name: "within", meta: "DUR", parse: nonNegDuration}},
		build: func(a *stepArgs) (any, error) {
			return &ExpectCheckpointEqualCmd{Within: keyVal[time.Duration](a, "within")}, nil
		},
	},
	{
		op:   "expect-converged",
		keys: []keySpec{{name: "within", meta: "DUR", parse: nonNegDuration}},
		build: func(a *stepArgs) (any, error) {
			return &ExpectConvergedCmd{Within: keyVal[time.Duration](a, "within")}, nil
		},
	},
	{
		op:  "kill",
		pos: []posSpec{{label: "NODE", parse: nameValue, ref: refAuthority}},
		build: func(a *stepArgs) (any, error) {
			return &KillCmd{Node: posVal[string](a, 0)}, nil
		},
	},
	{
		op:   "restart",
		pos:  []posSpec{{label: "NODE", parse: nameValue, ref: refAuthority}},
		keys: []keySpec{{name: "snapshot", meta: "yes", parse: yesNoValue}},
		build: func(a *stepArgs) (any, error) {
			return &RestartCmd{Node: posVal[string](a, 0), Snapshot: keyVal[bool](a, "snapshot")}, nil
		},
	},
	{
		op: "partition",
		pos: []posSpec{
			{label: "NODE[,NODE...]", parse: nodesValue, ref: refAuthority},
			{label: "from", keyword: true, optional: true},
			{label: "NODE[,NODE...]", parse: nodesValue, ref: refAuthority, optional: true},
		},
		build: func(a *stepArgs) (any, error) {
			c := &PartitionCmd{Nodes: posVal[[]string](a, 0), From: posVal[[]string](a, 2)}
			for _, n := range c.From {
				if slices.Contains(c.Nodes, n) {
					return nil, fmt.Errorf("node %q is on both sides of the partition", n)
				}
			}
			return c, nil
		},
	},
	{
		op:    "heal",
		build: func(*stepArgs) (any, error) { return &HealCmd{}, nil },
	},
	{
		op:  "wait",
		pos: []posSpec{{label: "DUR", parse: nonNegDuration}},
		build: func(a *stepArgs) (any, error) {
			return &WaitCmd{D: posVal[time.Duration](a, 0)}, nil
		},
	},
	rotateOp, equivocateOp, expectEvidenceOp,
}

// opIndex indexes opTable by keyword.
var opIndex = indexOps(opTable)

// indexOps checks the table and derives usage lines. A mistake in the table
// is a programming error, so it panics at init, where every test sees it.
func indexOps(table []*opSpec) map[string]*opSpec {
	m := make(map[string]*opSpec, len(table))
	for _, s := range table {
		if _, dup := m[s.op]; dup {
			panic("testnet: scenario op registered twice: " + s.op)
		}
		if s.build == nil {
			panic("testnet: scenario op without builder: " + s.op)
		}
		words := []string{s.op}
		s.optFrom = len(s.pos)
		for i, p := range s.pos {
			if p.keyword == (p.parse != nil) {
				panic("testnet: scenario op " + s.op + ": positional " + p.label + " needs exactly one of keyword, parse")
			}
			switch {
			case p.optional && s.optFrom == len(s.pos):
				s.optFrom = i
			case !p.optional && s.optFrom < len(s.pos):
				panic("testnet: scenario op " + s.op + ": required positional " + p.label + " after an optional one")
			}
			words = append(words, p.label)
		}
		if s.optFrom < len(s.pos) {
			first, last := 1+s.optFrom, len(words)-1
			words[first] = "[" + words[first]
			words[last] += "]"
		}
		s.keyOf = make(map[string]*keySpec, len(s.keys))
		for i := range s.keys {
			k := &s.keys[i]
			if s.keyOf[k.name] != nil || k.parse == nil || k.name == "" || k.meta == "" {
				panic("testnet: scenario op " + s.op + ": bad or duplicate key " + k.name)
			}
			s.keyOf[k.name] = k
			if k.required {
				words = append(words, k.name+"="+k.meta)
			} else {
				words = append(words, "["+k.name+"="+k.meta+"]")
			}
		}
		s.usage = strings.Join(words, " ")
		m[s.op] = s
	}
	return m
}

// opNames lists the ops in table order, for messages.
func opNames() []string {
	names := make([]string, len(opTable))
	for i, s := range opTable {
		names[i] = s.op
	}
	return names
}

// ---- symbols: the semantic checks ----

type symKind int

const (
	symNone symKind = iota
	symAuthority
	symCredential
	symRule
	symBundle
)

// symNS is a namespace; one name is defined at most once per namespace.
type symNS int

func (k symKind) ns() symNS {
	switch k {
	case symCredential, symRule:
		return symNS(symCredential) // shared: revoke NAME names either
	default:
		return symNS(k)
	}
}

func (k symKind) String() string {
	switch k {
	case symAuthority:
		return "authority"
	case symCredential:
		return "credential"
	case symRule:
		return "federate as= rule"
	case symBundle:
		return "bundle"
	}
	return "symbol"
}

// hint says how to define a symbol of kind k.
func (k symKind) hint() string {
	switch k {
	case symAuthority:
		return opIndex["authority"].usage
	case symCredential:
		return opIndex["credential"].usage
	case symRule:
		return "federate ... as=NAME"
	case symBundle:
		return opIndex["bundle"].usage
	}
	return ""
}

type symEntry struct {
	kind symKind
	line int
}

// ref says which earlier definitions a value may name.
type symRef struct {
	kinds []symKind // all in one namespace
	also  []string  // literals accepted without a definition
}

type scenarioParser struct {
	syms map[symNS]map[string]symEntry
	// holders are the credentials defined with holder-key=yes: the ones a
	// delegation (from=) may name.
	holders map[string]bool
	cur     int // the line being parsed, recorded with definitions
	// ops are the ops of the lines parsed so far, in order (a charter must
	// follow the founders' authority lines: consortium.go).
	ops []string
}

func (p *scenarioParser) resolve(r *symRef, label, v string) error {
	for _, lit := range r.also {
		if v == lit {
			return nil
		}
	}
	var want []string
	var hints []string
	for _, k := range r.kinds {
		want = append(want, k.String())
		hints = append(hints, k.hint())
	}
	s, ok := p.syms[r.kinds[0].ns()][v]
	if !ok {
		msg := fmt.Sprintf("%s %q: no %s named %q is defined on an earlier line (define it with: %s)",
			label, v, strings.Join(want, " or "), v, strings.Join(hints, ", or "))
		if len(r.also) > 0 {
			msg = fmt.Sprintf("%s %q: want %s or the name of an authority declared on an earlier line",
				label, v, strings.Join(r.also, " or "))
		}
		return errors.New(msg)
	}
	for _, k := range r.kinds {
		if s.kind == k {
			return nil
		}
	}
	return fmt.Errorf("%s %q: %q is a %s (line %d), not a %s",
		label, v, v, s.kind, s.line, strings.Join(want, " or "))
}

func (p *scenarioParser) checkNew(k symKind, label, v string) error {
	if s, ok := p.syms[k.ns()][v]; ok {
		if s.kind == k {
			return fmt.Errorf("%s %q: %s %q is already defined on line %d", label, v, k, v, s.line)
		}
		return fmt.Errorf("%s %q: %q is already defined on line %d as a %s "+
			"(credentials and rules share names, because revoke names either)", label, v, v, s.line, s.kind)
	}
	return nil
}

func (p *scenarioParser) define(k symKind, v string) {
	m := p.syms[k.ns()]
	if m == nil {
		m = make(map[string]symEntry)
		p.syms[k.ns()] = m
	}
	m[v] = symEntry{kind: k, line: p.cur}
}

// ---- one line ----

// parseLine parses line number n; it returns nil, nil for a blank or
// comment-only line.
func (p *scenarioParser) parseLine(n int, raw string) (*Step, error) {
	p.cur = n
	if err := checkChars(raw); err != nil {
		return nil, err
	}
	toks, textPart, err := lexLine(raw)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, nil
	}
	head := toks[0]
	if head.isKV || head.quoted {
		return nil, fmt.Errorf("line starts with %q; want an op (one of: %s)", head.raw, strings.Join(opNames(), ", "))
	}
	spec, ok := opIndex[head.val]
	if !ok {
		msg := fmt.Sprintf("unknown op %q (want one of: %s)", head.val, strings.Join(opNames(), ", "))
		if s := suggestName(head.val, opNames()); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return nil, errors.New(msg)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s (want: %s)", spec.op, fmt.Sprintf(format, a...), spec.usage)
	}

	// Split into positionals and keys; positionals come first.
	var posToks, kvToks []lexToken
	for _, t := range toks[1:] {
		if !t.isKV {
			if len(kvToks) > 0 {
				return nil, bad("argument %q after key=value pairs (positionals come first)", t.raw)
			}
			posToks = append(posToks, t)
			continue
		}
		kvToks = append(kvToks, t)
	}

	a := &stepArgs{pos: make([]any, len(spec.pos)), vals: make(map[string]any)}
	for i, ps := range spec.pos {
		if i >= len(posToks) {
			if i == spec.optFrom {
				break // the optional group is left out, as a whole
			}
			return nil, bad("missing %s", ps.label)
		}
		t := posToks[i]
		if ps.keyword {
			if t.val != ps.label {
				return nil, bad("want keyword %q, got %q", ps.label, t.raw)
			}
			continue
		}
		if t.val == "" {
			return nil, bad("empty %s", ps.label)
		}
		v, err := ps.parse(t.val)
		if err != nil {
			return nil, bad("bad %s %q: %v", ps.label, t.raw, err)
		}
		a.pos[i] = v
	}
	if len(posToks) > len(spec.pos) {
		return nil, bad("unexpected argument %q", posToks[len(spec.pos)].raw)
	}

	keyOf := spec.keyOf
	for _, t := range kvToks {
		ks, ok := keyOf[t.key]
		if !ok {
			if len(spec.keys) == 0 {
				return nil, bad("unknown key %q (%s takes no keys)", t.raw, spec.op)
			}
			msg := fmt.Sprintf("unknown key %q (allowed: %s)", t.raw, keyList(spec))
			if s := suggestName(t.key, keyNames(spec)); s != "" {
				msg += fmt.Sprintf("; did you mean %s=?", s)
			}
			return nil, bad("%s", msg)
		}
		if _, dup := a.vals[t.key]; dup {
			return nil, bad("duplicate key %s= in %q", t.key, t.raw)
		}
		if t.val == "" {
			return nil, bad("empty value in %q", t.raw)
		}
		v, err := ks.parse(t.val)
		if err != nil {
			return nil, bad("bad %s= %q: %v", t.key, t.val, err)
		}
		a.vals[t.key] = v
	}
	for _, ks := range spec.keys {
		if _, ok := a.vals[ks.name]; ok {
			continue
		}
		if ks.required {
			return nil, bad("missing %s=", ks.name)
		}
	}

	// Semantic checks, in token order so the first offending token is named.
	for i, ps := range spec.pos {
		if i >= len(posToks) || ps.ref == nil && ps.defines == symNone {
			continue
		}
		v := posToks[i].val
		if ps.ref != nil {
			for _, item := range refItems(a.pos[i], v) {
				if err := p.resolve(ps.ref, ps.label, item); err != nil {
					return nil, fmt.Errorf("%s: %w", spec.op, err)
				}
			}
		}
		if ps.defines != symNone {
			if err := p.checkNew(ps.defines, ps.label, v); err != nil {
				return nil, fmt.Errorf("%s: %w", spec.op, err)
			}
		}
	}
	for _, t := range kvToks {
		ks := keyOf[t.key]
		if ks.ref != nil {
			for _, item := range refItems(a.vals[t.key], t.val) {
				if err := p.resolve(ks.ref, ks.name+"=", item); err != nil {
					return nil, fmt.Errorf("%s: %w", spec.op, err)
				}
			}
		}
		if ks.defines != symNone {
			if err := p.checkNew(ks.defines, ks.name+"=", t.val); err != nil {
				return nil, fmt.Errorf("%s: %w", spec.op, err)
			}
		}
	}

	// Defaults go in after the checks: they are not written by the user and
	// need no resolving (a default that needed it would be a table bug).
	for _, ks := range spec.keys {
		if _, ok := a.vals[ks.name]; !ok && ks.dflt != "" {
			v, err := ks.parse(ks.dflt)
			if err != nil {
				panic("testnet: bad default for " + spec.op + " " + ks.name + "=: " + err.Error())
			}
			a.vals[ks.name] = v
		}
	}
	cmd, err := spec.build(a)
	if err != nil {
		return nil, bad("%v", err)
	}
	if spec.check != nil {
		if err := spec.check(p, cmd); err != nil {
			return nil, fmt.Errorf("%s: %w", spec.op, err)
		}
	}

	// Define only once the whole line is good.
	for i, ps := range spec.pos {
		if i < len(posToks) && ps.defines != symNone {
			p.define(ps.defines, posToks[i].val)
		}
	}
	for _, t := range kvToks {
		if ks := keyOf[t.key]; ks.defines != symNone {
			p.define(ks.defines, t.val)
		}
	}
	p.ops = append(p.ops, spec.op)
	return &Step{Line: n, Text: textPart, Op: spec.op, Cmd: cmd}, nil
}

// refItems returns the names a value refers to: each item of a list value,
// else the raw value itself.
func refItems(parsed any, raw string) []string {
	if list, ok := parsed.([]string); ok {
		return list
	}
	return []string{raw}
}

func keyNames(s *opSpec) []string {
	names := make([]string, len(s.keys))
	for i, k := range s.keys {
		names[i] = k.name
	}
	return names
}

func keyList(s *opSpec) string {
	names := keyNames(s)
	for i := range names {
		names[i] += "="
	}
	return strings.Join(names, ", ")
}

// suggestName returns the candidate closest to s if it is a likely typo.
func suggestName(s string, candidates []string) string {
	best, bestD := "", 3 // at most 2 edits
	if len(s) > 64 {
		return "" // keep the quadratic distance cheap on hostile input
	}
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ---- lexing ----

type lexToken struct {
	raw    string // as written, for messages
	isKV   bool   // key=value
	key    string // when isKV
	val    string // unquoted value
	quoted bool   // the value was double-quoted
}

func isBlankByte(c byte) bool { return c == ' ' || c == '\t' }

// checkChars refuses invalid UTF-8 and control characters (other than tab)
// anywhere on the line: they are invisible in an editor, so a line holding
// one would not mean what it shows.
func checkChars(line string) error {
	for i, r := range line {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(line[i:]); size == 1 {
				return fmt.Errorf("invalid UTF-8 at byte %d of the line", i+1)
			}
		}
		if r != '\t' && unicode.IsControl(r) {
			return fmt.Errorf("control character %U at byte %d of the line", r, i+1)
		}
	}
	return nil
}

// lexLine splits one line into tokens. It also returns the code part of the
// line (before any comment), trimmed.
func lexLine(line string) ([]lexToken, string, error) {
	var toks []lexToken
	i := 0
	for {
		for i < len(line) && isBlankByte(line[i]) {
			i++
		}
		if i >= len(line) || line[i] == '#' {
			break
		}
		start := i
		var t lexToken
		if line[i] == '"' {
			v, n, err := unquote(line[start:], 0)
			if err != nil {
				return nil, "", err
			}
			t.val, t.quoted = v, true
			i += n
		} else {
			for i < len(line) && !isBlankByte(line[i]) && line[i] != '#' && line[i] != '=' && line[i] != '"' {
				i++
			}
			switch {
			case i < len(line) && line[i] == '"':
				return nil, "", fmt.Errorf("unexpected quote in %q (quote a whole value: key=\"a b\" or \"a b\")",
					line[start:i+1])
			case i < len(line) && line[i] == '=':
				t.isKV, t.key = true, line[start:i]
				if t.key == "" {
					return nil, "", fmt.Errorf("missing key before = in %q", firstWord(line[start:]))
				}
				i++
				if i < len(line) && line[i] == '"' {
					v, n, err := unquote(line[start:], i-start)
					if err != nil {
						return nil, "", err
					}
					t.val, t.quoted = v, true
					i = start + n
				} else {
					vs := i
					for i < len(line) && !isBlankByte(line[i]) && line[i] != '#' {
						if line[i] == '"' {
							return nil, "", fmt.Errorf("unexpected quote in %q (quote a whole value: key=\"a b\")",
								line[start:i+1])
						}
						i++
					}
					t.val = line[vs:i]
				}
			default:
				t.val = line[start:i]
			}
		}
		if i < len(line) && !isBlankByte(line[i]) && line[i] != '#' {
			return nil, "", fmt.Errorf("unexpected %q after closing quote in %q (separate tokens with a space)",
				line[i:i+1], firstWord(line[start:]))
		}
		t.raw = line[start:i]
		toks = append(toks, t)
	}
	return toks, strings.TrimSpace(line[:i]), nil
}

// firstWord returns s up to the first space, for messages.
func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}

// unquote reads the quoted value that opens at s[q] (s starts at the
// token, for messages) and returns it and the offset in s just past the
// closing quote.
func unquote(s string, q int) (string, int, error) {
	var b strings.Builder
	for i := q + 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				b.WriteByte(s[i+1])
				i++
				continue
			}
			esc := s[i:min(i+2, len(s))]
			return "", 0, fmt.Errorf("unknown escape %q in %q (inside quotes only \\\" and \\\\ are escapes)",
				esc, s[:min(i+2, len(s))])
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated quote in %q (close the value with \")", s)
}

// ---- values ----

// isName reports whether s matches [A-Za-z0-9][A-Za-z0-9._-]*.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

const namePattern = "[A-Za-z0-9][A-Za-z0-9._-]*"

func nameValue(s string) (any, error) {
	if !isName(s) {
		return nil, errors.New("must match " + namePattern)
	}
	return s, nil
}

// nameValueExcept is nameValue, refusing reserved words.
func nameValueExcept(reserved ...string) func(string) (any, error) {
	return func(s string) (any, error) {
		for _, r := range reserved {
			if s == r {
				return nil, fmt.Errorf("%q is reserved (on=%s means every node)", s, onAll)
			}
		}
		return nameValue(s)
	}
}

// textValue accepts any non-empty value (globs, subjects, resources: their
// syntax belongs to the authority package, which checks it at run time).
func textValue(s string) (any, error) { return s, nil }

// namesValue is a comma-separated list of names.
func namesValue(s string) (any, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if !isName(p) {
			return nil, fmt.Errorf("%q is not a name (want A,B,... each [A-Za-z0-9][A-Za-z0-9._-]*)", p)
		}
		out = append(out, p)
	}
	return out, nil
}

// nodesValue is a comma-separated list of names, each listed once.
func nodesValue(s string) (any, error) {
	v, err := namesValue(s)
	if err != nil {
		return nil, err
	}
	list := v.([]string)
	for i, n := range list {
		if slices.Contains(list[:i], n) {
			return nil, fmt.Errorf("%q is listed twice", n)
		}
	}
	return list, nil
}

// countValue is a whole number from 1 to max.
func countValue(max int) func(string) (any, error) {
	return func(s string) (any, error) {
		n, err := strconv.Atoi(s)
		if err != nil || strings.TrimLeft(s, "0123456789") != "" {
			return nil, fmt.Errorf("must be a whole number from 1 to %d", max)
		}
		if n < 1 || n > max {
			return nil, fmt.Errorf("must be from 1 to %d, got %d", max, n)
		}
		return n, nil
	}
}

// timeValue is an RFC3339 time.
func timeValue(s string) (any, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an RFC3339 time (like 2026-12-04T15:00:00Z)", s)
	}
	return t, nil
}

func choiceValue(options ...string) func(string) (any, error) {
	return func(s string) (any, error) {
		for _, o := range options {
			if s == o {
				return s, nil
			}
		}
		return nil, errors.New("must be " + strings.Join(options, " or "))
	}
}

func actionsValue(s string) (any, error) {
	parts := strings.Split(s, ",")
	seen := make(map[string]bool, len(parts))
	for _, a := range parts {
		if a == "" {
			return nil, errors.New("has an empty item; write A[,A...] with no empty items")
		}
		if !isName(a) {
			return nil, fmt.Errorf("action %q must match %s", a, namePattern)
		}
		if seen[a] {
			return nil, fmt.Errorf("action %q is listed twice", a)
		}
		seen[a] = true
	}
	return parts, nil
}

const durationHelp = "must be a duration like 90s, 15m, 36h, 1d or 1d12h"

func nonNegDuration(s string) (any, error) {
	d, err := parseDuration(s)
	if err != nil {
		return nil, err
	}
	if d < 0 {
		return nil, errors.New("must not be negative")
	}
	return d, nil
}

func positiveDuration(s string) (any, error) {
	d, err := parseDuration(s)
	if err != nil {
		return nil, err
	}
	if d <= 0 {
		return nil, errors.New("must be positive (leave the key out for the default)")
	}
	return d, nil
}

// maxDays is the most whole days a time.Duration holds.
const maxDays = int64(1<<63-1) / int64(24*time.Hour)

// parseDuration is time.ParseDuration plus an optional leading whole-days
// component ("1d", "1d12h", "-2d"). No unit of time.ParseDuration contains
// a "d", so the first "d" ends the days.
func parseDuration(s string) (time.Duration, error) {
	body, neg := s, false
	if body != "" && (body[0] == '-' || body[0] == '+') {
		neg, body = body[0] == '-', body[1:]
	}
	i := strings.IndexByte(body, 'd')
	if i < 0 {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errors.New(durationHelp)
		}
		return d, nil
	}
	days, rest := body[:i], body[i+1:]
	if days == "" || strings.TrimLeft(days, "0123456789") != "" {
		return 0, errors.New(durationHelp + " (days must be a whole number and come first)")
	}
	n, err := strconv.ParseInt(days, 10, 64)
	if err != nil || n > maxDays {
		return 0, errors.New("duration too long")
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, errors.New(durationHelp)
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, errors.New(durationHelp)
		}
		if r > time.Duration(1<<63-1)-d {
			return 0, errors.New("duration too long")
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

func untilValue(s string) (any, error) {
	if d, err := parseDuration(s); err == nil {
		if d == 0 {
			return nil, errors.New("must not be zero (a rule valid for no time)")
		}
		return Until{Set: true, Raw: s, Relative: d}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, errors.New("must be a duration like 36h or 1d (from the step's time), or an RFC3339 time like 2030-01-02T15:04:05Z")
	}
	if t.IsZero() {
		return nil, errors.New("must not be the zero time")
	}
	return Until{Set: true, Raw: s, Absolute: t}, nil
}

// MaxHops bounds hops=: authority.Rule.Hops is a uint8.
const MaxHops = 255

// hopsValue is a whole number from 0 to MaxHops, as a uint8.
func hopsValue(s string) (any, error) {
	n, err := strconv.Atoi(s)
	if err != nil || strings.TrimLeft(s, "0123456789") != "" || n < 0 || n > MaxHops {
		return nil, fmt.Errorf("must be a whole number from 0 to %d", MaxHops)
	}
	return uint8(n), nil
}

// attrsValue is KEY:VALUE[,KEY:VALUE...], sorted by key (signed bytes have
// one form: authority requires sorted, unique keys). Each key is a name;
// a value is everything after the first colon, non-empty, without commas
// (the separator).
func attrsValue(s string) (any, error) {
	parts := strings.Split(s, ",")
	out := make([]authority.Attr, 0, len(parts))
	for _, p := range parts {
		k, v, ok := strings.Cut(p, ":")
		switch {
		case !ok || v == "":
			return nil, fmt.Errorf("%q is not KEY:VALUE (write KEY:VALUE[,KEY:VALUE...])", p)
		case !isName(k):
			return nil, fmt.Errorf("key %q must match %s", k, namePattern)
		}
		out = append(out, authority.Attr{Key: k, Value: v})
	}
	slices.SortStableFunc(out, func(a, b authority.Attr) int { return strings.Compare(a.Key, b.Key) })
	for i := 1; i < len(out); i++ {
		if out[i].Key == out[i-1].Key {
			return nil, fmt.Errorf("key %q is listed twice", out[i].Key)
		}
	}
	return out, nil
}

// algValue is a root key algorithm by name.
func algValue(s string) (any, error) {
	switch s {
	case "ed25519":
		return authority.AlgEd25519, nil
	case "mldsa65":
		return authority.AlgMLDSA65, nil
	case "hybrid":
		return authority.AlgHybrid, nil
	}
	return nil, errors.New("must be ed25519, mldsa65 or hybrid")
}

// yesNoValue is yes or no, as a bool.
func yesNoValue(s string) (any, error) {
	switch s {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return nil, errors.New("must be yes or no")
}
