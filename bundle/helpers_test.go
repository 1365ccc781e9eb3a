package bundle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// exportTime is when test bundles are exported, and notAfter their
// deadline: tests never read the clock.
var (
	exportTime = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	notAfter   = exportTime.Add(7 * 24 * time.Hour)
)

const testOrigin = "fednode/test-consortium"

// testKey derives an Ed25519 key from a fixed seed name, so fixtures (and
// their IDs) are the same on every run.
func testKey(tb testing.TB, seed string) *authority.PrivateKey {
	tb.Helper()
	h := sha256.Sum256([]byte("fednode bundle test key: " + seed))
	k, err := authority.GenerateKey(authority.AlgEd25519, bytes.NewReader(h[:]))
	if err != nil {
		tb.Fatalf("GenerateKey %s: %v", seed, err)
	}
	return k
}

func mustSign(tb testing.TB, d authority.Declaration, k *authority.PrivateKey) *authority.Signed {
	tb.Helper()
	s, err := authority.Sign(d, k)
	if err != nil {
		tb.Fatalf("Sign %v: %v", d.Kind, err)
	}
	return s
}

// party is an authority of the fixture: its name, key and genesis.
type party struct {
	name string
	key  *authority.PrivateKey
	gen  *authority.Signed
}

func newParty(tb testing.TB, name string) party {
	tb.Helper()
	k := testKey(tb, name)
	g := mustSign(tb, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: exportTime.Add(-72 * time.Hour).Unix(),
		Genesis: &authority.Genesis{
			Name: name, Kind: "pki", Threshold: 1,
			RootKeys: []authority.PublicKey{k.Public()},
		},
	}, k)
	return party{name: name, key: k, gen: g}
}

func (p party) id() authority.ID { return p.gen.ID }
func (p party) signer() Signer   { return Signer{Name: p.name, ID: p.gen.ID, Key: p.key} }
func signers(ps ...party) []Signer {
	out := make([]Signer, len(ps))
	for i, p := range ps {
		out[i] = p.signer()
	}
	return out
}

// ruleAt makes a rule of target at seq, after prev.
func ruleAt(tb testing.TB, target party, seq uint64, prev authority.ID, r authority.Rule) *authority.Signed {
	tb.Helper()
	return mustSign(tb, authority.Declaration{
		Kind: authority.KindRule, Authority: target.id(), Seq: seq, Prev: prev,
		IssuedAt: exportTime.Add(-48 * time.Hour).Unix(), Rule: &r,
	}, target.key)
}

func revocationAt(tb testing.TB, issuer party, seq uint64, prev, target authority.ID) *authority.Signed {
	tb.Helper()
	return mustSign(tb, authority.Declaration{
		Kind: authority.KindRevocation, Authority: issuer.id(), Seq: seq, Prev: prev,
		IssuedAt:   exportTime.Add(-time.Hour).Unix(),
		Revocation: &authority.Revocation{Target: target, Reason: "test"},
	}, issuer.key)
}

func credential(tb testing.TB, issuer party, subject string) *authority.Signed {
	tb.Helper()
	return mustSign(tb, authority.Declaration{
		Kind: authority.KindCredential, Authority: issuer.id(),
		IssuedAt: exportTime.Add(-24 * time.Hour).Unix(),
		Credential: &authority.Credential{
			Subject:   subject,
			NotBefore: exportTime.Add(-24 * time.Hour).Unix(),
			NotAfter:  exportTime.Add(30 * 24 * time.Hour).Unix(),
		},
	}, issuer.key)
}

// fixture is a small federation: pki (the exporter) accepts principals of
// aws for reads of db/* (rule1) and writes of db/scratch/* by alice
// (rule2); aws issued credentials to alice and bob and revoked bob's; gcp
// and mallory are authorities in the graph (gcp a consortium member,
// mallory not); stranger is in no graph. Versions 8 and 9 (the delta) add
// pki's rule3 (reads of web/*) and gcp's rule accepting aws.
type fixture struct {
	pki, aws, gcp, mallory, stranger party

	rule1, rule2, revocation, rule3, gcpRule *authority.Signed
	// fork is validly signed by pki at rule1's position: equivocation.
	fork       *authority.Signed
	alice, bob *authority.Signed

	// all is the log's leaves, versions 1..9; the graph at 7 is all[:7].
	all [][]byte
	log *tlog.MemStore
	// full is the bundle at version 7, checkpoint signed by pki and
	// cosigned by aws, bundle signed by pki then aws; delta is 7 -> 9 signed
	// by pki.
	full, delta []byte
}

const fullVersion = 7

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{
		pki: newParty(tb, "pki"), aws: newParty(tb, "aws"), gcp: newParty(tb, "gcp"),
		mallory: newParty(tb, "mallory"), stranger: newParty(tb, "stranger"),
	}
	f.rule1 = ruleAt(tb, f.pki, 1, f.pki.id(), authority.Rule{
		Source: f.aws.id(), Subjects: "*", Resources: "db/*", Actions: []string{"read"},
	})
	f.rule2 = ruleAt(tb, f.pki, 2, f.rule1.ID, authority.Rule{
		Source: f.aws.id(), Subjects: "alice", Resources: "db/scratch/*", Actions: []string{"write"},
	})
	f.fork = ruleAt(tb, f.pki, 1, f.pki.id(), authority.Rule{
		Source: f.aws.id(), Subjects: "*", Resources: "*", Actions: []string{"admin"},
	})
	f.alice = credential(tb, f.aws, "alice")
	f.bob = credential(tb, f.aws, "bob")
	f.revocation = revocationAt(tb, f.aws, 1, f.aws.id(), f.bob.ID)
	f.rule3 = ruleAt(tb, f.pki, 3, f.rule2.ID, authority.Rule{
		Source: f.aws.id(), Subjects: "*", Resources: "web/*", Actions: []string{"read"},
	})
	f.gcpRule = ruleAt(tb, f.gcp, 1, f.gcp.id(), authority.Rule{
		Source: f.aws.id(), Subjects: "*", Resources: "*", Actions: []string{"read"},
	})
	f.all = [][]byte{
		f.pki.gen.Raw, f.aws.gen.Raw, f.gcp.gen.Raw, f.mallory.gen.Raw,
		f.rule1.Raw, f.rule2.Raw, f.revocation.Raw, // version 7
		f.rule3.Raw, f.gcpRule.Raw, // version 9
	}
	f.log = logOf(tb, f.all)
	f.full = build(tb, f.contents(tb, 0, fullVersion, f.pki, f.aws), f.pki, f.aws)
	f.delta = build(tb, f.contents(tb, fullVersion, 9, f.pki), f.pki)
	return f
}

// logOf builds the log over leaves.
func logOf(tb testing.TB, leaves [][]byte) *tlog.MemStore {
	tb.Helper()
	ms := tlog.NewMemStore()
	a, err := tlog.NewAppender(0, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i, l := range leaves {
		if err := a.Append(l, ms.PutNode); err != nil {
			tb.Fatalf("Append %d: %v", i, err)
		}
	}
	return ms
}

// checkpoint signs the checkpoint of origin at size of log: by the first
// of by, cosigned by the others.
func checkpoint(tb testing.TB, log tlog.NodeStore, origin string, size uint64, by ...party) []byte {
	tb.Helper()
	root, err := tlog.RootAt(log, size)
	if err != nil {
		tb.Fatal(err)
	}
	cp := tlog.Checkpoint{Origin: origin, Size: size, Root: root}
	note, err := tlog.SignCheckpoint(cp, by[0].name, by[0].key)
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range by[1:] {
		if note, err = tlog.Cosign(note, p.name, p.key); err != nil {
			tb.Fatal(err)
		}
	}
	return note
}

// contentsOf is the contents of versions base+1..size of log over all, with
// its proofs, and the checkpoint at size signed by cp.
func contentsOf(tb testing.TB, all [][]byte, log tlog.NodeStore, base, size uint64, cp ...party) Contents {
	tb.Helper()
	c := Contents{
		GraphVersion: size,
		ExportedAt:   exportTime.UnixMilli(),
		NotAfter:     notAfter.UnixMilli(),
		Origin:       testOrigin,
		Checkpoint:   checkpoint(tb, log, testOrigin, size, cp...),
		Declarations: all[base:size],
		BaseVersion:  base,
	}
	if err := c.Prove(log); err != nil {
		tb.Fatalf("Prove: %v", err)
	}
	return c
}

func (f *fixture) contents(tb testing.TB, base, size uint64, cp ...party) Contents {
	tb.Helper()
	return contentsOf(tb, f.all, f.log, base, size, cp...)
}

// build is Build, failing the test on error.
func build(tb testing.TB, c Contents, by ...party) []byte {
	tb.Helper()
	b, err := Build(c, signers(by...)...)
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	return b
}

// forge encodes c as it stands (no checks) as format 2 and signs it as
// Build would: how a forger or a buggy exporter would make a bundle.
func forge(tb testing.TB, c Contents, by ...party) []byte {
	tb.Helper()
	p, err := encMode.Marshal(&payload{Format: FormatVersion, Contents: c})
	if err != nil {
		tb.Fatal(err)
	}
	return forgePayload(tb, p, by...)
}

// forgePayload signs payload bytes p as Build would.
func forgePayload(tb testing.TB, p []byte, by ...party) []byte {
	tb.Helper()
	var sigs [][]byte
	for _, s := range by {
		sig, err := sign(p, s.signer())
		if err != nil {
			tb.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	return assemble(tb, p, sigs...)
}

// assemble encodes the outer structure.
func assemble(tb testing.TB, p []byte, sigs ...[]byte) []byte {
	tb.Helper()
	b, err := encMode.Marshal(&outer{Payload: p, Signatures: sigs})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sealStatement seals st with k: a signature made by hand.
func sealStatement(tb testing.TB, st statement, k *authority.PrivateKey) []byte {
	tb.Helper()
	b, err := encMode.Marshal(&st)
	if err != nil {
		tb.Fatal(err)
	}
	sig, err := authority.Seal(b, k)
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// outerOf decodes b's outer structure.
func outerOf(tb testing.TB, b []byte) *outer {
	tb.Helper()
	o, err := decodeOuter(b)
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

func mustOpen(tb testing.TB, b []byte, p Policy) *Bundle {
	tb.Helper()
	bd, err := Open(b, p)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return bd
}

// flip returns a copy of b with byte i inverted.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

// withCopies returns a deep enough copy of c to alter its proofs and
// declarations.
func withCopies(c Contents) Contents {
	c.Declarations = append([][]byte(nil), c.Declarations...)
	c.Proofs = append([][][]byte(nil), c.Proofs...)
	for i := range c.Proofs {
		c.Proofs[i] = append([][]byte(nil), c.Proofs[i]...)
	}
	c.Consistency = append([][]byte(nil), c.Consistency...)
	return c
}

// bigGraph is n authorities with r rules each (n*(r+1) declarations):
// authority i accepts principals of authority (i+1) mod n for reads of
// svc-<j>/*, j = 1..r. It returns the parties, the declarations in a valid
// order, and a credential of party 1 for "alice".
func bigGraph(tb testing.TB, n, r int) ([]party, [][]byte, *authority.Signed) {
	tb.Helper()
	ps := make([]party, n)
	decls := make([][]byte, 0, n*(r+1))
	for i := range ps {
		ps[i] = newParty(tb, fmt.Sprintf("authority-%04d", i))
		decls = append(decls, ps[i].gen.Raw)
	}
	for i, p := range ps {
		prev := p.id()
		src := ps[(i+1)%n].id()
		for j := 1; j <= r; j++ {
			rule := ruleAt(tb, p, uint64(j), prev, authority.Rule{
				Source: src, Subjects: "*", Resources: fmt.Sprintf("svc-%d/*", j), Actions: []string{"read"},
			})
			decls = append(decls, rule.Raw)
			prev = rule.ID
		}
	}
	return ps, decls, credential(tb, ps[1], "alice")
}
