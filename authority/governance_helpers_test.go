package authority_test

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"slices"
	"time"

	"github.com/veraison/go-cose"

	"github.com/fednode/fednode/authority"
)

// Key seeds of the governance tests: root keys, operational keys and keys of
// the authorities they are judged with. Disjoint from helpers_test.go's.
const (
	seedR1 byte = 41 + iota
	seedR2
	seedR3
	seedR4
	seedR5
)

const (
	seedOp1 byte = 51 + iota
	seedOp2
	seedOp3
)

const (
	seedGovTarget byte = 60
	seedGovFork   byte = 61
)

// gov is the signing side of an authority with a threshold of root keys
// (chain is its one-key twin in helpers_test.go). Positions it has signed
// are kept, so a test can fork it at an earlier seq.
type gov struct {
	name    string
	genesis *authority.Signed
	head    uint64
	headID  authority.ID
	ids     []authority.ID // ids[seq] is the declaration it signed there
}

// keysOf returns the fixed private keys of seeds.
func keysOf(t fataler, seeds ...byte) []*authority.PrivateKey {
	t.Helper()
	out := make([]*authority.PrivateKey, len(seeds))
	for i, s := range seeds {
		out[i] = fixedKey(t, s)
	}
	return out
}

// pubsOf returns the public keys of seeds.
func pubsOf(t fataler, seeds ...byte) []authority.PublicKey {
	t.Helper()
	out := make([]authority.PublicKey, len(seeds))
	for i, k := range keysOf(t, seeds...) {
		out[i] = k.Public()
	}
	return out
}

func mustSignMulti(t fataler, d authority.Declaration, seeds ...byte) *authority.Signed {
	t.Helper()
	s, err := authority.SignMulti(d, keysOf(t, seeds...)...)
	if err != nil {
		t.Fatalf("sign %v with %v: %v", d.Kind, seeds, err)
	}
	return s
}

// newGov founds name with root keys roots and threshold k; signers sign the
// genesis.
func newGov(t fataler, name string, k uint8, roots []byte, signers ...byte) *gov {
	t.Helper()
	g := mustSignMulti(t, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: unix(now.Add(-30 * 24 * time.Hour)),
		Genesis:  &authority.Genesis{Name: name, Kind: "sovereign", RootKeys: pubsOf(t, roots...), Threshold: k},
	}, signers...)
	return &gov{name: name, genesis: g, headID: g.ID, ids: []authority.ID{g.ID}}
}

func (c *gov) id() authority.ID { return c.genesis.ID }

// next signs d as c's next declaration with signers and advances the head.
// d.IssuedAt defaults to an hour before now.
func (c *gov) next(t fataler, d authority.Declaration, signers ...byte) *authority.Signed {
	t.Helper()
	d.Authority, d.Seq, d.Prev = c.id(), c.head+1, c.headID
	if d.IssuedAt == 0 {
		d.IssuedAt = unix(now.Add(-time.Hour))
	}
	s := mustSignMulti(t, d, signers...)
	c.head, c.headID = d.Seq, s.ID
	c.ids = append(c.ids[:d.Seq], s.ID)
	return s
}

// forkAt rewinds c so that its next declaration is at seq.
func (c *gov) forkAt(seq uint64) {
	c.head, c.headID = seq-1, c.ids[seq-1]
	c.ids = c.ids[:seq]
}

// snapshot returns c's positions, for restore after trying declarations
// that are not applied.
func (c *gov) snapshot() []authority.ID { return slices.Clone(c.ids) }

// restore makes c's positions ids again.
func (c *gov) restore(ids []authority.ID) {
	c.ids = slices.Clone(ids)
	c.head, c.headID = uint64(len(ids)-1), ids[len(ids)-1]
}

// setHead makes s, one of c's declarations, c's head again (after a fork).
func (c *gov) setHead(s *authority.Signed) {
	c.head, c.headID = s.Decl.Seq, s.ID
	c.ids = append(c.ids[:s.Decl.Seq], s.ID)
}

func (c *gov) rule(t fataler, source authority.ID, subjects string, signers ...byte) *authority.Signed {
	t.Helper()
	return c.next(t, ruleDecl(source, subjects), signers...)
}

func ruleDecl(source authority.ID, subjects string) authority.Declaration {
	return authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: source, Subjects: subjects, Resources: dataPattern, Actions: []string{"read"}}}
}

func (c *gov) revoke(t fataler, target authority.ID, signers ...byte) *authority.Signed {
	t.Helper()
	return c.next(t, authority.Declaration{Kind: authority.KindRevocation, Revocation: &authority.Revocation{Target: target}}, signers...)
}

func (c *gov) rotate(t fataler, k uint8, roots []byte, signers ...byte) *authority.Signed {
	t.Helper()
	return c.next(t, rotationDecl(t, k, roots...), signers...)
}

func rotationDecl(t fataler, k uint8, roots ...byte) authority.Declaration {
	return authority.Declaration{Kind: authority.KindRotation, IssuedAt: unix(now.Add(-time.Hour)), Rotation: &authority.Rotation{RootKeys: pubsOf(t, roots...), Threshold: k}}
}

// delegate delegates op for kinds within [nbf, naf).
func (c *gov) delegate(t fataler, op byte, kinds []authority.Kind, nbf, naf time.Time, signers ...byte) *authority.Signed {
	t.Helper()
	return c.next(t, delegationDecl(t, op, kinds, nbf, naf), signers...)
}

func delegationDecl(t fataler, op byte, kinds []authority.Kind, nbf, naf time.Time) authority.Declaration {
	return authority.Declaration{Kind: authority.KindDelegation, IssuedAt: unix(now.Add(-2 * time.Hour)),
		Delegation: &authority.KeyDelegation{Key: fixedKey(t, op).Public(), Kinds: kinds, NotBefore: unixOrZero(nbf), NotAfter: unixOrZero(naf)}}
}

// credential signs c's off-chain credential for subject with signers.
func (c *gov) credential(t fataler, subject string, nbf, naf time.Time, signers ...byte) *authority.Signed {
	t.Helper()
	return mustSignMulti(t, credentialDecl(c.id(), subject, nbf, naf), signers...)
}

// Standard windows of the governance tests.
var (
	dayAgo     = now.Add(-24 * time.Hour)
	dayAhead   = now.Add(24 * time.Hour)
	weekAhead  = now.Add(7 * 24 * time.Hour)
	credKinds  = []authority.Kind{authority.KindCredential}
	ruleKinds  = []authority.Kind{authority.KindRule, authority.KindRevocation}
	everyKinds = []authority.Kind{authority.KindRule, authority.KindCredential, authority.KindRevocation}
)

// sigEntry is one COSE_Signature of a hand-made COSE_Sign: key seed, the
// algorithm its header claims (zero: the key's own), and raw headers when a
// test needs them wrong.
type sigEntry struct {
	seed   byte
	claim  cose.Algorithm
	kid    []byte // zero: the key's own
	unprot cose.UnprotectedHeader
}

// claimingSigner signs with an Ed25519 key but claims alg: how a forger
// builds an algorithm-substitution signature.
type claimingSigner struct {
	alg cose.Algorithm
	k   ed25519.PrivateKey
}

func (s claimingSigner) Algorithm() cose.Algorithm { return s.alg }

func (s claimingSigner) Sign(_ io.Reader, content []byte) ([]byte, error) {
	return ed25519.Sign(s.k, content), nil
}

// multiEnvelope builds a COSE_Sign around payload by hand, one signature per
// entry in the order given: how the tests make COSE_Sign envelopes SignMulti
// never would (duplicates, wrong order, lying headers). bodyProt, when set,
// is the body's protected header.
func multiEnvelope(t fataler, payload []byte, bodyProt cose.ProtectedHeader, entries ...sigEntry) []byte {
	t.Helper()
	if bodyProt == nil {
		bodyProt = cose.ProtectedHeader{}
	}
	msg := cose.SignMessage{Headers: cose.Headers{Protected: bodyProt, Unprotected: cose.UnprotectedHeader{}}, Payload: payload}
	var signers []cose.Signer
	for _, e := range entries {
		alg := e.claim
		if alg == 0 {
			alg = cose.AlgorithmEdDSA
		}
		kid := e.kid
		if kid == nil {
			kid = fixedKey(t, e.seed).Public().KeyID()
		}
		unprot := e.unprot
		if unprot == nil {
			unprot = cose.UnprotectedHeader{}
		}
		msg.Signatures = append(msg.Signatures, &cose.Signature{Headers: cose.Headers{
			Protected:   cose.ProtectedHeader{cose.HeaderLabelAlgorithm: alg, cose.HeaderLabelKeyID: kid},
			Unprotected: unprot,
		}})
		signers = append(signers, claimingSigner{alg, rawKey(e.seed)})
	}
	if err := msg.Sign(nil, nil, signers...); err != nil {
		t.Fatalf("cose sign: %v", err)
	}
	raw, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatalf("cose encode: %v", err)
	}
	return raw
}

// sortedBySeed returns entries for seeds in ascending key-ID order, the
// order a canonical COSE_Sign has.
func sortedBySeed(t fataler, seeds ...byte) []sigEntry {
	t.Helper()
	out := make([]sigEntry, len(seeds))
	for i, s := range seeds {
		out[i] = sigEntry{seed: s}
	}
	slices.SortFunc(out, func(a, b sigEntry) int {
		return bytes.Compare(fixedKey(t, a.seed).Public().KeyID(), fixedKey(t, b.seed).Public().KeyID())
	})
	return out
}

// multiPayload is the payload of a COSE_Sign envelope.
func multiPayload(t fataler, raw []byte) []byte {
	t.Helper()
	var msg cose.SignMessage
	if err := msg.UnmarshalCBOR(raw); err != nil {
		t.Fatalf("decode COSE_Sign: %v", err)
	}
	return msg.Payload
}

func mustParse(t fataler, raw []byte) *authority.Signed {
	t.Helper()
	s, err := authority.Parse(raw)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return s
}

// govWorld is the standard governance scenario: gov-root (2 of R1 R2 R3),
// the target gov-target (one key) whose rule accepts gov-root's etl roles,
// all in one graph.
type govWorld struct {
	g      *authority.Graph
	root   *gov
	target *gov
	rule   *authority.Signed
}

func newGovWorld(t fataler) *govWorld {
	t.Helper()
	w := &govWorld{
		g:      authority.NewGraph(),
		root:   newGov(t, "gov-root", 2, []byte{seedR1, seedR2, seedR3}, seedR1, seedR2),
		target: newGov(t, "gov-target", 1, []byte{seedGovTarget}, seedGovTarget),
	}
	w.apply(t, w.root.genesis)
	w.apply(t, w.target.genesis)
	w.rule = w.apply(t, w.target.rule(t, w.root.id(), etlPattern, seedGovTarget))
	return w
}

func (w *govWorld) apply(t fataler, s *authority.Signed) *authority.Signed {
	t.Helper()
	if err := w.g.Apply(s); err != nil {
		t.Fatalf("apply %v %s: %v", s.Decl.Kind, s.ID.Short(), err)
	}
	return s
}

// request asks gov-target to let cred read the standard resource.
func (w *govWorld) request(cred []byte) authority.Request {
	return authority.Request{Credential: cred, Target: w.target.id(), Resource: dataResource, Action: "read"}
}
