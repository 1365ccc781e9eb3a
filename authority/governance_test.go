package authority_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veraison/go-cose"

	"github.com/fednode/fednode/authority"
)

func TestSignMultiEnvelope(t *testing.T) {
	w := newGovWorld(t)
	d := credentialDecl(w.root.id(), etlSubject, now.Add(-time.Hour), now.Add(time.Hour))

	one := mustSignMulti(t, d, seedR1)
	if single := mustSign(t, d, fixedKey(t, seedR1)); !bytes.Equal(one.Raw, single.Raw) {
		t.Fatal("SignMulti with one key differs from Sign: single-signature IDs would change")
	}
	if one.Raw[0] != 0xd2 || len(one.Signatures) != 1 {
		t.Fatalf("one signer gives tag %#x with %d signatures, want a COSE_Sign1", one.Raw[0], len(one.Signatures))
	}

	two := mustSignMulti(t, d, seedR2, seedR1, seedR2)
	if !bytes.HasPrefix(two.Raw, []byte{0xd8, 0x62}) {
		t.Fatalf("two signers give %x..., want a COSE_Sign (tag 98)", two.Raw[:3])
	}
	if again := mustSignMulti(t, d, seedR1, seedR2); !bytes.Equal(again.Raw, two.Raw) {
		t.Fatal("the order keys are given in, or a repeat, changes the envelope")
	}
	if len(two.Signatures) != 2 || bytes.Compare(two.Signatures[0].KeyID, two.Signatures[1].KeyID) >= 0 {
		t.Fatalf("signatures %+v: want 2 in ascending kid order", two.Signatures)
	}
	if two.Alg != authority.AlgEd25519 || !bytes.Equal(two.KeyID, two.Signatures[0].KeyID) {
		t.Errorf("Alg/KeyID %v %x are not the first signature's", two.Alg, two.KeyID)
	}
	if got := multiEnvelope(t, multiPayload(t, two.Raw), nil, sortedBySeed(t, seedR1, seedR2)...); !bytes.Equal(got, two.Raw) {
		t.Fatal("the hand-made COSE_Sign of the other tests differs from SignMulti's")
	}
	p := mustParse(t, clone(two.Raw))
	if p.ID != two.ID || !slices.EqualFunc(p.Signatures, two.Signatures, func(a, b authority.Signature) bool { return a.Alg == b.Alg && bytes.Equal(a.KeyID, b.KeyID) }) {
		t.Fatal("Parse does not give back what SignMulti made")
	}

	keys := pubsOf(t, seedR1, seedR2, seedR3)
	if err := two.VerifyWith(keys); err != nil {
		t.Errorf("VerifyWith(root keys) = %v", err)
	}
	if err := two.VerifyWith(pubsOf(t, seedR1)); !errors.Is(err, authority.ErrBadSignature) {
		t.Errorf("VerifyWith(R1 only) = %v, want ErrBadSignature: every signature must name a known key", err)
	}
	if err := two.VerifyThreshold(keys, 2); err != nil {
		t.Errorf("VerifyThreshold(2) = %v", err)
	}
	if err := two.VerifyThreshold(keys, 3); !errors.Is(err, authority.ErrThresholdNotMet) {
		t.Errorf("VerifyThreshold(3) = %v, want ErrThresholdNotMet", err)
	}

	if _, err := authority.SignMulti(d); err == nil {
		t.Error("SignMulti with no key signed")
	}
	var many []*authority.PrivateKey
	for i := range authority.MaxSignatures + 1 {
		many = append(many, fixedKey(t, byte(100+i)))
	}
	if _, err := authority.SignMulti(d, many...); err == nil || !strings.HasPrefix(err.Error(), "authority: ") {
		t.Errorf("SignMulti with %d keys = %v, want a refusal", len(many), err)
	}
	if _, err := authority.SignMulti(d, many[:authority.MaxSignatures]...); err != nil {
		t.Errorf("SignMulti with MaxSignatures keys: %v", err)
	}
}

func TestParseRefusesNonCanonicalMulti(t *testing.T) {
	w := newGovWorld(t)
	d := credentialDecl(w.root.id(), etlSubject, now.Add(-time.Hour), now.Add(time.Hour))
	good := mustSignMulti(t, d, seedR1, seedR2)
	payload := multiPayload(t, good.Raw)
	sorted := sortedBySeed(t, seedR1, seedR2)
	reversed := []sigEntry{sorted[1], sorted[0]}
	var over []sigEntry
	var overSeeds []byte
	for i := range authority.MaxSignatures + 1 {
		overSeeds = append(overSeeds, byte(100+i))
	}
	over = sortedBySeed(t, overSeeds...)
	tests := []struct {
		name string
		raw  []byte
	}{
		{name: "duplicate signature by one key", raw: multiEnvelope(t, payload, nil, sigEntry{seed: seedR1}, sigEntry{seed: seedR1})},
		{name: "signatures out of kid order", raw: multiEnvelope(t, payload, nil, reversed...)},
		{name: "COSE_Sign with one signature", raw: multiEnvelope(t, payload, nil, sigEntry{seed: seedR1})},
		{name: "more than MaxSignatures signatures", raw: multiEnvelope(t, payload, nil, over...)},
		{name: "body protected header not empty", raw: multiEnvelope(t, payload, cose.ProtectedHeader{cose.HeaderLabelContentType: "application/cbor"}, sorted...)},
		{name: "signature with an unprotected header", raw: multiEnvelope(t, payload, nil, sorted[0], sigEntry{seed: sorted[1].seed, unprot: cose.UnprotectedHeader{cose.HeaderLabelContentType: "text/plain"}})},
		{name: "signature with a short kid", raw: multiEnvelope(t, payload, nil, sorted[0], sigEntry{seed: sorted[1].seed, kid: bytes.Repeat([]byte{0xff}, 8)})},
		{name: "signature claiming an unsupported algorithm", raw: multiEnvelope(t, payload, nil, sorted[0], sigEntry{seed: sorted[1].seed, claim: cose.AlgorithmES256})},
		{name: "payload not canonical, properly signed", raw: multiEnvelope(t, reorderMap(t, payload, false), nil, sorted...)},
		{name: "untagged COSE_Sign", raw: good.Raw[2:]},
		{name: "trailing byte", raw: append(clone(good.Raw), 0x00)},
		{name: "truncated", raw: good.Raw[:len(good.Raw)-1]},
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
		})
	}
}

// checkCase is one declaration judged by Graph.Check and Apply.
type checkCase[W any] struct {
	name  string
	build func(t *testing.T, w W) *authority.Signed
	want  error // nil: accepted
}

// runCheckCases judges each case's declaration on a fresh world: Check and
// Apply agree, a refusal changes nothing but evidence, and every error has
// the package prefix.
func runCheckCases[W any](t *testing.T, mk func(t *testing.T) (W, *authority.Graph), tests []checkCase[W]) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, g := mk(t)
			s := tt.build(t, w)
			before := stateOf(g)
			err := g.Check(s)
			t.Logf("Check: %v", err)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			if !stateOf(g).equal(before) {
				t.Fatal("Check changed the graph")
			}
			if err := g.Apply(s); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Apply = %v, want %v", err, tt.want)
			}
			if err == nil {
				if !g.Has(s.ID) {
					t.Errorf("accepted %s is not in the graph", s.ID.Short())
				}
				return
			}
			if !strings.HasPrefix(err.Error(), "authority: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if !stateOf(g).equal(before) {
				t.Fatal("a refused Apply changed the graph")
			}
		})
	}
}

func TestThresholdCheck(t *testing.T) {
	mk := func(t *testing.T) (*govWorld, *authority.Graph) { w := newGovWorld(t); return w, w.g }
	src := func(w *govWorld) authority.ID { return w.target.id() }
	tests := []checkCase[*govWorld]{
		{name: "genesis 2 of 3, signed by 2", build: func(t *testing.T, w *govWorld) *authority.Signed {
			return newGov(t, "other", 2, []byte{seedR1, seedR2, seedR3}, seedR2, seedR3).genesis
		}},
		{name: "genesis 3 of 3, signed by 3", build: func(t *testing.T, w *govWorld) *authority.Signed {
			return newGov(t, "other", 3, []byte{seedR1, seedR2, seedR3}, seedR1, seedR2, seedR3).genesis
		}},
		{name: "genesis 2 of 3, signed by 1", want: authority.ErrThresholdNotMet, build: func(t *testing.T, w *govWorld) *authority.Signed {
			return newGov(t, "other", 2, []byte{seedR1, seedR2, seedR3}, seedR1).genesis
		}},
		{name: "genesis signed by 2 roots and a stranger", want: authority.ErrBadSignature, build: func(t *testing.T, w *govWorld) *authority.Signed {
			return newGov(t, "other", 2, []byte{seedR1, seedR2, seedR3}, seedR1, seedR2, seedStranger).genesis
		}},
		{name: "rule by 2 of 3", build: func(t *testing.T, w *govWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR1, seedR3)
		}},
		{name: "rule by 3 of 3", build: func(t *testing.T, w *govWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR1, seedR2, seedR3)
		}},
		{name: "k-1 of k root signatures", want: authority.ErrThresholdNotMet, build: func(t *testing.T, w *govWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR2)
		}},
		{name: "duplicate signature counted once", want: authority.ErrThresholdNotMet, build: func(t *testing.T, w *govWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR2, seedR2)
		}},
		{name: "one root and a stranger", want: authority.ErrBadSignature, build: func(t *testing.T, w *govWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR1, seedStranger)
		}},
		{name: "two strangers", want: authority.ErrBadSignature, build: func(t *testing.T, w *govWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedStranger, seedImpostor)
		}},
		{name: "second signature flipped", want: authority.ErrBadSignature, build: func(t *testing.T, w *govWorld) *authority.Signed {
			s := w.root.rule(t, src(w), "*", seedR1, seedR2)
			raw := clone(s.Raw)
			raw[len(raw)-1] ^= 1
			return mustParse(t, raw)
		}},
		{name: "algorithm substitution in a COSE_Sign signature header", want: authority.ErrBadSignature, build: func(t *testing.T, w *govWorld) *authority.Signed {
			return mustParse(t, algSubstituted(t, w.root.rule(t, src(w), "*", seedR1, seedR2)))
		}},
	}
	runCheckCases(t, mk, tests)
}

// algSubstituted re-signs s's payload as a COSE_Sign in which the second
// signature's header claims ML-DSA-65 for an Ed25519 key (and is made with
// that Ed25519 key over the header that says so).
func algSubstituted(t fataler, s *authority.Signed) []byte {
	t.Helper()
	var payload []byte
	if s.Raw[0] == 0xd2 {
		payload, _ = payloadOf(t, s.Raw)
	} else {
		payload = multiPayload(t, s.Raw)
	}
	var seeds []byte
	for _, sig := range s.Signatures {
		for _, seed := range []byte{seedR1, seedR2, seedR3, seedR4, seedR5} {
			if bytes.Equal(fixedKey(t, seed).Public().KeyID(), sig.KeyID) {
				seeds = append(seeds, seed)
			}
		}
	}
	entries := sortedBySeed(t, seeds...)
	entries[len(entries)-1].claim = cose.Algorithm(-49) // ML-DSA-65
	return multiEnvelope(t, payload, nil, entries...)
}

// rotatedWorld is govWorld after gov-root rotated, at seq 1, from 2 of
// R1 R2 R3 to 2 of R3 R4 R5 (R3 kept), signed by R1 and R2.
type rotatedWorld struct {
	*govWorld
	rotation *authority.Signed
}

func newRotatedWorld(t *testing.T) (*rotatedWorld, *authority.Graph) {
	w := &rotatedWorld{govWorld: newGovWorld(t)}
	w.rotation = w.apply(t, w.root.rotate(t, 2, []byte{seedR3, seedR4, seedR5}, seedR1, seedR2))
	return w, w.g
}

func TestRotation(t *testing.T) {
	src := func(w *rotatedWorld) authority.ID { return w.target.id() }
	tests := []checkCase[*rotatedWorld]{
		{name: "new threshold signs", build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR4, seedR5)
		}},
		{name: "kept key with a new one", build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR3, seedR4)
		}},
		{name: "rotated-out keys sign after the rotation", want: authority.ErrKeyRotated, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR1, seedR2)
		}},
		{name: "new threshold plus a rotated-out key", want: authority.ErrKeyRotated, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR1, seedR4, seedR5)
		}},
		{name: "new keys below threshold", want: authority.ErrThresholdNotMet, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedR4)
		}},
		{name: "rollback: rotation back to the old set by one old key", want: authority.ErrKeyRotated, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rotate(t, 1, []byte{seedR1, seedR2, seedR3}, seedR1)
		}},
		{name: "rollback: rotation back to the old set by the old threshold", want: authority.ErrKeyRotated, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rotate(t, 2, []byte{seedR1, seedR2, seedR3}, seedR1, seedR2)
		}},
		{name: "rotation by k-1 of the current set", want: authority.ErrThresholdNotMet, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rotate(t, 1, []byte{seedR4}, seedR5)
		}},
		{name: "rotation back by the current threshold", build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rotate(t, 2, []byte{seedR1, seedR2, seedR3}, seedR4, seedR5)
		}},
		{name: "fork attempt: one old key re-signs the rotation's position", want: authority.ErrThresholdNotMet, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			w.root.forkAt(1)
			return w.root.rotate(t, 1, []byte{seedR1}, seedR1)
		}},
		{name: "fork attempt: one old key signs at the head's next position", want: authority.ErrKeyRotated, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.rotate(t, 1, []byte{seedR1}, seedR1)
		}},
		{name: "an operational key signs a rotation", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			w.apply(t, w.root.delegate(t, seedOp1, everyKinds, dayAgo, weekAhead, seedR4, seedR5))
			return w.root.rotate(t, 1, []byte{seedR4}, seedOp1)
		}},
		{name: "rotation to a key once delegated", want: authority.ErrKeyReuse, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			w.apply(t, w.root.delegate(t, seedOp1, credKinds, dayAgo, weekAhead, seedR4, seedR5))
			return w.root.rotate(t, 2, []byte{seedR4, seedR5, seedOp1}, seedR4, seedR5)
		}},
		{name: "delegation of a rotated-out root key", want: authority.ErrKeyReuse, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.delegate(t, seedR1, credKinds, dayAgo, weekAhead, seedR4, seedR5)
		}},
		{name: "delegation of a current root key", want: authority.ErrKeyReuse, build: func(t *testing.T, w *rotatedWorld) *authority.Signed {
			return w.root.delegate(t, seedR4, credKinds, dayAgo, weekAhead, seedR4, seedR5)
		}},
	}
	runCheckCases(t, newRotatedWorld, tests)

	t.Run("state", func(t *testing.T) {
		w, g := newRotatedWorld(t)
		a, _ := g.Authority(w.root.id())
		if a.Threshold != 2 || !slices.EqualFunc(a.RootKeys, pubsOf(t, seedR3, seedR4, seedR5), pkEqual) || len(a.Roots) != 2 {
			t.Fatalf("after rotation: threshold %d, %d root keys, %d root sets", a.Threshold, len(a.RootKeys), len(a.Roots))
		}
		if r := a.Roots[1]; r.Since != 1 || r.ID != w.rotation.ID || r.IssuedAt != w.rotation.Decl.IssuedAt || a.Roots[0].ID != w.root.id() {
			t.Errorf("root sets %+v", a.Roots)
		}
		// What was signed before the rotation keeps verifying at its position.
		if err := g.VerifySignature(w.rotation); err != nil {
			t.Errorf("VerifySignature(rotation) after it took effect = %v", err)
		}
		if err := g.VerifySignature(w.root.genesis); err != nil {
			t.Errorf("VerifySignature(genesis) = %v", err)
		}
		next := w.root.rule(t, w.target.id(), "*", seedR1, seedR2)
		if err := authority.VerifySigners(g, next); !errors.Is(err, authority.ErrKeyRotated) {
			t.Errorf("VerifySigners(old keys after rotation) = %v, want ErrKeyRotated", err)
		}
	})

	t.Run("a fork by the old threshold is evidence, not a mark", func(t *testing.T) {
		w, g := newRotatedWorld(t)
		w.root.forkAt(1)
		fork := w.root.rotate(t, 2, []byte{seedR1, seedR2}, seedR1, seedR2)
		err := g.Apply(fork)
		var eq *authority.EquivocationError
		if !errors.As(err, &eq) || !errors.Is(err, authority.ErrConflict) {
			t.Fatalf("Apply(fork at the rotation's seq) = %v, want an EquivocationError", err)
		}
		a, _ := g.Authority(w.root.id())
		if a.Head != 1 || a.HeadID != w.rotation.ID || a.Threshold != 2 || !slices.EqualFunc(a.RootKeys, pubsOf(t, seedR3, seedR4, seedR5), pkEqual) {
			t.Fatal("the fork changed the chain")
		}
		if a.EquivocatedAt != 1 {
			t.Fatalf("EquivocatedAt = %d, want 1 (no rotation after the fork's seq yet)", a.EquivocatedAt)
		}
		// The current threshold rotates again: the mark goes, the fork's
		// keys still sign nothing.
		w.root.setHead(w.rotation)
		w.apply(t, w.root.rotate(t, 2, []byte{seedR3, seedR4, seedR5}, seedR4, seedR5))
		if a, _ := g.Authority(w.root.id()); a.EquivocatedAt != 0 {
			t.Fatalf("EquivocatedAt = %d after a later rotation, want 0", a.EquivocatedAt)
		}
		if ev := g.Equivocations(w.root.id()); len(ev) != 1 || ev[0].A.ID != w.rotation.ID || ev[0].B.ID != fork.ID {
			t.Fatalf("evidence %+v, want the held rotation and the fork", ev)
		}
		if err := g.Apply(w.root.rule(t, w.target.id(), "*", seedR1, seedR2)); !errors.Is(err, authority.ErrKeyRotated) {
			t.Fatalf("old threshold after recovery = %v, want ErrKeyRotated", err)
		}
	})
}

func pkEqual(a, b authority.PublicKey) bool { return a.Alg == b.Alg && bytes.Equal(a.Key, b.Key) }

// opWorld is govWorld where gov-root delegated, by R1 and R2: at seq 1 Op1
// for rules and revocations, at seq 2 Op2 for credentials, both for
// [a day ago, a week ahead).
type opWorld struct {
	*govWorld
	op1, op2 *authority.Signed
}

func newOpWorld(t *testing.T) (*opWorld, *authority.Graph) {
	w := &opWorld{govWorld: newGovWorld(t)}
	w.op1 = w.apply(t, w.root.delegate(t, seedOp1, ruleKinds, dayAgo, weekAhead, seedR1, seedR2))
	w.op2 = w.apply(t, w.root.delegate(t, seedOp2, credKinds, dayAgo, weekAhead, seedR1, seedR2))
	return w, w.g
}

func TestOperationalKeys(t *testing.T) {
	src := func(w *opWorld) authority.ID { return w.target.id() }
	at := func(ts time.Time) authority.Declaration {
		d := ruleDecl(authority.ID{1}, "*")
		d.IssuedAt = unix(ts)
		return d
	}
	tests := []checkCase[*opWorld]{
		{name: "op key signs a rule in scope", build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedOp1)
		}},
		{name: "op key signs a revocation in scope", build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.revoke(t, authority.ID{9}, seedOp1)
		}},
		{name: "op key out of scope", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedOp2)
		}},
		{name: "op key out of window: issued after it", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.next(t, at(weekAhead.Add(time.Hour)), seedOp1)
		}},
		{name: "op key out of window: issued before it", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.next(t, at(dayAgo.Add(-time.Hour)), seedOp1)
		}},
		{name: "op key backdates before the chain's latest", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			w.apply(t, w.root.rule(t, src(w), "*", seedOp1)) // issued an hour ago
			return w.root.next(t, at(now.Add(-90*time.Minute)), seedOp1)
		}},
		{name: "op key revoked", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			w.apply(t, w.root.revoke(t, w.op1.ID, seedR1, seedR3))
			return w.root.rule(t, src(w), "*", seedOp1)
		}},
		{name: "op key revokes its authority", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.revoke(t, w.root.id(), seedOp1)
		}},
		{name: "op key revokes a delegation", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.revoke(t, w.op2.ID, seedOp1)
		}},
		{name: "op key signs a delegation", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.delegate(t, seedOp3, everyKinds, dayAgo, weekAhead, seedOp1)
		}},
		{name: "op key with a root key in one COSE_Sign", want: authority.ErrBadSignature, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedOp1, seedR1)
		}},
		{name: "op key with the root threshold in one COSE_Sign", want: authority.ErrBadSignature, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedOp1, seedR1, seedR2)
		}},
		{name: "undelegated key", want: authority.ErrBadSignature, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.rule(t, src(w), "*", seedOp3)
		}},
		{name: "delegation by k-1 of k", want: authority.ErrThresholdNotMet, build: func(t *testing.T, w *opWorld) *authority.Signed {
			return w.root.delegate(t, seedOp3, everyKinds, dayAgo, weekAhead, seedR1)
		}},
		{name: "a later delegation widens the window", build: func(t *testing.T, w *opWorld) *authority.Signed {
			w.apply(t, w.root.delegate(t, seedOp1, ruleKinds, dayAgo, weekAhead.Add(7*24*time.Hour), seedR1, seedR2))
			return w.root.next(t, at(weekAhead.Add(time.Hour)), seedOp1)
		}},
		{name: "a later delegation narrows the scope", want: authority.ErrKeyNotAuthorised, build: func(t *testing.T, w *opWorld) *authority.Signed {
			w.apply(t, w.root.delegate(t, seedOp1, []authority.Kind{authority.KindRevocation}, dayAgo, weekAhead, seedR1, seedR2))
			return w.root.rule(t, src(w), "*", seedOp1)
		}},
		{name: "delegations survive a rotation", build: func(t *testing.T, w *opWorld) *authority.Signed {
			w.apply(t, w.root.rotate(t, 2, []byte{seedR3, seedR4, seedR5}, seedR1, seedR2))
			return w.root.rule(t, src(w), "*", seedOp1)
		}},
	}
	runCheckCases(t, newOpWorld, tests)

	t.Run("OperationalKey", func(t *testing.T) {
		w, g := newOpWorld(t)
		o, ok := g.OperationalKey(w.root.id(), fixedKey(t, seedOp1).Public().KeyID())
		if !ok || o.ID != w.op1.ID || o.Seq != 1 || o.Authority != w.root.id() || !o.Allows(authority.KindRule) || o.Allows(authority.KindCredential) || o.NotAfter != unix(weekAhead) {
			t.Fatalf("OperationalKey(op1) = %+v, %v", o, ok)
		}
		if _, ok := g.OperationalKey(w.target.id(), fixedKey(t, seedOp1).Public().KeyID()); ok {
			t.Error("op1 is an operational key of another authority")
		}
		if _, ok := g.OperationalKey(w.root.id(), []byte{1, 2}); ok {
			t.Error("a short kid found a key")
		}
	})
}

func TestGovernanceBodiesRefused(t *testing.T) {
	w := newGovWorld(t)
	chained := func(d authority.Declaration) authority.Declaration {
		d.Authority, d.Seq, d.Prev = w.root.id(), 1, w.root.id()
		return d
	}
	op := fixedKey(t, seedOp1).Public()
	deleg := func(kinds []authority.Kind, nbf, naf int64) authority.Declaration {
		return chained(authority.Declaration{Kind: authority.KindDelegation, Delegation: &authority.KeyDelegation{Key: op, Kinds: kinds, NotBefore: nbf, NotAfter: naf}})
	}
	rot := func(k uint8, keys ...authority.PublicKey) authority.Declaration {
		return chained(authority.Declaration{Kind: authority.KindRotation, Rotation: &authority.Rotation{RootKeys: keys, Threshold: k}})
	}
	r1, r2 := fixedKey(t, seedR1).Public(), fixedKey(t, seedR2).Public()
	hybrid := algKey(t, authority.AlgHybrid, 7).Public()
	edHalf := authority.PublicKey{Alg: authority.AlgEd25519, Key: hybrid.Key[len(hybrid.Key)-32:]}
	var tooMany []authority.PublicKey
	for i := range authority.MaxRootKeys + 1 {
		tooMany = append(tooMany, fixedKey(t, byte(100+i)).Public())
	}
	naf := unix(weekAhead)
	tests := []struct {
		name string
		d    authority.Declaration
	}{
		{name: "delegation with an empty scope", d: deleg(nil, 0, naf)},
		{name: "delegation of genesis", d: deleg([]authority.Kind{authority.KindGenesis}, 0, naf)},
		{name: "delegation of delegation", d: deleg([]authority.Kind{authority.KindCredential, authority.KindDelegation}, 0, naf)},
		{name: "delegation of rotation", d: deleg([]authority.Kind{authority.KindRotation}, 0, naf)},
		{name: "delegation scope out of order", d: deleg([]authority.Kind{authority.KindCredential, authority.KindRule}, 0, naf)},
		{name: "delegation scope with a kind twice", d: deleg([]authority.Kind{authority.KindRule, authority.KindRule}, 0, naf)},
		{name: "delegation without not-after", d: deleg(credKinds, unix(dayAgo), 0)},
		{name: "delegation with an empty window", d: deleg(credKinds, naf, naf)},
		{name: "delegation of a malformed key", d: chained(authority.Declaration{Kind: authority.KindDelegation, Delegation: &authority.KeyDelegation{Key: authority.PublicKey{Alg: authority.AlgEd25519, Key: op.Key[:31]}, Kinds: credKinds, NotAfter: naf}})},
		{name: "delegation without seq", d: authority.Declaration{Kind: authority.KindDelegation, Authority: w.root.id(), Delegation: &authority.KeyDelegation{Key: op, Kinds: credKinds, NotAfter: naf}}},
		{name: "rotation without keys", d: rot(1)},
		{name: "rotation with threshold 0", d: rot(0, r1)},
		{name: "rotation with threshold over its keys", d: rot(3, r1, r2)},
		{name: "rotation with a key twice", d: rot(1, r1, r1)},
		{name: "rotation with more than MaxRootKeys", d: rot(1, tooMany...)},
		{name: "rotation listing a hybrid key and its own Ed25519 half", d: rot(2, hybrid, edHalf)},
		{name: "genesis listing a hybrid key and its own Ed25519 half", d: authority.Declaration{Kind: authority.KindGenesis, Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{hybrid, edHalf}, Threshold: 2}}},
		{name: "rotation body in a rule", d: chained(authority.Declaration{Kind: authority.KindRule, Rotation: &authority.Rotation{RootKeys: []authority.PublicKey{r1}, Threshold: 1}})},
		{name: "delegation and rotation bodies together", d: chained(authority.Declaration{Kind: authority.KindRotation, Rotation: &authority.Rotation{RootKeys: []authority.PublicKey{r1}, Threshold: 1}, Delegation: &authority.KeyDelegation{Key: op, Kinds: credKinds, NotAfter: naf}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := authority.SignMulti(tt.d, fixedKey(t, seedR1), fixedKey(t, seedR2))
			t.Logf("%v", err)
			if err == nil || s != nil {
				t.Fatalf("SignMulti accepted it: %s", s.ID.Short())
			}
			raw := multiEnvelope(t, declPayload(t, tt.d), nil, sortedBySeed(t, seedR1, seedR2)...)
			if _, err := authority.Parse(raw); !errors.Is(err, authority.ErrMalformed) {
				t.Errorf("Parse of it signed by hand = %v, want ErrMalformed", err)
			}
		})
	}
}

// credWorld is gov-root with operational keys for every case of a
// credential's signers, then rotated from 2 of R1 R2 R3 to 2 of R3 R4 R5
// at seq 7, an hour before now (the rotation's IssuedAt).
type credWorld struct {
	*govWorld
	op1, op2, op3, expiredOp, revokedOp *authority.Signed
	rotation                            *authority.Signed
}

const (
	seedExpiredOp byte = 54
	seedRevokedOp byte = 55
)

func newCredWorld(t fataler) *credWorld {
	w := &credWorld{govWorld: newGovWorld(t)}
	r := []byte{seedR1, seedR2}
	w.op1 = w.apply(t, w.root.delegate(t, seedOp1, credKinds, dayAgo, weekAhead, r...))
	w.op2 = w.apply(t, w.root.delegate(t, seedOp2, ruleKinds, dayAgo, weekAhead, r...))
	w.op3 = w.apply(t, w.root.delegate(t, seedOp3, everyKinds, dayAhead, weekAhead, r...))
	w.expiredOp = w.apply(t, w.root.delegate(t, seedExpiredOp, credKinds, now.Add(-7*24*time.Hour), dayAgo, r...))
	w.revokedOp = w.apply(t, w.root.delegate(t, seedRevokedOp, credKinds, dayAgo, weekAhead, r...))
	w.apply(t, w.root.revoke(t, w.revokedOp.ID, r...))
	w.rotation = w.apply(t, w.root.rotate(t, 2, []byte{seedR3, seedR4, seedR5}, r...))
	return w
}

// revokingView is a View with one extra revocation, as node's overlay adds
// provisional ones gossiped before they are ordered.
type revokingView struct {
	authority.View
	target, issuer, by authority.ID
}

func (v revokingView) RevokedBy(target, issuer authority.ID) (authority.ID, bool) {
	if target == v.target && issuer == v.issuer {
		return v.by, true
	}
	return v.View.RevokedBy(target, issuer)
}

func TestCredentialSigners(t *testing.T) {
	hour := time.Hour
	rotatedAt := now.Add(-hour) // the rotation's IssuedAt
	tests := []struct {
		name string
		cred func(t *testing.T, w *credWorld) []byte
		view func(w *credWorld) authority.View // nil: the graph
		want authority.Reason
	}{
		{name: "root threshold", want: authority.ReasonOK, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR3, seedR4).Raw
		}},
		{name: "k-1 of k root signatures", want: authority.ReasonThresholdNotMet, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR4).Raw
		}},
		{name: "duplicate signature counted once", want: authority.ReasonThresholdNotMet, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR4, seedR4).Raw
		}},
		{name: "duplicate signature in a hand-made COSE_Sign", want: authority.ReasonMalformed, cred: func(t *testing.T, w *credWorld) []byte {
			p := credentialPayload(t, w.root.id(), etlSubject, now.Add(-hour), now.Add(hour))
			return multiEnvelope(t, p, nil, sigEntry{seed: seedR4}, sigEntry{seed: seedR4})
		}},
		{name: "rotated-out keys, window outlives the rotation", want: authority.ReasonKeyRotated, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR1, seedR2).Raw
		}},
		{name: "rotated-out keys, open window", want: authority.ReasonKeyRotated, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, time.Time{}, time.Time{}, seedR1, seedR2).Raw
		}},
		{name: "rotated-out keys, window closed by the rotation", want: authority.ReasonOK, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, dayAgo, rotatedAt, seedR1, seedR2).Raw
		}},
		{name: "rotated-out keys, window closed a second after the rotation", want: authority.ReasonKeyRotated, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, dayAgo, rotatedAt.Add(time.Second), seedR1, seedR2).Raw
		}},
		{name: "rotated-out key below the old threshold", want: authority.ReasonKeyRotated, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, dayAgo, rotatedAt, seedR1).Raw
		}},
		{name: "rotated-out key beside the new threshold", want: authority.ReasonKeyRotated, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR1, seedR4, seedR5).Raw
		}},
		{name: "op key in scope and window", want: authority.ReasonOK, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedOp1).Raw
		}},
		{name: "op key out of scope", want: authority.ReasonBadSignature, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedOp2).Raw
		}},
		{name: "op key not yet valid", want: authority.ReasonNotYetValid, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedOp3).Raw
		}},
		{name: "op key expired", want: authority.ReasonExpired, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedExpiredOp).Raw
		}},
		{name: "op key revoked", want: authority.ReasonRevoked, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedRevokedOp).Raw
		}},
		{name: "op key revoked provisionally", want: authority.ReasonRevoked,
			view: func(w *credWorld) authority.View {
				return revokingView{View: w.g, target: w.op1.ID, issuer: w.root.id(), by: authority.ID{7}}
			},
			cred: func(t *testing.T, w *credWorld) []byte {
				return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedOp1).Raw
			}},
		{name: "op key with a root key", want: authority.ReasonBadSignature, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedOp1, seedR3, seedR4).Raw
		}},
		{name: "stranger", want: authority.ReasonBadSignature, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedStranger).Raw
		}},
		{name: "stranger beside the threshold", want: authority.ReasonBadSignature, cred: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR3, seedR4, seedStranger).Raw
		}},
		{name: "algorithm substitution in a COSE_Sign signature header", want: authority.ReasonBadSignature, cred: func(t *testing.T, w *credWorld) []byte {
			return algSubstituted(t, w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR3, seedR4))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCredWorld(t)
			var v authority.View = w.g
			if tt.view != nil {
				v = tt.view(w)
			}
			r, msg := authority.JudgeCredentialSigners(v, tt.cred(t, w), now)
			if r == "" {
				r = authority.ReasonOK
			}
			t.Logf("%s: %s", r, msg)
			if r != tt.want {
				t.Fatalf("reason %q (%s), want %q", r, msg, tt.want)
			}
		})
	}
}

// forkWorld is govWorld where gov-target declared a second rule at seq 2,
// and a conflicting, validly signed rule at seq 2 was applied: gov-target is
// equivocating from seq 2.
type forkWorld struct {
	*govWorld
	rule2, fork2 *authority.Signed
}

func newForkWorld(t fataler) *forkWorld {
	w := &forkWorld{govWorld: newGovWorld(t)}
	w.rule2 = w.apply(t, w.target.rule(t, w.root.id(), "arn:aws:iam::111122223333:role/a-*", seedGovTarget))
	w.target.forkAt(2)
	w.fork2 = w.target.rule(t, w.root.id(), "arn:aws:iam::111122223333:role/b-*", seedGovTarget)
	w.target.setHead(w.rule2)
	return w
}

func TestEquivocation(t *testing.T) {
	w := newForkWorld(t)
	before := stateOf(w.g)
	err := w.g.Apply(w.fork2)
	var eq *authority.EquivocationError
	if !errors.As(err, &eq) || !errors.Is(err, authority.ErrConflict) || !errors.Is(err, authority.ErrEquivocation) {
		t.Fatalf("Apply(fork) = %v, want an EquivocationError (ErrConflict and ErrEquivocation)", err)
	}
	t.Logf("%v", err)
	if !strings.HasPrefix(err.Error(), "authority: ") || eq.Evidence.A.ID != w.rule2.ID || eq.Evidence.B.ID != w.fork2.ID {
		t.Fatalf("error %q with evidence %s/%s", err, eq.Evidence.A.ID.Short(), eq.Evidence.B.ID.Short())
	}
	if !stateOf(w.g).equal(before) || w.g.Has(w.fork2.ID) {
		t.Fatal("the fork entered the chain")
	}
	ev := w.g.Equivocations(w.target.id())
	if len(ev) != 1 || ev[0].A.ID != w.rule2.ID || ev[0].B.ID != w.fork2.ID {
		t.Fatalf("Equivocations = %+v, want [held rule2, fork2]", ev)
	}
	a, _ := w.g.Authority(w.target.id())
	if a.EquivocatedAt != 2 {
		t.Fatalf("EquivocatedAt = %d, want 2", a.EquivocatedAt)
	}
	rules := w.g.RulesFor(w.target.id())
	if authority.RuleEquivocated(w.g, rules[0]) || !authority.RuleEquivocated(w.g, rules[1]) {
		t.Fatal("want the rule before the fork trusted, the one at the fork not")
	}
	later := w.apply(t, w.target.rule(t, w.root.id(), "*", seedGovTarget))
	if rules := w.g.RulesFor(w.target.id()); !authority.RuleEquivocated(w.g, rules[2]) || rules[2].ID != later.ID {
		t.Fatal("a rule after the fork is trusted")
	}
	// Applying the fork again adds no evidence.
	if err := w.g.Apply(w.fork2); !errors.Is(err, authority.ErrEquivocation) || len(w.g.Equivocations(w.target.id())) != 1 {
		t.Fatalf("second Apply(fork) = %v with %d proofs", err, len(w.g.Equivocations(w.target.id())))
	}

	// Recovery: a rotation at a later seq, to the same key, clears the
	// mark; the evidence stays.
	rot := w.apply(t, w.target.rotate(t, 1, []byte{seedGovTarget}, seedGovTarget))
	if a, _ := w.g.Authority(w.target.id()); a.EquivocatedAt != 0 {
		t.Fatalf("EquivocatedAt = %d after rotation %s at seq %d", a.EquivocatedAt, rot.ID.Short(), rot.Decl.Seq)
	}
	for _, ri := range w.g.RulesFor(w.target.id()) {
		if authority.RuleEquivocated(w.g, ri) {
			t.Errorf("rule at seq %d still distrusted after the rotation", ri.Seq)
		}
	}
	if len(w.g.Equivocations(w.target.id())) != 1 {
		t.Error("the rotation dropped the evidence")
	}
	// A fork of the history before the rotation is evidence, not a mark.
	w.target.forkAt(1)
	old := w.target.rule(t, w.root.id(), "old-fork", seedGovTarget)
	if err := w.g.Apply(old); !errors.Is(err, authority.ErrEquivocation) {
		t.Fatalf("Apply(fork before the rotation) = %v", err)
	}
	if a, _ := w.g.Authority(w.target.id()); a.EquivocatedAt != 0 || len(w.g.Equivocations(w.target.id())) != 2 {
		t.Fatalf("after a fork before the rotation: EquivocatedAt %d, %d proofs; want 0 and 2", a.EquivocatedAt, len(w.g.Equivocations(w.target.id())))
	}
}

// TestEquivocationCredentials: an equivocating issuer's credentials are not
// trusted, until it rotates.
func TestEquivocationCredentials(t *testing.T) {
	w := newGovWorld(t)
	held := w.apply(t, w.root.rule(t, w.target.id(), "a", seedR1, seedR2))
	w.root.forkAt(1)
	fork := w.root.rule(t, w.target.id(), "b", seedR2, seedR3)
	if err := w.g.Apply(fork); !errors.Is(err, authority.ErrEquivocation) {
		t.Fatalf("Apply(fork) = %v", err)
	}
	w.root.setHead(held)
	cred := w.root.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour), seedR1, seedR3).Raw
	if r, msg := authority.JudgeCredentialSigners(w.g, cred, now); r != authority.ReasonEquivocation {
		t.Fatalf("credential of an equivocating issuer: %q (%s), want equivocation", r, msg)
	}
	w.apply(t, w.root.delegate(t, seedOp1, credKinds, dayAgo, weekAhead, seedR1, seedR2))
	opCred := w.root.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour), seedOp1).Raw
	if r, msg := authority.JudgeCredentialSigners(w.g, opCred, now); r != authority.ReasonEquivocation {
		t.Fatalf("op-key credential of an equivocating issuer: %q (%s), want equivocation", r, msg)
	}
	w.apply(t, w.root.rotate(t, 2, []byte{seedR1, seedR2, seedR3}, seedR1, seedR3))
	for _, c := range [][]byte{cred, opCred} {
		if r, msg := authority.JudgeCredentialSigners(w.g, c, now); r != "" {
			t.Fatalf("credential after recovery: %q (%s), want ok", r, msg)
		}
	}
}

// replayed returns a fresh graph holding exactly what g's order holds, given
// the envelopes by ID: how a replica that never saw the fork stands.
func replayed(t fataler, decls ...*authority.Signed) *authority.Graph {
	t.Helper()
	g := authority.NewGraph()
	for _, s := range decls {
		if err := g.Apply(s); err != nil {
			t.Fatalf("replay %v %s: %v", s.Decl.Kind, s.ID.Short(), err)
		}
	}
	return g
}

func TestApplyEvidence(t *testing.T) {
	w := newForkWorld(t)
	chain := []*authority.Signed{w.root.genesis, w.target.genesis, w.rule, w.rule2}

	t.Run("gossiped evidence marks a replica as Apply did", func(t *testing.T) {
		g := replayed(t, chain...)
		if err := g.ApplyEvidence(w.fork2.Raw, w.rule2.Raw); err != nil {
			t.Fatalf("ApplyEvidence = %v", err)
		}
		ev := g.Equivocations(w.target.id())
		if len(ev) != 1 || ev[0].A.ID != w.rule2.ID || ev[0].B.ID != w.fork2.ID {
			t.Fatalf("evidence %+v: want the held declaration first", ev)
		}
		if a, _ := g.Authority(w.target.id()); a.EquivocatedAt != 2 {
			t.Fatalf("EquivocatedAt = %d, want 2", a.EquivocatedAt)
		}
		other := replayed(t, chain...)
		if err := other.Apply(w.fork2); !errors.Is(err, authority.ErrEquivocation) {
			t.Fatal(err)
		}
		if a, _ := other.Authority(w.target.id()); a.EquivocatedAt != 2 || len(other.Equivocations(w.target.id())) != 1 {
			t.Fatal("Apply and ApplyEvidence disagree")
		}
		if err := g.ApplyEvidence(w.rule2.Raw, w.fork2.Raw); !errors.Is(err, authority.ErrDuplicate) {
			t.Fatalf("second ApplyEvidence = %v, want ErrDuplicate", err)
		}
		if _, err := g.CheckEvidence(w.rule2.Raw, w.fork2.Raw); !errors.Is(err, authority.ErrDuplicate) {
			t.Fatalf("CheckEvidence of a recorded position = %v, want ErrDuplicate", err)
		}
	})

	t.Run("evidence at the head's next position, neither in the chain", func(t *testing.T) {
		g := replayed(t, chain...)
		w.target.forkAt(3)
		x := w.target.rule(t, w.root.id(), "x", seedGovTarget)
		w.target.forkAt(3)
		y := w.target.rule(t, w.root.id(), "y", seedGovTarget)
		if err := g.ApplyEvidence(x.Raw, y.Raw); err != nil {
			t.Fatalf("ApplyEvidence = %v", err)
		}
		if a, _ := g.Authority(w.target.id()); a.EquivocatedAt != 3 {
			t.Fatalf("EquivocatedAt = %d, want 3", a.EquivocatedAt)
		}
		// A rotation at that very position does not clear it; the next does.
		w.target.forkAt(3)
		r3 := w.target.rotate(t, 1, []byte{seedGovTarget}, seedGovTarget)
		if err := g.Apply(r3); err != nil {
			t.Fatal(err)
		}
		if a, _ := g.Authority(w.target.id()); a.EquivocatedAt != 3 {
			t.Fatalf("EquivocatedAt = %d after a rotation at the evidence's seq, want 3", a.EquivocatedAt)
		}
		if err := g.Apply(w.target.rotate(t, 1, []byte{seedGovTarget}, seedGovTarget)); err != nil {
			t.Fatal(err)
		}
		if a, _ := g.Authority(w.target.id()); a.EquivocatedAt != 0 {
			t.Fatalf("EquivocatedAt = %d after a later rotation, want 0", a.EquivocatedAt)
		}
	})

	// Refusals, each on a fresh replica.
	root2 := w.root.rule(t, w.target.id(), "r", seedR1, seedR2)
	root3 := mustSignMulti(t, root2.Decl, seedR1, seedR2, seedR3) // same declaration, more signatures
	w.target.forkAt(3)
	w.target.next(t, ruleDecl(w.root.id(), "o"), seedGovTarget)           // seq 3
	ahead1 := w.target.next(t, ruleDecl(w.root.id(), "p"), seedGovTarget) // seq 4
	w.target.forkAt(4)
	ahead2 := w.target.next(t, ruleDecl(w.root.id(), "q"), seedGovTarget)
	w.target.forkAt(2)
	forged := mustSign(t, w.target.rule(t, w.root.id(), "f", seedGovTarget).Decl, fixedKey(t, seedStranger))
	lowRoot := mustSignMulti(t, w.root.forked(t, 1, "s"), seedR1)
	okRoot := mustSignMulti(t, w.root.forked(t, 1, "t"), seedR1, seedR2)
	tests := []struct {
		name string
		a, b []byte
		want error
	}{
		{name: "the same envelope twice", a: w.rule2.Raw, b: w.rule2.Raw, want: authority.ErrNotEvidence},
		{name: "the same declaration with other signatures", a: root2.Raw, b: root3.Raw, want: authority.ErrNotEvidence},
		{name: "two positions", a: w.rule.Raw, b: w.rule2.Raw, want: authority.ErrNotEvidence},
		{name: "two authorities", a: w.rule2.Raw, b: okRoot.Raw, want: authority.ErrNotEvidence},
		{name: "a credential", a: w.root.credential(t, "x", time.Time{}, time.Time{}, seedR1, seedR2).Raw, b: w.root.credential(t, "y", time.Time{}, time.Time{}, seedR1, seedR2).Raw, want: authority.ErrNotEvidence},
		{name: "two geneses", a: w.root.genesis.Raw, b: w.target.genesis.Raw, want: authority.ErrNotEvidence},
		{name: "unknown authority", a: newChain(t, "gcp-data", seedGCP).revoke(t, authority.ID{1}).Raw, b: newChain(t, "gcp-data", seedGCP).revoke(t, authority.ID{2}).Raw, want: authority.ErrUnknownAuthority},
		{name: "beyond the head's next position", a: ahead1.Raw, b: ahead2.Raw, want: authority.ErrGap},
		{name: "one half forged", a: w.rule2.Raw, b: forged.Raw, want: authority.ErrBadSignature},
		{name: "one half below the threshold", a: okRoot.Raw, b: lowRoot.Raw, want: authority.ErrThresholdNotMet},
		{name: "garbage", a: w.rule2.Raw, b: []byte{0xd2, 0x84}, want: authority.ErrMalformed},
		{name: "root fork at its head's next position", a: okRoot.Raw, b: mustSignMulti(t, w.root.forked(t, 1, "u"), seedR2, seedR3).Raw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := replayed(t, chain...)
			// CheckEvidence answers as ApplyEvidence will, and changes nothing.
			if _, err := g.CheckEvidence(tt.a, tt.b); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckEvidence = %v, want %v", err, tt.want)
			}
			for _, a := range g.Authorities() {
				if a.EquivocatedAt != 0 || len(g.Equivocations(a.ID)) != 0 {
					t.Fatalf("CheckEvidence marked %s", a.Name)
				}
			}
			err := g.ApplyEvidence(tt.a, tt.b)
			t.Logf("%v", err)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ApplyEvidence = %v, want %v", err, tt.want)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "authority: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				for _, a := range g.Authorities() {
					if a.EquivocatedAt != 0 || len(g.Equivocations(a.ID)) != 0 {
						t.Fatalf("a refused pair marked %s", a.Name)
					}
				}
			}
		})
	}
}

// forked returns the declaration of c at seq with a rule for subjects,
// without moving c's head.
func (c *gov) forked(t fataler, seq uint64, subjects string) authority.Declaration {
	d := ruleDecl(c.id(), subjects)
	d.Authority, d.Seq, d.Prev, d.IssuedAt = c.id(), seq, c.ids[seq-1], unix(now.Add(-time.Hour))
	return d
}

// TestSameDeclarationOtherSignatures: a relay can drop one of several
// signatures; the result is the same declaration, not a fork.
func TestSameDeclarationOtherSignatures(t *testing.T) {
	w := newGovWorld(t)
	r := w.apply(t, w.root.rule(t, w.target.id(), "*", seedR1, seedR2, seedR3))
	stripped := mustSignMulti(t, r.Decl, seedR1, seedR3)
	if stripped.ID == r.ID {
		t.Fatal("two signature sets gave one ID")
	}
	err := w.g.Apply(stripped)
	if !errors.Is(err, authority.ErrDuplicate) || errors.Is(err, authority.ErrConflict) {
		t.Fatalf("Apply(same declaration, fewer signatures) = %v, want ErrDuplicate and no conflict", err)
	}
	if a, _ := w.g.Authority(w.root.id()); a.EquivocatedAt != 0 || len(w.g.Equivocations(w.root.id())) != 0 {
		t.Fatal("other signatures of one declaration were taken for equivocation")
	}
	// Below the threshold it is not even that.
	if err := w.g.Apply(mustSignMulti(t, r.Decl, seedR1)); !errors.Is(err, authority.ErrThresholdNotMet) {
		t.Fatalf("Apply(same declaration, below threshold) = %v, want ErrThresholdNotMet", err)
	}
}

// TestGovernanceDeterministic: two graphs fed the same declarations and
// evidence in the same order agree on everything governance derives.
func TestGovernanceDeterministic(t *testing.T) {
	build := func() *authority.Graph {
		w := newCredWorld(t)
		w.root.forkAt(w.root.head)
		if err := w.g.Apply(w.root.rule(t, w.target.id(), "fork", seedR1, seedR2)); !errors.Is(err, authority.ErrEquivocation) {
			t.Fatalf("fork = %v", err)
		}
		return w.g
	}
	a, b := build(), build()
	if !slices.Equal(a.Order(), b.Order()) {
		t.Fatal("orders differ")
	}
	for _, x := range a.Authorities() {
		y, _ := b.Authority(x.ID)
		if x.EquivocatedAt != y.EquivocatedAt || x.Threshold != y.Threshold || len(x.Roots) != len(y.Roots) || x.MaxIssuedAt != y.MaxIssuedAt {
			t.Fatalf("%s differs: %+v vs %+v", x.Name, x, y)
		}
		ea, eb := a.Equivocations(x.ID), b.Equivocations(x.ID)
		if len(ea) != len(eb) {
			t.Fatalf("%s: %d vs %d proofs", x.Name, len(ea), len(eb))
		}
		for i := range ea {
			if ea[i].A.ID != eb[i].A.ID || ea[i].B.ID != eb[i].B.ID {
				t.Fatalf("%s: proof %d differs", x.Name, i)
			}
		}
	}
}
