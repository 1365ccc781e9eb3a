package authority_test

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/fednode/fednode/authority"
)

// update regenerates testdata/*.cbor: go test ./authority -run TestFixtures -update
var update = flag.Bool("update", false, "rewrite the testdata fixtures instead of checking them")

// now is the time every test judges at (never time.Now).
var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// Subjects, resources and actions of the standard scenario.
const (
	etlSubject   = "arn:aws:iam::111122223333:role/etl-loader"
	adminSubject = "arn:aws:iam::111122223333:role/admin"
	etlPattern   = "arn:aws:iam::111122223333:role/etl-*"
	dataPattern  = "blob://corp-data/*"
	dataResource = "blob://corp-data/q3.parquet"
)

// Key seeds: one per authority, plus keys no authority ever declared.
const (
	seedAWS      byte = 1
	seedAzure    byte = 2
	seedGCP      byte = 3
	seedImpostor byte = 4
	seedStranger byte = 9
)

// fataler is what the helpers need of *testing.T, *testing.B, *testing.F
// and *rapid.T alike.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// seedBytes is the 32-byte Ed25519 seed of fixture key n.
func seedBytes(n byte) []byte { return bytes.Repeat([]byte{n}, ed25519.SeedSize) }

// keyFile is the key-file encoding of fixture key n, written by hand from the
// documented layout {1: alg, 2: seed} rather than by MarshalPrivateKey, so the
// round-trip test compares two independent encodings.
func keyFile(n byte) []byte {
	b := []byte{0xa2, 0x01, byte(authority.AlgEd25519), 0x02, 0x58, ed25519.SeedSize}
	return append(b, seedBytes(n)...)
}

// fixedKey returns the deterministic private key of seed n.
func fixedKey(t fataler, n byte) *authority.PrivateKey {
	t.Helper()
	k, err := authority.ParsePrivateKey(keyFile(n))
	if err != nil {
		t.Fatalf("fixed key %d: %v", n, err)
	}
	return k
}

// rawKey is the same key as fixedKey(n) for signing by hand with go-cose.
func rawKey(n byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(seedBytes(n)) }

func unix(t time.Time) int64 { return t.Unix() }

// chain is the signing side of one authority: its key and chain head.
type chain struct {
	name    string
	key     *authority.PrivateKey
	seed    byte
	genesis *authority.Signed
	head    uint64
	headID  authority.ID
}

// newChain founds an authority named name with key seed.
func newChain(t fataler, name string, seed byte) *chain {
	t.Helper()
	k := fixedKey(t, seed)
	g := mustSign(t, authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: unix(now.Add(-30 * 24 * time.Hour)),
		Genesis: &authority.Genesis{
			Name:      name,
			Kind:      strings.SplitN(name, "-", 2)[0],
			RootKeys:  []authority.PublicKey{k.Public()},
			Threshold: 1,
		},
	}, k)
	return &chain{name: name, key: k, seed: seed, genesis: g, headID: g.ID}
}

// id is the authority's ID.
func (c *chain) id() authority.ID { return c.genesis.ID }

// next signs d as the next declaration of c's chain and advances the head.
func (c *chain) next(t fataler, d authority.Declaration) *authority.Signed {
	t.Helper()
	d.Authority, d.Seq, d.Prev = c.id(), c.head+1, c.headID
	if d.IssuedAt == 0 {
		d.IssuedAt = unix(now.Add(-time.Hour))
	}
	s := mustSign(t, d, c.key)
	c.head, c.headID = d.Seq, s.ID
	return s
}

// rule signs the next declaration of c: a rule accepting source.
func (c *chain) rule(t fataler, source authority.ID, subjects, resources string, actions []string, nbf, naf time.Time) *authority.Signed {
	t.Helper()
	return c.next(t, authority.Declaration{
		Kind: authority.KindRule,
		Rule: &authority.Rule{Source: source, Subjects: subjects, Resources: resources, Actions: actions, NotBefore: unixOrZero(nbf), NotAfter: unixOrZero(naf)},
	})
}

// revoke signs the next declaration of c: a revocation of target.
func (c *chain) revoke(t fataler, target authority.ID) *authority.Signed {
	t.Helper()
	return c.next(t, authority.Declaration{
		Kind:       authority.KindRevocation,
		Revocation: &authority.Revocation{Target: target, Reason: "test"},
	})
}

// credential signs an off-chain credential of c for subject.
func (c *chain) credential(t fataler, subject string, nbf, naf time.Time) *authority.Signed {
	t.Helper()
	return mustSign(t, credentialDecl(c.id(), subject, nbf, naf), c.key)
}

func credentialDecl(issuer authority.ID, subject string, nbf, naf time.Time) authority.Declaration {
	return authority.Declaration{
		Kind:       authority.KindCredential,
		Authority:  issuer,
		IssuedAt:   unix(now.Add(-2 * time.Hour)),
		Credential: &authority.Credential{Subject: subject, NotBefore: unixOrZero(nbf), NotAfter: unixOrZero(naf)},
	}
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func mustSign(t fataler, d authority.Declaration, k *authority.PrivateKey) *authority.Signed {
	t.Helper()
	s, err := authority.Sign(d, k)
	if err != nil {
		t.Fatalf("sign %v: %v", d.Kind, err)
	}
	return s
}

// world is the standard scenario: aws-prod and azure-corp in a graph.
type world struct {
	g     *authority.Graph
	aws   *chain
	azure *chain
}

// newWorld returns a graph holding the geneses of aws-prod and azure-corp and
// nothing else.
func newWorld(t fataler) *world {
	t.Helper()
	w := &world{g: authority.NewGraph(), aws: newChain(t, "aws-prod", seedAWS), azure: newChain(t, "azure-corp", seedAzure)}
	w.apply(t, w.aws.genesis)
	w.apply(t, w.azure.genesis)
	return w
}

func (w *world) apply(t fataler, s *authority.Signed) *authority.Signed {
	t.Helper()
	if err := w.g.Apply(s); err != nil {
		t.Fatalf("apply %v %s: %v", s.Decl.Kind, s.ID.Short(), err)
	}
	return s
}

// etlRule applies azure-corp's rule accepting aws-prod's etl roles to read
// corp-data, valid for a day either side of now.
func (w *world) etlRule(t fataler) *authority.Signed {
	t.Helper()
	return w.apply(t, w.azure.rule(t, w.aws.id(), etlPattern, dataPattern, []string{"read"}, now.Add(-24*time.Hour), now.Add(24*time.Hour)))
}

// etlCredential is aws-prod's credential for the etl loader role, valid for an
// hour either side of now.
func (w *world) etlCredential(t fataler) *authority.Signed {
	t.Helper()
	return w.aws.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour))
}

// request asks azure-corp to let cred read the standard resource.
func (w *world) request(cred []byte) authority.Request {
	return authority.Request{Credential: cred, Target: w.azure.id(), Resource: dataResource, Action: "read"}
}

// resign builds a COSE_Sign1 envelope by hand around payload and signs it
// properly with key n. It is how the tests make envelopes that Sign would
// never produce. extraProtected and unprotected add header parameters;
// rawProtected, when set, replaces the encoded protected header.
func resign(t fataler, payload []byte, n byte, extraProtected, unprotected map[any]any, rawProtected []byte) []byte {
	t.Helper()
	pub := authority.PublicKey{Alg: authority.AlgEd25519, Key: rawKey(n).Public().(ed25519.PublicKey)}
	prot := cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA, cose.HeaderLabelKeyID: pub.KeyID()}
	for k, v := range extraProtected {
		prot[k] = v
	}
	unprot := cose.UnprotectedHeader{}
	for k, v := range unprotected {
		unprot[k] = v
	}
	msg := cose.Sign1Message{Headers: cose.Headers{Protected: prot, Unprotected: unprot, RawProtected: rawProtected}, Payload: payload}
	signer, err := cose.NewSigner(cose.AlgorithmEdDSA, rawKey(n))
	if err != nil {
		t.Fatalf("cose signer: %v", err)
	}
	if err := msg.Sign(nil, nil, signer); err != nil {
		t.Fatalf("cose sign: %v", err)
	}
	raw, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatalf("cose encode: %v", err)
	}
	return raw
}

// payloadOf returns the payload of an envelope and its offset in raw.
func payloadOf(t fataler, raw []byte) ([]byte, int) {
	t.Helper()
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(raw); err != nil {
		t.Fatalf("decode envelope: %v", err)
	}
	at := bytes.Index(raw, msg.Payload)
	if at < 0 {
		t.Fatalf("payload not found in envelope")
	}
	return msg.Payload, at
}

// reorderMap re-encodes a canonical CBOR map with its top-level pairs in
// reverse order (not deterministic, same meaning). With indefinite set it
// instead keeps the order and uses an indefinite-length map header.
func reorderMap(t fataler, canonical []byte, indefinite bool) []byte {
	t.Helper()
	var m map[uint64]cbor.RawMessage
	if err := cbor.Unmarshal(canonical, &m); err != nil {
		t.Fatalf("decode map: %v", err)
	}
	if len(m) < 2 || len(m) > 23 {
		t.Fatalf("reorderMap needs 2 to 23 pairs, got %d", len(m))
	}
	keys := make([]uint64, 0, len(m))
	for k := range m {
		if k > 23 {
			// One-byte keys keep the encoding below simple; every key of
			// Declaration is below 24.
			t.Fatalf("key %d does not fit one byte", k)
		}
		keys = append(keys, k)
	}
	// Bytewise order of one-byte keys is numeric order.
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	var out []byte
	if indefinite {
		out = append(out, 0xbf)
	} else {
		out = append(out, 0xa0|byte(len(m)))
		for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
			keys[i], keys[j] = keys[j], keys[i]
		}
	}
	for _, k := range keys {
		out = append(out, byte(k))
		out = append(out, m[k]...)
	}
	if indefinite {
		out = append(out, 0xff)
	}
	return out
}

// globRegexp is the naive model of Match: the glob translated to a regexp.
func globRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`)$`)
	return regexp.MustCompile(b.String())
}

func ids(list ...authority.ID) []authority.ID {
	if list == nil {
		return []authority.ID{}
	}
	return list
}

func fmtIDs(list []authority.ID) string {
	s := make([]string, len(list))
	for i, id := range list {
		s[i] = id.Short()
	}
	return fmt.Sprintf("[%s]", strings.Join(s, " "))
}
