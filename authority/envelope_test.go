package authority_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/fednode/fednode/authority"
)

// TestResignIsFaithful: the hand-made envelopes of the other tests differ from
// Sign's only where a test changes them.
func TestResignIsFaithful(t *testing.T) {
	w := newWorld(t)
	c := w.etlCredential(t)
	payload, _ := payloadOf(t, c.Raw)
	if got := resign(t, payload, seedAWS, nil, nil, nil); !bytes.Equal(got, c.Raw) {
		t.Fatalf("resign of a canonical payload differs from Sign:\n%x\n%x", got, c.Raw)
	}
}

func TestParseRefusesNonCanonical(t *testing.T) {
	w := newWorld(t)
	c := w.etlCredential(t)
	payload, _ := payloadOf(t, c.Raw)
	kid := w.aws.key.Public().KeyID()
	// A protected header {4: kid, 1: -8}: right content, wrong key order.
	reversedProt, err := cbor.Marshal(append(append([]byte{0xa2, 0x04, 0x50}, kid...), 0x01, 0x27))
	if err != nil {
		t.Fatal(err)
	}
	// Kind 3 written with a one-byte argument (0x18 0x03) instead of inline.
	longKind := bytes.Replace(payload, []byte{0x01, 0x03}, []byte{0x01, 0x18, 0x03}, 1)
	if bytes.Equal(longKind, payload) {
		t.Fatal("payload does not start with kind 3")
	}
	tests := []struct {
		name string
		raw  []byte
	}{
		{name: "payload map in reverse key order", raw: resign(t, reorderMap(t, payload, false), seedAWS, nil, nil, nil)},
		{name: "payload map of indefinite length", raw: resign(t, reorderMap(t, payload, true), seedAWS, nil, nil, nil)},
		{name: "payload integer not in shortest form", raw: resign(t, longKind, seedAWS, nil, nil, nil)},
		{name: "payload with trailing byte", raw: resign(t, append(clone(payload), 0x00), seedAWS, nil, nil, nil)},
		{name: "payload with an unknown field", raw: resign(t, withField(t, payload, 6, "x"), seedAWS, nil, nil, nil)},
		{name: "unprotected header added", raw: resign(t, payload, seedAWS, nil, map[any]any{cose.HeaderLabelContentType: "application/cbor"}, nil)},
		{name: "kid in the unprotected header too", raw: resign(t, payload, seedAWS, nil, map[any]any{cose.HeaderLabelKeyID: kid}, nil)},
		{name: "extra protected header", raw: resign(t, payload, seedAWS, map[any]any{cose.HeaderLabelContentType: "application/cbor"}, nil, nil)},
		{name: "protected header keys out of order", raw: resign(t, payload, seedAWS, nil, nil, reversedProt)},
		{name: "untagged COSE_Sign1", raw: c.Raw[1:]},
		{name: "over MaxDeclarationSize", raw: append(clone(c.Raw), make([]byte, authority.MaxDeclarationSize)...)},
		{name: "exactly one byte over MaxDeclarationSize", raw: make([]byte, authority.MaxDeclarationSize+1)},
		{name: "empty", raw: nil},
		{name: "kid too short", raw: resign(t, payload, seedAWS, map[any]any{cose.HeaderLabelKeyID: kid[:8]}, nil, nil)},
		{name: "another algorithm", raw: unsigned(t, cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmES256, cose.HeaderLabelKeyID: kid}, payload)},
		{name: "no algorithm", raw: unsigned(t, cose.ProtectedHeader{cose.HeaderLabelKeyID: kid}, payload)},
		{name: "no kid", raw: unsigned(t, cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA}, payload)},
		{name: "kid of the wrong type", raw: unsignedRaw(t, mustCBOR(t, mustCBOR(t, map[int]any{1: -8, 4: "abcdefghijklmnop"})), payload)},
		{name: "a credential with an empty window, properly signed", raw: resign(t, credentialPayload(t, w.aws.id(), etlSubject, now, now), seedAWS, nil, nil, nil)},
		{name: "a credential with seq, properly signed", raw: resign(t, declPayload(t, authority.Declaration{Kind: authority.KindCredential, Authority: w.aws.id(), Seq: 1, Prev: w.aws.id(), Credential: &authority.Credential{Subject: "x"}}), seedAWS, nil, nil, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := authority.Parse(tt.raw)
			t.Logf("%v", err)
			if !errors.Is(err, authority.ErrMalformed) || s != nil {
				t.Fatalf("Parse = %v, %v; want ErrMalformed", s, err)
			}
			if !strings.HasPrefix(err.Error(), "authority: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if len(tt.raw) > 64 && strings.Contains(err.Error(), string(tt.raw[len(tt.raw)-64:])) {
				t.Errorf("error quotes the input bytes")
			}
			d := authority.Verify(w.g, w.request(tt.raw), authority.WithTime(now))
			if d.Reason != authority.ReasonMalformed {
				t.Errorf("Verify reason %q (%s), want malformed", d.Reason, d.Message)
			}
		})
	}
}

// unsigned encodes an envelope with the given protected header and a
// signature of 64 zero bytes: for headers go-cose would refuse to sign.
func unsigned(t fataler, prot cose.ProtectedHeader, payload []byte) []byte {
	t.Helper()
	return encodeUnsigned(t, cose.Headers{Protected: prot, Unprotected: cose.UnprotectedHeader{}}, payload)
}

// unsignedRaw is unsigned with an encoded (bstr-wrapped) protected header.
func unsignedRaw(t fataler, prot []byte, payload []byte) []byte {
	t.Helper()
	return encodeUnsigned(t, cose.Headers{RawProtected: prot, Unprotected: cose.UnprotectedHeader{}}, payload)
}

func encodeUnsigned(t fataler, h cose.Headers, payload []byte) []byte {
	t.Helper()
	msg := cose.Sign1Message{Headers: h, Payload: payload, Signature: make([]byte, 64)}
	raw, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatalf("cose encode: %v", err)
	}
	return raw
}

// withField adds key k with text value v to a canonical CBOR map with fewer
// than 23 pairs, keeping it canonical (k must sort after every key in it).
func withField(t fataler, m []byte, k byte, v string) []byte {
	t.Helper()
	var raw map[uint64]cbor.RawMessage
	if err := cbor.Unmarshal(m, &raw); err != nil {
		t.Fatalf("%v", err)
	}
	raw[uint64(k)] = mustCBOR(t, v)
	return mustCBOR(t, raw)
}

func mustCBOR(t fataler, v any) []byte {
	t.Helper()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatalf("%v", err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// declPayload encodes d the way Sign does (Core Deterministic), without
// validating it: how the tests sign declarations Sign would refuse.
func declPayload(t fataler, d authority.Declaration) []byte { return mustCBOR(t, &d) }

func credentialPayload(t fataler, issuer authority.ID, subject string, nbf, naf time.Time) []byte {
	return declPayload(t, credentialDecl(issuer, subject, nbf, naf))
}

func TestSignParseRoundTrip(t *testing.T) {
	w := newWorld(t)
	r := w.etlRule(t)
	rev := w.azure.revoke(t, r.ID)
	for _, s := range []*authority.Signed{w.aws.genesis, r, rev, w.etlCredential(t)} {
		t.Run(s.Decl.Kind.String(), func(t *testing.T) {
			p, err := authority.Parse(clone(s.Raw))
			if err != nil {
				t.Fatal(err)
			}
			if p.ID != s.ID || p.ID != authority.IDOf(s.Raw) || !bytes.Equal(p.Raw, s.Raw) {
				t.Errorf("ID %s, want %s", p.ID.Short(), s.ID.Short())
			}
			if !reflect.DeepEqual(p.Decl, s.Decl) || p.Alg != authority.AlgEd25519 || !bytes.Equal(p.KeyID, s.KeyID) {
				t.Errorf("parsed %+v, want %+v", p.Decl, s.Decl)
			}
			if p.Decl.Kind == authority.KindGenesis {
				if err := p.VerifyWith(p.Decl.Genesis.RootKeys); err != nil {
					t.Errorf("genesis self-signature: %v", err)
				}
			}
			if err := p.VerifyWith(nil); !errors.Is(err, authority.ErrBadSignature) {
				t.Errorf("VerifyWith(no keys) = %v, want ErrBadSignature", err)
			}
			if !bytes.Equal(s.KeyID, fixedKey(t, map[string]byte{"aws-prod": seedAWS, "azure-corp": seedAzure}[nameOf(w, s)]).Public().KeyID()) {
				t.Errorf("kid %x is not the signer's", s.KeyID)
			}
		})
	}
}

func nameOf(w *world, s *authority.Signed) string {
	if s.Decl.Kind == authority.KindGenesis {
		return s.Decl.Genesis.Name
	}
	if s.Decl.Authority == w.aws.id() {
		return "aws-prod"
	}
	return "azure-corp"
}

// TestParseDoesNotAliasInput: Signed is documented immutable with
// ID == IDOf(Raw); a caller that reuses its read buffer must not be able to
// break that.
func TestParseDoesNotAliasInput(t *testing.T) {
	w := newWorld(t)
	buf := clone(w.etlCredential(t).Raw)
	s, err := authority.Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0
	}
	if authority.IDOf(s.Raw) != s.ID {
		t.Fatal("Parse retains the caller's buffer: overwriting it changed s.Raw, so ID != IDOf(Raw)")
	}
}

func TestSignDeterministic(t *testing.T) {
	w := newWorld(t)
	d := credentialDecl(w.aws.id(), etlSubject, now.Add(-time.Hour), now.Add(time.Hour))
	a := mustSign(t, d, fixedKey(t, seedAWS))
	b := mustSign(t, d, fixedKey(t, seedAWS))
	if a.ID != b.ID || !bytes.Equal(a.Raw, b.Raw) {
		t.Fatalf("same declaration and key give %s and %s", a.ID.Short(), b.ID.Short())
	}
	other := mustSign(t, d, fixedKey(t, seedAzure))
	if other.ID == a.ID {
		t.Fatal("another key gives the same ID")
	}
	d.IssuedAt++
	if mustSign(t, d, fixedKey(t, seedAWS)).ID == a.ID {
		t.Fatal("another declaration gives the same ID")
	}
	// Sign does not depend on the order fields were set in, nor on nil
	// versus empty optional fields.
	d2 := authority.Declaration{Credential: &authority.Credential{NotAfter: unix(now.Add(time.Hour)), NotBefore: unix(now.Add(-time.Hour)), Subject: etlSubject}, IssuedAt: unix(now.Add(-2 * time.Hour)), Authority: w.aws.id(), Kind: authority.KindCredential}
	if mustSign(t, d2, fixedKey(t, seedAWS)).ID != a.ID {
		t.Fatal("equal declarations give different IDs")
	}
}

func TestSignRefusesInvalid(t *testing.T) {
	w := newWorld(t)
	src := w.aws.id()
	okRule := func() *authority.Rule {
		return &authority.Rule{Source: src, Subjects: "*", Resources: "*", Actions: []string{"read"}}
	}
	chained := func(d authority.Declaration) authority.Declaration {
		d.Authority, d.Seq, d.Prev = w.azure.id(), 1, w.azure.id()
		return d
	}
	key := w.aws.key.Public()
	tests := []struct {
		name string
		d    authority.Declaration
	}{
		{name: "no body", d: authority.Declaration{Kind: authority.KindRule, Authority: src, Seq: 1, Prev: src}},
		{name: "two bodies", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: okRule(), Credential: &authority.Credential{Subject: "x"}})},
		{name: "kind does not match body", d: chained(authority.Declaration{Kind: authority.KindRevocation, Rule: okRule()})},
		{name: "unknown kind", d: chained(authority.Declaration{Kind: 9, Rule: okRule()})},
		{name: "negative issued-at", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: okRule(), IssuedAt: -1})},
		{name: "genesis with seq", d: authority.Declaration{Kind: authority.KindGenesis, Seq: 1, Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{key}, Threshold: 1}}},
		{name: "genesis with authority", d: authority.Declaration{Kind: authority.KindGenesis, Authority: src, Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{key}, Threshold: 1}}},
		{name: "genesis without keys", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: "x", Threshold: 1}}},
		{name: "genesis with a key listed twice", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{key, key}, Threshold: 1}}},
		{name: "genesis with a short key", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{{Alg: authority.AlgEd25519, Key: key.Key[:31]}}, Threshold: 1}}},
		{name: "genesis with an unknown algorithm", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{{Alg: 7, Key: key.Key}}, Threshold: 1}}},
		{name: "genesis with threshold 3 of 2 keys", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{key, fixedKey(t, seedAzure).Public()}, Threshold: 3}}},
		{name: "genesis with threshold 0", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{key}}}},
		{name: "genesis with a space in its name", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: "aws prod", RootKeys: []authority.PublicKey{key}, Threshold: 1}}},
		{name: "genesis with a long name", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: strings.Repeat("a", authority.MaxNameLen+1), RootKeys: []authority.PublicKey{key}, Threshold: 1}}},
		{name: "rule without seq", d: authority.Declaration{Kind: authority.KindRule, Authority: src, Prev: src, Rule: okRule()}},
		{name: "rule without prev", d: authority.Declaration{Kind: authority.KindRule, Authority: src, Seq: 1, Rule: okRule()}},
		{name: "rule without authority", d: authority.Declaration{Kind: authority.KindRule, Seq: 1, Prev: src, Rule: okRule()}},
		{name: "rule without source", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Subjects: "*", Resources: "*", Actions: []string{"read"}}})},
		{name: "rule with empty subjects", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Resources: "*", Actions: []string{"read"}}})},
		{name: "rule with a long pattern", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Subjects: "*", Resources: strings.Repeat("*", authority.MaxPatternLen+1), Actions: []string{"read"}}})},
		{name: "rule with invalid UTF-8", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Subjects: "\xff", Resources: "*", Actions: []string{"read"}}})},
		{name: "rule without actions", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Subjects: "*", Resources: "*"}})},
		{name: "rule with too many actions", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Subjects: "*", Resources: "*", Actions: strings.Split(strings.Repeat("a,", authority.MaxActions)+"a", ",")}})},
		{name: "rule with an action with a comma", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Subjects: "*", Resources: "*", Actions: []string{"read,write"}}})},
		{name: "rule with an empty action", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Subjects: "*", Resources: "*", Actions: []string{""}}})},
		{name: "rule with an empty window", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Subjects: "*", Resources: "*", Actions: []string{"read"}, NotBefore: 10, NotAfter: 10}})},
		{name: "rule with a negative time", d: chained(authority.Declaration{Kind: authority.KindRule, Rule: &authority.Rule{Source: src, Subjects: "*", Resources: "*", Actions: []string{"read"}, NotBefore: -5}})},
		{name: "revocation of the zero id", d: chained(authority.Declaration{Kind: authority.KindRevocation, Revocation: &authority.Revocation{}})},
		{name: "revocation with a long reason", d: chained(authority.Declaration{Kind: authority.KindRevocation, Revocation: &authority.Revocation{Target: src, Reason: strings.Repeat("r", authority.MaxReasonLen+1)}})},
		{name: "credential without issuer", d: authority.Declaration{Kind: authority.KindCredential, Credential: &authority.Credential{Subject: "x"}}},
		{name: "credential with seq", d: authority.Declaration{Kind: authority.KindCredential, Authority: src, Seq: 1, Credential: &authority.Credential{Subject: "x"}}},
		{name: "credential with prev", d: authority.Declaration{Kind: authority.KindCredential, Authority: src, Prev: src, Credential: &authority.Credential{Subject: "x"}}},
		{name: "credential with empty subject", d: authority.Declaration{Kind: authority.KindCredential, Authority: src, Credential: &authority.Credential{}}},
		{name: "credential with a backwards window", d: authority.Declaration{Kind: authority.KindCredential, Authority: src, Credential: &authority.Credential{Subject: "x", NotBefore: 20, NotAfter: 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := authority.Sign(tt.d, w.aws.key)
			t.Logf("%v", err)
			if err == nil || s != nil {
				t.Fatalf("Sign accepted it: %s", s.ID.Short())
			}
			if !strings.HasPrefix(err.Error(), "authority: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			// The same declaration signed by hand is refused by Parse.
			raw := resign(t, declPayload(t, tt.d), seedAWS, nil, nil, nil)
			if _, err := authority.Parse(raw); !errors.Is(err, authority.ErrMalformed) {
				t.Errorf("Parse of it signed by hand = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestSealed(t *testing.T) {
	k := fixedKey(t, seedAWS)
	payload := []byte("bundle v1: opaque bytes")
	raw, err := authority.Seal(payload, k)
	if err != nil {
		t.Fatal(err)
	}
	again, err := authority.Seal(payload, k)
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("Seal is not deterministic: %v", err)
	}
	s, err := authority.ParseSealed(clone(raw), len(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Payload, payload) || !bytes.Equal(s.Raw, raw) || s.Alg != authority.AlgEd25519 || !bytes.Equal(s.KeyID, k.Public().KeyID()) {
		t.Errorf("parsed %+v", s)
	}
	if err := s.VerifyWith([]authority.PublicKey{fixedKey(t, seedAzure).Public(), k.Public()}); err != nil {
		t.Errorf("VerifyWith = %v", err)
	}
	if err := s.VerifyWith([]authority.PublicKey{fixedKey(t, seedAzure).Public()}); !errors.Is(err, authority.ErrBadSignature) {
		t.Errorf("VerifyWith(other key) = %v, want ErrBadSignature", err)
	}
	tests := []struct {
		name string
		raw  []byte
		max  int
	}{
		{name: "over the caller's limit", raw: raw, max: len(raw) - 1},
		{name: "truncated", raw: raw[:len(raw)-1], max: len(raw)},
		{name: "unprotected header", raw: resign(t, payload, seedAWS, nil, map[any]any{cose.HeaderLabelContentType: "text/plain"}, nil), max: 1 << 10},
		{name: "empty", raw: nil, max: 1 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := authority.ParseSealed(tt.raw, tt.max); !errors.Is(err, authority.ErrMalformed) {
				t.Fatalf("ParseSealed = %v, want ErrMalformed", err)
			}
		})
	}
	flipped := clone(raw)
	flipped[len(flipped)-1] ^= 1
	fs, err := authority.ParseSealed(flipped, len(flipped))
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.VerifyWith([]authority.PublicKey{k.Public()}); !errors.Is(err, authority.ErrBadSignature) {
		t.Errorf("VerifyWith(flipped signature) = %v, want ErrBadSignature", err)
	}
	// A sealed blob around a declaration is still not something Verify or
	// Graph accept as a bare seal: Parse sees its payload as a declaration
	// only if it is one.
	if _, err := authority.Parse(raw); !errors.Is(err, authority.ErrMalformed) {
		t.Errorf("Parse(sealed non-declaration) = %v, want ErrMalformed", err)
	}
}

func TestCredentialSerial(t *testing.T) {
	k := fixedKey(t, 1)
	issuer := authority.ID{1}
	mk := func(serial []byte) authority.Declaration {
		return authority.Declaration{Kind: authority.KindCredential, Authority: issuer,
			Credential: &authority.Credential{Subject: "role/etl", NotAfter: now.Unix(), Serial: serial}}
	}
	a, err := authority.Sign(mk([]byte("serial-a")), k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := authority.Sign(mk([]byte("serial-b")), k)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID {
		t.Fatal("two credentials that differ only by serial share an ID")
	}
	if _, err := authority.Sign(mk(make([]byte, authority.MaxSerialLen+1)), k); err == nil {
		t.Fatal("a serial over MaxSerialLen was signed")
	}
}
