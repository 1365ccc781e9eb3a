package chainstore

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"pgregory.net/rapid"

	"github.com/fednode/fednode/authority"
)

// graphIssuedAt is the IssuedAt of every test declaration (Unix seconds):
// tests never read the clock.
const graphIssuedAt = 1_780_000_000

// Key seeds of the test authorities, and of a key no authority declared.
const (
	seedAlpha    byte = 1
	seedBeta     byte = 2
	seedGamma    byte = 3
	seedStranger byte = 9
)

// tfatal is what the helpers need of *testing.T, *testing.B, *testing.F and
// *rapid.T alike.
type tfatal interface {
	Helper()
	Fatalf(format string, args ...any)
}

// graphKey is the deterministic Ed25519 key of seed n.
func graphKey(t tfatal, n byte) *authority.PrivateKey {
	t.Helper()
	k, err := authority.GenerateKey(authority.AlgEd25519, bytes.NewReader(bytes.Repeat([]byte{n}, ed25519.SeedSize)))
	if err != nil {
		t.Fatalf("key %d: %v", n, err)
	}
	return k
}

func mustSignDecl(t tfatal, d authority.Declaration, k *authority.PrivateKey) *authority.Signed {
	t.Helper()
	s, err := authority.Sign(d, k)
	if err != nil {
		t.Fatalf("sign %v: %v", d.Kind, err)
	}
	return s
}

// gchain is the signing side of one test authority: its key and the head of
// the chain it has signed so far (which the store may or may not hold).
type gchain struct {
	name    string
	key     *authority.PrivateKey
	genesis *authority.Signed
	head    uint64
	headID  authority.ID
	n       int // makes every rule's content unique
}

func newGChain(t tfatal, name string, seed byte) *gchain {
	t.Helper()
	k := graphKey(t, seed)
	g := mustSignDecl(t, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: graphIssuedAt,
		Genesis:  &authority.Genesis{Name: name, Kind: "pki", RootKeys: []authority.PublicKey{k.Public()}, Threshold: 1},
	}, k)
	return &gchain{name: name, key: k, genesis: g, headID: g.ID}
}

func (c *gchain) id() authority.ID { return c.genesis.ID }

// ruleAt signs a rule of c at seq with prev, with key k, without moving the
// head: the raw material of gaps, conflicts and forgeries.
func (c *gchain) ruleAt(t tfatal, seq uint64, prev authority.ID, source authority.ID, k *authority.PrivateKey) *authority.Signed {
	t.Helper()
	c.n++
	return mustSignDecl(t, authority.Declaration{
		Kind: authority.KindRule, Authority: c.id(), Seq: seq, Prev: prev, IssuedAt: graphIssuedAt,
		Rule: &authority.Rule{Source: source, Subjects: fmt.Sprintf("role/%s-%d", c.name, c.n), Resources: "blob://data/*", Actions: []string{"read"}},
	}, k)
}

// rule signs the next declaration of c's chain, a rule accepting source.
func (c *gchain) rule(t tfatal, source authority.ID) *authority.Signed {
	t.Helper()
	s := c.ruleAt(t, c.head+1, c.headID, source, c.key)
	c.head, c.headID = s.Decl.Seq, s.ID
	return s
}

// revokeAt signs a revocation of target at seq with prev, with key k,
// without moving the head.
func (c *gchain) revokeAt(t tfatal, seq uint64, prev, target authority.ID, k *authority.PrivateKey) *authority.Signed {
	t.Helper()
	return mustSignDecl(t, authority.Declaration{
		Kind: authority.KindRevocation, Authority: c.id(), Seq: seq, Prev: prev, IssuedAt: graphIssuedAt,
		Revocation: &authority.Revocation{Target: target, Reason: "test"},
	}, k)
}

// revoke signs the next declaration of c's chain, a revocation of target.
func (c *gchain) revoke(t tfatal, target authority.ID) *authority.Signed {
	t.Helper()
	s := c.revokeAt(t, c.head+1, c.headID, target, c.key)
	c.head, c.headID = s.Decl.Seq, s.ID
	return s
}

// credential signs an off-chain credential of c.
func (c *gchain) credential(t tfatal) *authority.Signed {
	t.Helper()
	return mustSignDecl(t, authority.Declaration{
		Kind: authority.KindCredential, Authority: c.id(), IssuedAt: graphIssuedAt,
		Credential: &authority.Credential{Subject: "role/" + c.name},
	}, c.key)
}

func envs(list ...*authority.Signed) [][]byte {
	out := make([][]byte, len(list))
	for i, s := range list {
		out[i] = s.Raw
	}
	return out
}

// scenario is the standard graph: genesis A, genesis B, a rule of B
// accepting A (seq 1), and B's revocation of that rule (seq 2).
type scenario struct {
	a, b                   *gchain
	genA, genB, rule, revo *authority.Signed
}

func newScenario(t tfatal) *scenario {
	t.Helper()
	a, b := newGChain(t, "alpha", seedAlpha), newGChain(t, "beta", seedBeta)
	rule := b.rule(t, a.id())
	revo := b.revoke(t, rule.ID)
	return &scenario{a: a, b: b, genA: a.genesis, genB: b.genesis, rule: rule, revo: revo}
}

func (sc *scenario) signed() []*authority.Signed {
	return []*authority.Signed{sc.genA, sc.genB, sc.rule, sc.revo}
}

func (sc *scenario) batch() [][]byte { return envs(sc.signed()...) }

func idsOf(list ...*authority.Signed) []authority.ID {
	out := make([]authority.ID, len(list))
	for i, s := range list {
		out[i] = s.ID
	}
	return out
}

// mustApply applies a batch that must be accepted whole.
func mustApply(t tfatal, s *Store, index uint64, batch [][]byte) {
	t.Helper()
	for i, err := range s.ApplyDeclarations(index, batch) {
		if err != nil {
			t.Fatalf("apply index %d envelope %d: %v", index, i, err)
		}
	}
}

// stream is the store's Declarations output, checked to be versions 1..N.
func stream(t tfatal, s *Store) [][]byte {
	t.Helper()
	var out [][]byte
	err := s.Declarations(0, 0, func(v uint64, env []byte) error {
		if v != uint64(len(out))+1 {
			return fmt.Errorf("version %d after %d", v, len(out))
		}
		out = append(out, bytes.Clone(env))
		return nil
	})
	if err != nil {
		t.Fatalf("Declarations: %v", err)
	}
	return out
}

// authView is what a View says of one authority.
type authView struct {
	Known   bool
	Name    string
	Head    uint64
	HeadID  authority.ID
	RuleIDs []authority.ID
	RuleSeq []uint64
}

// viewDump is everything a View answers about a universe of IDs. It is
// computed the same way from a Store and from a reference authority.Graph.
type viewDump struct {
	Version uint64
	Auths   map[authority.ID]authView
	Revoked map[[2]authority.ID]authority.ID
}

func dumpView(v authority.View, universe []authority.ID) viewDump {
	d := viewDump{Version: v.Version(), Auths: map[authority.ID]authView{}, Revoked: map[[2]authority.ID]authority.ID{}}
	for _, a := range universe {
		info, ok := v.Authority(a)
		if !ok {
			continue
		}
		av := authView{Known: true, Name: info.Name, Head: info.Head, HeadID: info.HeadID}
		for _, r := range v.RulesFor(a) {
			av.RuleIDs = append(av.RuleIDs, r.ID)
			av.RuleSeq = append(av.RuleSeq, r.Seq)
		}
		d.Auths[a] = av
		for _, target := range universe {
			if rev, ok := v.RevokedBy(target, a); ok {
				d.Revoked[[2]authority.ID{target, a}] = rev
			}
		}
	}
	return d
}

// storeDump is the whole observable graph state of a store.
type storeDump struct {
	View         viewDump
	Applied      uint64
	NeedsRestore bool
	Stream       [][]byte
	Has          map[authority.ID]bool
	ByIssuer     map[authority.ID][]authority.ID
	ByKind       map[authority.Kind][]authority.ID
}

func dumpStore(t tfatal, s *Store, universe []authority.ID) storeDump {
	t.Helper()
	d := storeDump{Applied: s.AppliedIndex(), NeedsRestore: s.NeedsRestore(), Stream: stream(t, s),
		Has: map[authority.ID]bool{}, ByIssuer: map[authority.ID][]authority.ID{}, ByKind: map[authority.Kind][]authority.ID{}}
	s.View(func(v authority.View) { d.View = dumpView(v, universe) })
	if got := s.Version(); got != d.View.Version {
		t.Fatalf("Version() = %d but the view says %d", got, d.View.Version)
	}
	for _, id := range universe {
		d.Has[id] = s.Has(id)
		by, err := s.ByIssuer(id)
		if err != nil {
			t.Fatalf("ByIssuer: %v", err)
		}
		if len(by) > 0 {
			d.ByIssuer[id] = by
		}
	}
	for _, k := range []authority.Kind{authority.KindGenesis, authority.KindRule, authority.KindCredential, authority.KindRevocation} {
		by, err := s.ByKind(k)
		if err != nil {
			t.Fatalf("ByKind: %v", err)
		}
		if len(by) > 0 {
			d.ByKind[k] = by
		}
	}
	return d
}

func wantSameDump(t tfatal, what string, got, want storeDump) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: state differs:\n got %s\nwant %s", what, fmtDump(got), fmtDump(want))
	}
}

func fmtDump(d storeDump) string {
	return fmt.Sprintf("version %d applied %d needsRestore %v stream %d records, %d authorities, %d revocations, byIssuer %d, byKind %v",
		d.View.Version, d.Applied, d.NeedsRestore, len(d.Stream), len(d.View.Auths), len(d.View.Revoked), len(d.ByIssuer), d.ByKind)
}

// storeKinds runs a test on an in-memory and on an on-disk store.
var storeKinds = []struct {
	name string
	open func(t *testing.T) *Store
}{
	{name: "in-memory", open: func(t *testing.T) *Store { return newMemStore(t) }},
	{name: "disk", open: func(t *testing.T) *Store {
		s := openDisk(t, t.TempDir())
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

func TestApplyDeclarations(t *testing.T) {
	sc := newScenario(t)
	const index = 7
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s := kind.open(t)
			if s.Version() != 0 || s.AppliedIndex() != 0 || s.NeedsRestore() {
				t.Fatalf("fresh store: version %d applied %d needsRestore %v", s.Version(), s.AppliedIndex(), s.NeedsRestore())
			}
			errs := s.ApplyDeclarations(index, sc.batch())
			if len(errs) != 4 {
				t.Fatalf("got %d results for 4 envelopes", len(errs))
			}
			for i, err := range errs {
				if err != nil {
					t.Fatalf("envelope %d refused: %v", i, err)
				}
			}
			if got := s.Version(); got != 4 {
				t.Fatalf("Version = %d, want 4", got)
			}
			if got := s.AppliedIndex(); got != index {
				t.Fatalf("AppliedIndex = %d, want %d", got, index)
			}

			s.View(func(v authority.View) {
				if v.Version() != 4 {
					t.Errorf("view version %d", v.Version())
				}
				a, ok := v.Authority(sc.a.id())
				if !ok || a.Name != "alpha" || a.Head != 0 || a.HeadID != sc.genA.ID {
					t.Errorf("authority A = %+v, %v; want alpha at head 0 (its genesis)", a, ok)
				}
				b, ok := v.Authority(sc.b.id())
				if !ok || b.Name != "beta" || b.Head != 2 || b.HeadID != sc.revo.ID {
					t.Errorf("authority B = %+v, %v; want beta at head 2 (the revocation)", b, ok)
				}
				if _, ok := v.Authority(sc.rule.ID); ok {
					t.Errorf("a rule's ID is reported as an authority")
				}
				if got := v.AuthoritiesNamed("beta"); !slices.Equal(got, []authority.ID{sc.b.id()}) {
					t.Errorf("AuthoritiesNamed(beta) = %v", got)
				}
				rules := v.RulesFor(sc.b.id())
				if len(rules) != 1 || rules[0].ID != sc.rule.ID || rules[0].Seq != 1 || rules[0].Target != sc.b.id() || rules[0].Rule.Source != sc.a.id() {
					t.Errorf("RulesFor(B) = %+v, want the one rule at seq 1", rules)
				}
				if got := v.RulesFor(sc.a.id()); len(got) != 0 {
					t.Errorf("RulesFor(A) = %+v, want none", got)
				}
				if rev, ok := v.RevokedBy(sc.rule.ID, sc.b.id()); !ok || rev != sc.revo.ID {
					t.Errorf("RevokedBy(rule, B) = %s, %v; want the revocation", rev.Short(), ok)
				}
				if _, ok := v.RevokedBy(sc.rule.ID, sc.a.id()); ok {
					t.Errorf("RevokedBy(rule, A) is true: A never revoked it")
				}
				if _, ok := v.RevokedBy(sc.genB.ID, sc.b.id()); ok {
					t.Errorf("RevokedBy(genesis B, B) is true")
				}
			})

			for _, sd := range sc.signed() {
				if !s.Has(sd.ID) {
					t.Errorf("Has(%v %s) = false", sd.Decl.Kind, sd.ID.Short())
				}
				got, err := s.Declaration(sd.ID)
				if err != nil || !bytes.Equal(got, sd.Raw) {
					t.Errorf("Declaration(%s) = %x, %v; want the envelope", sd.ID.Short(), got, err)
				}
			}
			missing := authority.IDOf([]byte("never declared"))
			if s.Has(missing) {
				t.Errorf("Has(missing) = true")
			}
			if _, err := s.Declaration(missing); !errors.Is(err, ErrNotFound) {
				t.Errorf("Declaration(missing) error = %v, want ErrNotFound", err)
			}

			issuerTests := []struct {
				name string
				of   authority.ID
				want []authority.ID
			}{
				{name: "B in chain order", of: sc.b.id(), want: idsOf(sc.genB, sc.rule, sc.revo)},
				{name: "A is only its genesis", of: sc.a.id(), want: idsOf(sc.genA)},
				{name: "unknown authority", of: missing, want: nil},
				{name: "a rule issues nothing", of: sc.rule.ID, want: nil},
			}
			for _, tt := range issuerTests {
				got, err := s.ByIssuer(tt.of)
				if err != nil || !slices.Equal(got, tt.want) {
					t.Errorf("ByIssuer %s = %v, %v; want %v", tt.name, got, err, tt.want)
				}
			}

			geneses := idsOf(sc.genA, sc.genB)
			slices.SortFunc(geneses, func(x, y authority.ID) int { return bytes.Compare(x[:], y[:]) })
			kindTests := []struct {
				name string
				kind authority.Kind
				want []authority.ID
			}{
				{name: "geneses in ID order", kind: authority.KindGenesis, want: geneses},
				{name: "rules", kind: authority.KindRule, want: idsOf(sc.rule)},
				{name: "revocations", kind: authority.KindRevocation, want: idsOf(sc.revo)},
				{name: "credentials are never stored", kind: authority.KindCredential, want: nil},
			}
			for _, tt := range kindTests {
				got, err := s.ByKind(tt.kind)
				if err != nil || !slices.Equal(got, tt.want) {
					t.Errorf("ByKind %s = %v, %v; want %v", tt.name, got, err, tt.want)
				}
			}

			all := sc.batch()
			rangeTests := []struct {
				name        string
				after, upTo uint64
				want        []uint64 // versions
			}{
				{name: "everything", after: 0, upTo: 0, want: []uint64{1, 2, 3, 4}},
				{name: "everything, explicit bound", after: 0, upTo: 4, want: []uint64{1, 2, 3, 4}},
				{name: "bound past the end", after: 0, upTo: 99, want: []uint64{1, 2, 3, 4}},
				{name: "middle", after: 1, upTo: 3, want: []uint64{2, 3}},
				{name: "one", after: 2, upTo: 3, want: []uint64{3}},
				{name: "tail", after: 2, upTo: 0, want: []uint64{3, 4}},
				{name: "after the end", after: 4, upTo: 0, want: nil},
				{name: "empty range", after: 3, upTo: 3, want: nil},
				{name: "inverted range", after: 3, upTo: 1, want: nil},
				{name: "after the largest version", after: math.MaxUint64, upTo: 0, want: nil},
			}
			for _, tt := range rangeTests {
				var got []uint64
				err := s.Declarations(tt.after, tt.upTo, func(v uint64, env []byte) error {
					if v < 1 || v > 4 || !bytes.Equal(env, all[v-1]) {
						return fmt.Errorf("version %d: not the envelope accepted there", v)
					}
					got = append(got, v)
					return nil
				})
				if err != nil || !slices.Equal(got, tt.want) {
					t.Errorf("Declarations %s (%d, %d] = %v, %v; want %v", tt.name, tt.after, tt.upTo, got, err, tt.want)
				}
			}
			stop := errors.New("stop here")
			calls := 0
			err := s.Declarations(0, 0, func(uint64, []byte) error { calls++; return stop })
			if !errors.Is(err, stop) || calls != 1 {
				t.Errorf("Declarations with a failing fn: %v after %d calls; want fn's error after 1", err, calls)
			}
		})
	}
}

// refusalBatch mixes the good scenario with one envelope of every kind of
// refusal; good lists the envelopes that must be accepted, in order.
func refusalBatch(t tfatal) (batch [][]byte, wantErr []error, good [][]byte, universe []authority.ID) {
	t.Helper()
	a, b := newGChain(t, "alpha", seedAlpha), newGChain(t, "beta", seedBeta)
	stranger := newGChain(t, "stranger", seedStranger) // never founded in the store
	rule1 := b.rule(t, a.id())
	conflict := b.ruleAt(t, 1, b.genesis.ID, a.id(), b.key) // same position, other content
	gap := b.ruleAt(t, 3, authority.IDOf([]byte("x")), a.id(), b.key)
	forged := b.ruleAt(t, 2, rule1.ID, a.id(), a.key)        // A's key signing for B
	wrongPrev := b.ruleAt(t, 2, b.genesis.ID, a.id(), b.key) // prev is not the head
	tampered := bytes.Clone(b.ruleAt(t, 2, rule1.ID, a.id(), b.key).Raw)
	tampered[len(tampered)-1] ^= 0x01 // last signature byte: still canonical CBOR
	orphan := stranger.rule(t, a.id())
	rule2 := b.rule(t, a.id())

	tests := []struct {
		env  []byte
		want error // nil: accepted
	}{
		{env: a.genesis.Raw},
		{env: []byte("not an envelope"), want: authority.ErrMalformed},
		{env: nil, want: authority.ErrMalformed},
		{env: a.genesis.Raw, want: authority.ErrDuplicate},
		{env: b.genesis.Raw},
		{env: gap.Raw, want: authority.ErrGap},
		{env: rule1.Raw},
		{env: rule1.Raw, want: authority.ErrDuplicate},
		{env: conflict.Raw, want: authority.ErrConflict},
		{env: forged.Raw, want: authority.ErrBadSignature},
		{env: tampered, want: authority.ErrBadSignature},
		{env: wrongPrev.Raw, want: authority.ErrConflict},
		{env: orphan.Raw, want: authority.ErrUnknownAuthority},
		{env: a.credential(t).Raw, want: authority.ErrOffChain},
		{env: rule2.Raw},
	}
	for _, tt := range tests {
		batch = append(batch, tt.env)
		wantErr = append(wantErr, tt.want)
		if tt.want == nil {
			good = append(good, tt.env)
		}
	}
	universe = idsOf(a.genesis, b.genesis, stranger.genesis, rule1, rule2, conflict, gap, forged, wrongPrev, orphan)
	return batch, wantErr, good, universe
}

func TestApplyRefusalsArePerEnvelope(t *testing.T) {
	batch, wantErr, good, universe := refusalBatch(t)
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s := kind.open(t)
			errs := s.ApplyDeclarations(5, batch)
			for i, err := range errs {
				switch {
				case wantErr[i] == nil && err != nil:
					t.Errorf("envelope %d refused: %v", i, err)
				case wantErr[i] != nil && !errors.Is(err, wantErr[i]):
					t.Errorf("envelope %d: error %v, want %v", i, err, wantErr[i])
				}
			}
			if s.AppliedIndex() != 5 {
				t.Errorf("AppliedIndex = %d, want 5", s.AppliedIndex())
			}

			clean := newMemStore(t)
			mustApply(t, clean, 5, good)
			wantSameDump(t, "mixed batch vs good envelopes only", dumpStore(t, s, universe), dumpStore(t, clean, universe))
			if s.Version() != uint64(len(good)) {
				t.Fatalf("Version = %d, want %d", s.Version(), len(good))
			}
		})
	}
}

func TestApplyAllRefused(t *testing.T) {
	sc := newScenario(t)
	s := newMemStore(t)
	mustApply(t, s, 3, sc.batch())
	before := dumpStore(t, s, idsOf(sc.signed()...))
	// A batch whose every envelope is refused still moves the applied index:
	// Raft applied the entry.
	for _, err := range s.ApplyDeclarations(4, sc.batch()) {
		if !errors.Is(err, authority.ErrDuplicate) {
			t.Fatalf("re-applying the scenario: %v, want ErrDuplicate", err)
		}
	}
	if errs := s.ApplyDeclarations(5, nil); len(errs) != 0 {
		t.Fatalf("empty batch gave %d results", len(errs))
	}
	after := dumpStore(t, s, idsOf(sc.signed()...))
	if after.Applied != 5 {
		t.Fatalf("AppliedIndex = %d, want 5", after.Applied)
	}
	after.Applied = before.Applied
	wantSameDump(t, "after refused batches", after, before)
}

func TestApplyReplaySkipped(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			sc := newScenario(t)
			s := kind.open(t)
			mustApply(t, s, 10, sc.batch())
			universe := idsOf(sc.signed()...)
			before := dumpStore(t, s, universe)
			next := sc.b.rule(t, sc.a.id())
			universe = append(universe, next.ID)
			for _, index := range []uint64{10, 9, 1, 0} {
				errs := s.ApplyDeclarations(index, [][]byte{next.Raw, []byte("garbage")})
				if len(errs) != 2 || errs[0] != nil || errs[1] != nil {
					t.Fatalf("replay at index %d: %v, want two nil errors", index, errs)
				}
				if s.Has(next.ID) || s.Version() != 4 || s.AppliedIndex() != 10 {
					t.Fatalf("replay at index %d changed the state: has %v version %d applied %d", index, s.Has(next.ID), s.Version(), s.AppliedIndex())
				}
			}
			before.Has[next.ID] = false
			wantSameDump(t, "after replays", dumpStore(t, s, universe), before)

			// MarkApplied moves the index forward only and touches nothing else.
			markTests := []struct {
				name  string
				index uint64
				want  uint64
			}{
				{name: "forward", index: 12, want: 12},
				{name: "same", index: 12, want: 12},
				{name: "backward", index: 11, want: 12},
				{name: "zero", index: 0, want: 12},
				{name: "forward again", index: 20, want: 20},
			}
			for _, tt := range markTests {
				if err := s.MarkApplied(tt.index); err != nil {
					t.Fatalf("MarkApplied %s: %v", tt.name, err)
				}
				if got := s.AppliedIndex(); got != tt.want {
					t.Fatalf("MarkApplied %s (%d): AppliedIndex = %d, want %d", tt.name, tt.index, got, tt.want)
				}
			}
			after := dumpStore(t, s, universe)
			after.Applied = before.Applied
			wantSameDump(t, "after MarkApplied", after, before)

			// An entry MarkApplied covered is a replay too.
			if errs := s.ApplyDeclarations(15, [][]byte{next.Raw}); errs[0] != nil || s.Has(next.ID) {
				t.Fatalf("index 15 after MarkApplied(20): %v, has %v; want skipped", errs, s.Has(next.ID))
			}
			mustApply(t, s, 21, [][]byte{next.Raw})
			if !s.Has(next.ID) || s.Version() != 5 || s.AppliedIndex() != 21 {
				t.Fatalf("index 21: has %v version %d applied %d", s.Has(next.ID), s.Version(), s.AppliedIndex())
			}
		})
	}
}

func TestMarkAppliedSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	mustApply(t, s, 3, newScenario(t).batch())
	if err := s.MarkApplied(9); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkApplied(10); !errors.Is(err, ErrClosed) {
		t.Fatalf("MarkApplied after Close: %v, want ErrClosed", err)
	}
	s = openDisk(t, dir)
	defer s.Close()
	if s.AppliedIndex() != 9 || s.Version() != 4 {
		t.Fatalf("after reopen: applied %d version %d, want 9 and 4", s.AppliedIndex(), s.Version())
	}
}

// determinismBatches is a fixed sequence of batches with refusals mixed in,
// including declarations that only become acceptable in a later batch.
func determinismBatches(t tfatal) ([][][]byte, []authority.ID) {
	t.Helper()
	a, b, c := newGChain(t, "alpha", seedAlpha), newGChain(t, "beta", seedBeta), newGChain(t, "gamma", seedGamma)
	b1 := b.rule(t, a.id())
	b2 := b.rule(t, c.id())
	c1 := c.rule(t, b.id())
	c2 := c.revoke(t, c1.ID)
	a1 := a.revoke(t, a.id()) // self-revocation
	b3 := b.revoke(t, b1.ID)
	b3bis := b.ruleAt(t, 3, b2.ID, a.id(), b.key)
	batches := [][][]byte{
		envs(b1, a.genesis, b.genesis, b1, b2), // b1 refused (unknown), then accepted
		{[]byte{0xd2, 0x84}, c1.Raw, c.genesis.Raw, c2.Raw},
		envs(c1, c2, a1, b3, b3bis), // b3bis conflicts with b3
		{},
		envs(b3, a1, c.genesis, b3bis),
	}
	return batches, idsOf(a.genesis, b.genesis, c.genesis, b1, b2, b3, b3bis, c1, c2, a1)
}

func errStrings(errs []error) []string {
	out := make([]string, len(errs))
	for i, err := range errs {
		if err != nil {
			out[i] = err.Error()
		}
	}
	return out
}

func TestApplyDeterministic(t *testing.T) {
	batches, universe := determinismBatches(t)
	disk := openDisk(t, t.TempDir())
	defer disk.Close()
	mem := newMemStore(t)
	for i, batch := range batches {
		index := uint64(2*i + 1)
		e1, e2 := disk.ApplyDeclarations(index, batch), mem.ApplyDeclarations(index, batch)
		if !slices.Equal(errStrings(e1), errStrings(e2)) {
			t.Fatalf("batch %d: results differ:\n%q\n%q", i, errStrings(e1), errStrings(e2))
		}
		wantSameDump(t, fmt.Sprintf("after batch %d", i), dumpStore(t, disk, universe), dumpStore(t, mem, universe))
	}
	if v := mem.Version(); v != 9 {
		t.Fatalf("Version = %d, want every declaration but the conflicting b3bis in the end", v)
	}
}

func TestRestartReloadsGraph(t *testing.T) {
	batches, universe := determinismBatches(t)
	dir := t.TempDir()
	s := openDisk(t, dir)
	for i, batch := range batches {
		s.ApplyDeclarations(uint64(i+1), batch)
	}
	want := dumpStore(t, s, universe)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDisk(t, dir)
	t.Cleanup(func() { s.Close() })
	wantSameDump(t, "after reopen", dumpStore(t, s, universe), want)
	if want.View.Version == 0 || len(want.View.Revoked) == 0 {
		t.Fatalf("the scenario should leave declarations and revocations to reload: %s", fmtDump(want))
	}

	// The chain continues from the reloaded heads.
	sc := newScenario(t)
	next := sc.b.rule(t, sc.a.id()) // beta seq 3 after its seq-2 revocation
	s2dir := t.TempDir()
	s2 := openDisk(t, s2dir)
	mustApply(t, s2, 1, sc.batch())
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s2 = openDisk(t, s2dir)
	defer s2.Close()
	mustApply(t, s2, 2, [][]byte{next.Raw})
	if s2.Version() != 5 || !s2.Has(next.ID) || s2.AppliedIndex() != 2 {
		t.Fatalf("after continuing: version %d has %v applied %d", s2.Version(), s2.Has(next.ID), s2.AppliedIndex())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// snapshotBytes takes, persists and releases a snapshot of s.
func snapshotBytes(t tfatal, s *Store) []byte {
	t.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return buf.Bytes()
}

func mustRestore(t tfatal, s *Store, b []byte) {
	t.Helper()
	if err := s.Restore(bytes.NewReader(b)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	batches, universe := determinismBatches(t)
	src := newMemStore(t)
	for i, batch := range batches {
		src.ApplyDeclarations(uint64(10+i), batch)
	}
	want := dumpStore(t, src, universe)
	snap := snapshotBytes(t, src)

	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			dst := kind.open(t)
			mustRestore(t, dst, snap)
			wantSameDump(t, "restored", dumpStore(t, dst, universe), want)
			if again := snapshotBytes(t, dst); !bytes.Equal(again, snap) {
				t.Fatalf("the restored store's snapshot differs from the one it was restored from")
			}
			// Restoring the same snapshot twice is harmless.
			mustRestore(t, dst, snap)
			wantSameDump(t, "restored twice", dumpStore(t, dst, universe), want)
		})
	}

	t.Run("empty graph", func(t *testing.T) {
		empty := snapshotBytes(t, newMemStore(t))
		dst := newMemStore(t)
		mustRestore(t, dst, empty)
		if dst.Version() != 0 || dst.AppliedIndex() != 0 || len(stream(t, dst)) != 0 {
			t.Fatalf("restoring an empty snapshot: version %d applied %d", dst.Version(), dst.AppliedIndex())
		}
	})

	t.Run("restored then reopened and continued", func(t *testing.T) {
		sc := newScenario(t)
		s := newMemStore(t)
		mustApply(t, s, 4, sc.batch())
		scSnap := snapshotBytes(t, s)
		dir := t.TempDir()
		dst := openDisk(t, dir)
		mustRestore(t, dst, scSnap)
		dst.Close()
		dst = openDisk(t, dir)
		defer dst.Close()
		wantSameDump(t, "reopened after restore", dumpStore(t, dst, idsOf(sc.signed()...)), dumpStore(t, s, idsOf(sc.signed()...)))
		next := sc.b.rule(t, sc.a.id())
		mustApply(t, dst, 5, [][]byte{next.Raw})
		if dst.Version() != 5 {
			t.Fatalf("Version = %d after continuing the chain, want 5", dst.Version())
		}
	})
}

func TestSnapshotIsPointInTime(t *testing.T) {
	sc := newScenario(t)
	s := newMemStore(t)
	mustApply(t, s, 4, sc.batch())
	universe := idsOf(sc.signed()...)
	want := dumpStore(t, s, universe)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	// Later applies are not in the snapshot.
	next := sc.b.rule(t, sc.a.id())
	mustApply(t, s, 5, [][]byte{next.Raw})
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	snap.Release() // idempotent
	dst := newMemStore(t)
	mustRestore(t, dst, buf.Bytes())
	wantSameDump(t, "restored from the earlier snapshot", dumpStore(t, dst, universe), want)
}

// TestSnapshotIsolatedFromRestore persists a snapshot taken before a
// Restore replaced the store's content: hashicorp/raft may run an old
// snapshot's Persist while the FSM restores a newer one.
func TestSnapshotIsolatedFromRestore(t *testing.T) {
	sc := newScenario(t)
	universe := idsOf(sc.signed()...)
	s := newMemStore(t)
	mustApply(t, s, 4, sc.batch())
	want := dumpStore(t, s, universe)
	other := newMemStore(t)
	c := newGChain(t, "gamma", seedGamma)
	mustApply(t, other, 2, envs(c.genesis, c.rule(t, c.id())))
	otherSnap := snapshotBytes(t, other)

	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	mustRestore(t, s, otherSnap)
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatalf("Persist of the snapshot taken before Restore: %v", err)
	}
	dst := newMemStore(t)
	mustRestore(t, dst, buf.Bytes())
	wantSameDump(t, "snapshot taken before a restore", dumpStore(t, dst, universe), want)
}

func TestRestoreSwapsContent(t *testing.T) {
	sc := newScenario(t)
	src := newMemStore(t)
	mustApply(t, src, 4, sc.batch())
	snap := snapshotBytes(t, src)

	c := newGChain(t, "gamma", seedGamma)
	c1 := c.rule(t, c.id())
	c2 := c.revoke(t, c1.ID)
	universe := append(idsOf(sc.signed()...), idsOf(c.genesis, c1, c2)...)
	want := dumpStore(t, src, universe)

	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			dst := kind.open(t)
			// Other content, and a later applied index than the snapshot's:
			// Raft's snapshot wins regardless.
			mustApply(t, dst, 100, envs(sc.genA, c.genesis, c1, c2))
			mustRestore(t, dst, snap)
			wantSameDump(t, "restored over other content", dumpStore(t, dst, universe), want)
			for _, sd := range []*authority.Signed{c.genesis, c1, c2} {
				if _, err := dst.Declaration(sd.ID); !errors.Is(err, ErrNotFound) {
					t.Errorf("old declaration %s still readable: %v", sd.ID.Short(), err)
				}
			}
			// The restored chains continue; gamma's can start again. (Signing
			// is deterministic: a new scenario signs the same chains.)
			fresh := newScenario(t)
			next := fresh.b.rule(t, fresh.a.id())
			mustApply(t, dst, 5, envs(next, c.genesis))
			if dst.Version() != 6 {
				t.Fatalf("Version = %d, want 6", dst.Version())
			}
		})
	}
}

// corruptSnapshots returns damaged copies of snap, a valid snapshot.
func corruptSnapshots(snap []byte) []struct {
	name string
	b    []byte
} {
	const hdr = 7 + 1 + 16
	type tc = struct {
		name string
		b    []byte
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(snap)) }
	cases := []tc{
		{name: "empty", b: nil},
		{name: "magic only", b: snap[:7]},
		{name: "truncated header", b: snap[:hdr-1]},
		{name: "header only", b: snap[:hdr]},
		{name: "truncated first length", b: edit(func(b []byte) []byte { return append(b[:hdr], 0x80) })},
		{name: "truncated first record", b: snap[:hdr+40]},
		{name: "truncated last byte", b: snap[:len(snap)-1]},
		{name: "wrong magic", b: edit(func(b []byte) []byte { b[6] = 'Q'; return b })},
		{name: "wrong format", b: edit(func(b []byte) []byte { b[7] = 3; return b })},
		{name: "format 1 with an evidence section", b: edit(func(b []byte) []byte { b[7] = 1; return b })},
		{name: "one record missing", b: edit(func(b []byte) []byte { b[hdr-1]++; return b })},
		{name: "oversized record", b: edit(func(b []byte) []byte {
			return append(b[:hdr], 0x80, 0x80, 0x80, 0x80, 0x01) // 2^28 bytes
		})},
		{name: "zero-length record", b: edit(func(b []byte) []byte { return append(b[:hdr], 0x00) })},
		{name: "records out of order", b: swapRecords34(snap)},
	}
	// One flipped bit at every byte of every record.
	for i := hdr; i < len(snap); i++ {
		cases = append(cases, tc{name: fmt.Sprintf("byte %d flipped", i), b: edit(func(b []byte) []byte { b[i] ^= 0x10; return b })})
	}
	return cases
}

// swapRecords34 swaps the third and fourth records of a snapshot (in the
// scenario, B's rule at seq 1 and its revocation at seq 2).
func swapRecords34(snap []byte) []byte {
	at := 7 + 1 + 16
	for range 2 {
		n, m := uvarint(snap[at:])
		at += m + int(n)
	}
	hdr := at
	r1, n1 := uvarint(snap[hdr:])
	end1 := hdr + n1 + int(r1)
	r2, n2 := uvarint(snap[end1:])
	end2 := end1 + n2 + int(r2)
	out := append(bytes.Clone(snap[:hdr]), snap[end1:end2]...)
	out = append(out, snap[hdr:end1]...)
	return append(out, snap[end2:]...)
}

func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i, c := range b {
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

func TestRestoreRefusesDamage(t *testing.T) {
	sc := newScenario(t)
	src := newMemStore(t)
	mustApply(t, src, 4, sc.batch())
	snap := snapshotBytes(t, src)

	c := newGChain(t, "gamma", seedGamma)
	c1 := c.rule(t, c.id())
	universe := append(idsOf(sc.signed()...), idsOf(c.genesis, c1)...)

	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			dst := kind.open(t)
			mustApply(t, dst, 50, envs(c.genesis, c1))
			before := dumpStore(t, dst, universe)
			for _, tt := range corruptSnapshots(snap) {
				err := dst.Restore(bytes.NewReader(tt.b))
				if err == nil {
					t.Fatalf("%s: Restore succeeded", tt.name)
				}
				if !strings.HasPrefix(err.Error(), "chainstore: restore: ") {
					t.Errorf("%s: error %q lacks the package prefix", tt.name, err)
				}
				if dst.Version() != 2 || dst.AppliedIndex() != 50 || !dst.Has(c1.ID) || dst.Has(sc.genA.ID) {
					t.Fatalf("%s: failed Restore changed the state", tt.name)
				}
			}
			wantSameDump(t, "after failed restores", dumpStore(t, dst, universe), before)
		})
	}
}

// TestRestoreRefusesTrailingBytes: a snapshot holds exactly the records its
// header counts. Bytes after them mean a wrong count (a damaged header) or
// a faulty sender; accepting them would silently restore a shorter graph.
func TestRestoreRefusesTrailingBytes(t *testing.T) {
	sc := newScenario(t)
	src := newMemStore(t)
	mustApply(t, src, 4, sc.batch())
	snap := snapshotBytes(t, src)
	const versionEnd = 7 + 1 + 16
	tests := []struct {
		name string
		b    []byte
	}{
		{name: "garbage after the last record", b: append(bytes.Clone(snap), 0x00)},
		{name: "header counts one record fewer", b: func() []byte { b := bytes.Clone(snap); b[versionEnd-1]--; return b }()},
		{name: "header counts no records", b: func() []byte {
			b := bytes.Clone(snap)
			clear(b[versionEnd-8 : versionEnd])
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := newMemStore(t)
			c := newGChain(t, "gamma", seedGamma)
			mustApply(t, dst, 9, envs(c.genesis))
			if err := dst.Restore(bytes.NewReader(tt.b)); err == nil {
				t.Fatalf("Restore accepted the snapshot: version now %d (the snapshot holds 4 records)", dst.Version())
			}
			if dst.Version() != 1 || !dst.Has(c.id()) || dst.AppliedIndex() != 9 {
				t.Fatalf("failed Restore changed the state")
			}
		})
	}
}

// TestRestoreConcurrentReaders runs the memory-only readers while Restore
// swaps between two graphs; run it under -race. Every view must show one
// of the two graphs whole.
func TestRestoreConcurrentReaders(t *testing.T) {
	sc := newScenario(t)
	x := newMemStore(t)
	mustApply(t, x, 4, sc.batch())
	snapX := snapshotBytes(t, x)
	c := newGChain(t, "gamma", seedGamma)
	y := newMemStore(t)
	mustApply(t, y, 8, envs(c.genesis, c.rule(t, c.id()), c.rule(t, c.id())))
	snapY := snapshotBytes(t, y)

	s := newMemStore(t)
	mustRestore(t, s, snapX)
	var stop atomic.Bool
	var views atomic.Int64
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() || views.Load() < 100 {
				s.View(func(v authority.View) {
					_, hasB := v.Authority(sc.b.id())
					_, hasC := v.Authority(c.id())
					ok := (v.Version() == 4 && hasB && !hasC) || (v.Version() == 3 && hasC && !hasB)
					if !ok {
						t.Errorf("reader %d: torn view: version %d, beta %v, gamma %v", r, v.Version(), hasB, hasC)
					}
				})
				views.Add(1)
				if a := s.AppliedIndex(); a != 4 && a != 8 {
					t.Errorf("reader %d: AppliedIndex %d", r, a)
				}
				_ = s.Version()
				_ = s.Has(sc.rule.ID)
				_ = s.NeedsRestore()
				if t.Failed() {
					return
				}
			}
		}()
	}
	for i := range 20 {
		mustRestore(t, s, [][]byte{snapY, snapX}[i%2])
	}
	stop.Store(true)
	wg.Wait()
	if s.Version() != 4 || s.AppliedIndex() != 4 {
		t.Fatalf("after the last restore (of X): version %d applied %d", s.Version(), s.AppliedIndex())
	}
}

func TestInterruptedRestore(t *testing.T) {
	sc := newScenario(t)
	universe := idsOf(sc.signed()...)
	src := newMemStore(t)
	mustApply(t, src, 4, sc.batch())
	snap := snapshotBytes(t, src)
	want := dumpStore(t, src, universe)

	dir := t.TempDir()
	s := openDisk(t, dir)
	mustApply(t, s, 4, sc.batch())
	// A crash between marking and unmarking: the marker is on disk.
	if err := s.update(func(txn *badger.Txn) error { return txn.Set(keyRestoring, nil) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openDisk(t, dir)
	if !s.NeedsRestore() {
		t.Fatal("NeedsRestore() = false after an interrupted restore")
	}
	empty := storeDump{View: viewDump{Auths: map[authority.ID]authView{}, Revoked: map[[2]authority.ID]authority.ID{}},
		NeedsRestore: true, Has: map[authority.ID]bool{}, ByIssuer: map[authority.ID][]authority.ID{}, ByKind: map[authority.Kind][]authority.ID{}}
	for _, id := range universe {
		empty.Has[id] = false
	}
	wantSameDump(t, "after an interrupted restore", dumpStore(t, s, universe), empty)

	mustRestore(t, s, snap)
	if s.NeedsRestore() {
		t.Fatal("NeedsRestore() = true after a successful restore")
	}
	wantSameDump(t, "after restoring again", dumpStore(t, s, universe), want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDisk(t, dir)
	defer s.Close()
	wantSameDump(t, "reopened after restoring again", dumpStore(t, s, universe), want)
}

func TestGraphAfterClose(t *testing.T) {
	sc := newScenario(t)
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 1, sc.batch())
	snap := snapshotBytes(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Snapshot", call: func() error { _, err := s.Snapshot(); return err }},
		{name: "Restore", call: func() error { return s.Restore(bytes.NewReader(snap)) }},
		{name: "MarkApplied", call: func() error { return s.MarkApplied(9) }},
		{name: "Declaration", call: func() error { _, err := s.Declaration(sc.rule.ID); return err }},
		{name: "ByIssuer", call: func() error { _, err := s.ByIssuer(sc.b.id()); return err }},
		{name: "ByKind", call: func() error { _, err := s.ByKind(authority.KindRule); return err }},
		{name: "Declarations", call: func() error { return s.Declarations(0, 0, func(uint64, []byte) error { return nil }) }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", tt.name, err)
		}
	}
	next := sc.b.rule(t, sc.a.id())
	for i, err := range s.ApplyDeclarations(2, [][]byte{next.Raw, []byte("garbage")}) {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("ApplyDeclarations after Close, envelope %d: %v, want ErrClosed", i, err)
		}
	}
	if s.Has(next.ID) {
		t.Errorf("ApplyDeclarations after Close changed the graph")
	}
	// Memory-only reads keep answering from the last state.
	if s.Version() != 4 || !s.Has(sc.rule.ID) || s.AppliedIndex() != 1 {
		t.Errorf("memory reads after Close: version %d has %v applied %d", s.Version(), s.Has(sc.rule.ID), s.AppliedIndex())
	}
}

// TestGraphMatchesModel feeds random batches of good and bad declarations
// from 2 or 3 authorities to a store and, one by one, to a fresh
// authority.Graph (the model). After every batch the store must answer as
// the model does (the same per-envelope results, version, heads, rules,
// revocations), and for an on-disk store again after a restart.
func TestGraphMatchesModel(t *testing.T) {
	base := t.TempDir()
	seeds := []byte{seedAlpha, seedBeta, seedGamma}
	names := []string{"alpha", "beta", "gamma"}
	// Keys and geneses are the same in every run: make them once.
	all := make([]*gchain, len(seeds))
	for i := range seeds {
		all[i] = newGChain(t, names[i], seeds[i])
	}
	stranger := graphKey(t, seedStranger)
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		chains := all[:rapid.IntRange(2, 3).Draw(rt, "authorities")]
		// A disk store costs about 30 ms to open and close, an in-memory
		// one 5: restarts are tried in a third of the runs.
		disk := rapid.IntRange(0, 2).Draw(rt, "on disk") == 0
		dir := filepath.Join(base, fmt.Sprint(run))
		open := func() *Store {
			s, err := Open(dir, Options{InMemory: !disk, Logger: testLogger(t)})
			if err != nil {
				rt.Fatalf("Open: %v", err)
			}
			return s
		}
		s := open()
		rt.Cleanup(func() { s.Close() })

		model := authority.NewGraph()
		positions := map[authority.ID][]authority.ID{} // accepted IDs by authority, by seq
		var universe []authority.ID
		var signed []*authority.Signed
		var accepted [][]byte
		for _, c := range chains {
			universe = append(universe, c.id())
			signed = append(signed, c.genesis)
		}
		sign := func(sd *authority.Signed) []byte {
			universe = append(universe, sd.ID)
			signed = append(signed, sd)
			return sd.Raw
		}
		anyID := func(label string) authority.ID {
			return rapid.SampledFrom(universe).Draw(rt, label)
		}
		// head is the model's head of c, or c's genesis if the model does
		// not know c (what follows is then refused as unknown).
		head := func(c *gchain) (uint64, authority.ID) {
			if a, ok := model.Authority(c.id()); ok {
				return a.Head, a.HeadID
			}
			return 0, c.id()
		}
		draw := func() []byte {
			c := rapid.SampledFrom(chains).Draw(rt, "issuer")
			if _, ok := model.Authority(c.id()); !ok && rapid.IntRange(0, 3).Draw(rt, "found first") > 0 {
				// Mostly found the issuer first, so that chains grow.
				return c.genesis.Raw
			}
			h, hid := head(c)
			source := rapid.SampledFrom(chains).Draw(rt, "source").id()
			switch rapid.SampledFrom([]string{"genesis", "rule", "rule", "revoke", "duplicate", "gap", "conflict", "wrong-prev", "bad-signature", "garbage", "flipped"}).Draw(rt, "action") {
			case "genesis":
				return c.genesis.Raw
			case "rule":
				return sign(c.ruleAt(rt, h+1, hid, source, c.key))
			case "revoke":
				return sign(c.revokeAt(rt, h+1, hid, anyID("target"), c.key))
			case "duplicate":
				return rapid.SampledFrom(signed).Draw(rt, "again").Raw
			case "gap":
				return sign(c.ruleAt(rt, h+2, anyID("prev"), source, c.key))
			case "conflict":
				if h == 0 {
					return sign(c.ruleAt(rt, 1, anyID("prev"), source, c.key))
				}
				seq := rapid.Uint64Range(1, h).Draw(rt, "seq")
				return sign(c.ruleAt(rt, seq, positions[c.id()][seq-1], source, c.key))
			case "wrong-prev":
				return sign(c.ruleAt(rt, h+1, anyID("prev"), source, c.key))
			case "bad-signature":
				k := stranger
				if rapid.Bool().Draw(rt, "other authority's key") {
					k = rapid.SampledFrom(chains).Draw(rt, "signer").key
				}
				return sign(c.ruleAt(rt, h+1, hid, source, k))
			case "garbage":
				return rapid.SliceOfN(rapid.Byte(), 0, 48).Draw(rt, "garbage")
			default: // flipped
				env := bytes.Clone(rapid.SampledFrom(signed).Draw(rt, "victim").Raw)
				env[rapid.IntRange(0, len(env)-1).Draw(rt, "at")] ^= byte(rapid.IntRange(1, 255).Draw(rt, "mask"))
				return env
			}
		}
		check := func(what string, index uint64) {
			if got, want := dumpView(storeView(s), universe), dumpView(model, universe); !reflect.DeepEqual(got, want) {
				rt.Fatalf("%s: store view differs from the model:\n got %+v\nwant %+v", what, got, want)
			}
			if s.AppliedIndex() != index {
				rt.Fatalf("%s: AppliedIndex = %d, want %d", what, s.AppliedIndex(), index)
			}
			for _, id := range universe {
				if s.Has(id) != model.Has(id) {
					rt.Fatalf("%s: Has(%s) = %v, model says %v", what, id.Short(), s.Has(id), model.Has(id))
				}
			}
		}

		index := uint64(0)
		for b := range rapid.IntRange(1, 8).Draw(rt, "batches") {
			n := rapid.IntRange(0, 6).Draw(rt, "batch size")
			batch := make([][]byte, n)
			want := make([]error, n)
			for i := range batch {
				batch[i] = draw()
				sd, err := authority.Parse(batch[i])
				if err == nil {
					err = model.Apply(sd)
				}
				want[i] = err
				if err == nil {
					accepted = append(accepted, sd.Raw)
					owner := sd.Decl.Authority
					if sd.Decl.Kind == authority.KindGenesis {
						owner = sd.ID
					}
					positions[owner] = append(positions[owner], sd.ID)
				}
			}
			index += rapid.Uint64Range(1, 3).Draw(rt, "index step")
			got := s.ApplyDeclarations(index, batch)
			if !slices.Equal(errStrings(got), errStrings(want)) {
				rt.Fatalf("batch %d: results\n%q\nwant (model)\n%q", b, errStrings(got), errStrings(want))
			}
			check(fmt.Sprintf("after batch %d", b), index)
			if disk && rapid.IntRange(0, 2).Draw(rt, "restart") == 0 {
				if err := s.Close(); err != nil {
					rt.Fatalf("Close: %v", err)
				}
				s = open()
				check(fmt.Sprintf("after batch %d and a restart", b), index)
			}
		}
		if got := stream(rt, s); !reflect.DeepEqual(got, accepted) {
			rt.Fatalf("Declarations streams %d envelopes, the model accepted %d (or they differ)", len(got), len(accepted))
		}
	})
}

// storeView returns the store's graph for reading outside View. Only for
// tests that do not write concurrently.
func storeView(s *Store) authority.View {
	var v authority.View
	s.View(func(gv authority.View) { v = gv })
	return v
}

// BenchmarkApplyDeclarations measures Raft applying batches of 64 rules of
// one authority on disk with SyncWrites: parse, signature check, one
// synced transaction per batch.
func BenchmarkApplyDeclarations(b *testing.B) {
	s := openDisk(b, b.TempDir())
	defer s.Close()
	a := newGChain(b, "alpha", seedAlpha)
	mustApply(b, s, 1, envs(a.genesis))
	const batch = 64
	sign := func() [][]byte {
		out := make([][]byte, batch)
		for i := range out {
			out[i] = a.rule(b, a.id()).Raw
		}
		return out
	}
	index := uint64(1)
	pending := sign()
	b.ReportAllocs()
	for b.Loop() {
		index++
		for _, err := range s.ApplyDeclarations(index, pending) {
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		pending = sign()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/decl")
}

// BenchmarkSnapshotRestore measures Persist and Restore of a graph of
// 10,000 declarations (3 authorities) on disk.
func BenchmarkSnapshotRestore(b *testing.B) {
	const n = 10_000
	src := openDisk(b, b.TempDir())
	defer src.Close()
	chains := []*gchain{newGChain(b, "alpha", seedAlpha), newGChain(b, "beta", seedBeta), newGChain(b, "gamma", seedGamma)}
	all := envs(chains[0].genesis, chains[1].genesis, chains[2].genesis)
	for i := len(all); i < n; i++ {
		c := chains[i%3]
		if i%10 == 0 {
			all = append(all, c.revoke(b, c.headID).Raw)
		} else {
			all = append(all, c.rule(b, chains[(i+1)%3].id()).Raw)
		}
	}
	for i := 0; i < n; i += 1000 {
		mustApply(b, src, uint64(i/1000+1), all[i:i+1000])
	}
	snap := snapshotBytes(b, src)

	b.Run("persist", func(b *testing.B) {
		var buf bytes.Buffer
		b.SetBytes(int64(len(snap)))
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			p, err := src.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Persist(&buf); err != nil {
				b.Fatal(err)
			}
			p.Release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/decl")
	})
	b.Run("restore", func(b *testing.B) {
		dst := openDisk(b, b.TempDir())
		defer dst.Close()
		b.SetBytes(int64(len(snap)))
		b.ReportAllocs()
		for b.Loop() {
			mustRestore(b, dst, snap)
		}
		if dst.Version() != n {
			b.Fatalf("restored version %d", dst.Version())
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/decl")
	})
}
