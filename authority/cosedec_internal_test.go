package authority

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// The lean decoder (cosedec.go) replaced a go-cose decode followed by a
// canonical re-encode and byte comparison. These tests keep that old parser
// as the reference and check that both accept exactly the same envelopes,
// read the same headers, payload and signatures out of them, and that the
// Sig_structure the lean path verifies is the one go-cose hands a Verifier.

// decoded is what a parser reads out of an envelope.
type decoded struct {
	payload []byte
	sigs    []Signature
	sigBs   [][]byte
	tbs     [][]byte // the Sig_structure of each signature
}

// recorder is a cose.Verifier that records what it is asked to verify.
type recorder struct {
	alg cose.Algorithm
	got *[]byte
}

func (r recorder) Algorithm() cose.Algorithm { return r.alg }
func (r recorder) Verify(content, _ []byte) error {
	*r.got = bytes.Clone(content)
	return nil
}

// referenceDecode is the parser the lean decoder replaced.
func referenceDecode(b []byte) (decoded, bool) {
	var d decoded
	if len(b) == 0 {
		return d, false
	}
	header := func(h cose.Headers) (Alg, cose.Algorithm, []byte, bool) {
		calg, err := h.Protected.Algorithm()
		if err != nil {
			return 0, 0, nil, false
		}
		alg, err := algFromCOSE(calg)
		if err != nil {
			return 0, 0, nil, false
		}
		kid, ok := h.Protected[cose.HeaderLabelKeyID].([]byte)
		if !ok || len(kid) != KeyIDSize || len(h.Protected) != 2 || len(h.Unprotected) != 0 {
			return 0, 0, nil, false
		}
		return alg, calg, kid, true
	}
	if bytes.HasPrefix(b, coseSignPrefix) {
		var m cose.SignMessage
		if err := m.UnmarshalCBOR(b); err != nil {
			return d, false
		}
		if len(m.Headers.Protected) != 0 || len(m.Headers.Unprotected) != 0 || len(m.Signatures) < 2 || len(m.Signatures) > MaxSignatures {
			return d, false
		}
		canon := cose.SignMessage{Headers: cose.Headers{Protected: cose.ProtectedHeader{}, Unprotected: cose.UnprotectedHeader{}}, Payload: m.Payload}
		for i, sig := range m.Signatures {
			alg, calg, kid, ok := header(sig.Headers)
			if !ok || (i > 0 && bytes.Compare(d.sigs[i-1].KeyID, kid) >= 0) {
				return d, false
			}
			d.sigs = append(d.sigs, Signature{Alg: alg, KeyID: kid})
			d.sigBs = append(d.sigBs, sig.Signature)
			canon.Signatures = append(canon.Signatures, &cose.Signature{
				Headers:   cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: calg, cose.HeaderLabelKeyID: kid}, Unprotected: cose.UnprotectedHeader{}},
				Signature: sig.Signature,
			})
			var tbs []byte
			if err := sig.Verify(recorder{calg, &tbs}, emptyProtected, m.Payload, nil); err != nil {
				return d, false
			}
			d.tbs = append(d.tbs, tbs)
		}
		again, err := canon.MarshalCBOR()
		if err != nil || !bytes.Equal(again, b) {
			return d, false
		}
		d.payload = m.Payload
		return d, true
	}
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(b); err != nil {
		return d, false
	}
	alg, calg, kid, ok := header(m.Headers)
	if !ok {
		return d, false
	}
	canon := cose.Sign1Message{
		Headers: cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: calg, cose.HeaderLabelKeyID: kid}, Unprotected: cose.UnprotectedHeader{}},
		Payload: m.Payload, Signature: m.Signature,
	}
	again, err := canon.MarshalCBOR()
	if err != nil || !bytes.Equal(again, b) {
		return d, false
	}
	var tbs []byte
	if err := m.Verify(nil, recorder{calg, &tbs}); err != nil {
		return d, false
	}
	d.payload, d.sigs, d.sigBs, d.tbs = m.Payload, []Signature{{Alg: alg, KeyID: kid}}, [][]byte{m.Signature}, [][]byte{tbs}
	return d, true
}

// leanDecode is what Parse does before the payload.
func leanDecode(b []byte) (decoded, bool) {
	var d decoded
	if len(b) == 0 {
		return d, false
	}
	if bytes.HasPrefix(b, coseSignPrefix) {
		payload, whole, raws, sigs, err := decodeSign(b)
		if err != nil {
			return d, false
		}
		d.payload, d.sigs = payload, sigs
		for _, r := range raws {
			d.sigBs = append(d.sigBs, r.sig)
			d.tbs = append(d.tbs, toBeSigned(nil, true, r.prot, whole))
		}
		return d, true
	}
	payload, whole, r, sig, err := decodeSign1(b)
	if err != nil {
		if !errors.Is(err, errLean) && !strings.Contains(err.Error(), "COSE algorithm") {
			panic("lean decoder error without errLean: " + err.Error())
		}
		return d, false
	}
	d.payload, d.sigs, d.sigBs, d.tbs = payload, []Signature{sig}, [][]byte{r.sig}, [][]byte{toBeSigned(nil, false, r.prot, whole)}
	return d, true
}

func sameDecoded(a, b decoded) bool {
	eq := func(x, y [][]byte) bool { return slices.EqualFunc(x, y, bytes.Equal) }
	return bytes.Equal(a.payload, b.payload) && eq(a.sigBs, b.sigBs) && eq(a.tbs, b.tbs) &&
		slices.EqualFunc(a.sigs, b.sigs, func(x, y Signature) bool { return x.Alg == y.Alg && bytes.Equal(x.KeyID, y.KeyID) })
}

func checkSameAsReference(t *testing.T, name string, b []byte) {
	t.Helper()
	ref, refOK := referenceDecode(b)
	lean, leanOK := leanDecode(b)
	if refOK != leanOK {
		t.Fatalf("%s: reference parser accepts=%v, lean decoder accepts=%v: %x", name, refOK, leanOK, b)
	}
	if refOK && !sameDecoded(ref, lean) {
		t.Fatalf("%s: the parsers read different envelopes out of %x", name, b)
	}
}

// envelopeSeeds returns every envelope in testdata: the fixture files and
// the envelopes nested in them (chain fixtures hold several).
func envelopeSeeds(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case []byte:
			if len(x) > 2 && (x[0] == 0xd2 || x[0] == 0xd8) {
				out = append(out, x)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[any]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	err := filepath.WalkDir("testdata", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".cbor") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, b)
		var v any
		if cbor.Unmarshal(b, &v) == nil {
			walk(v)
		}
		return nil
	})
	if err != nil || len(out) < 10 {
		t.Fatalf("envelope seeds: %d, %v", len(out), err)
	}
	return out
}

// TestLeanDecoderMatchesReference runs both parsers over every fixture
// envelope and systematic damage to each: every byte of the first 96 and
// the last 8 changed three ways, and every truncation of those regions.
func TestLeanDecoderMatchesReference(t *testing.T) {
	seeds := envelopeSeeds(t)
	accepted := 0
	for si, b := range seeds {
		if _, ok := referenceDecode(b); ok {
			accepted++
		}
		checkSameAsReference(t, "fixture", b)
		positions := []int{}
		for i := 0; i < len(b) && i < 96; i++ {
			positions = append(positions, i)
		}
		for i := max(96, len(b)-8); i < len(b); i++ {
			positions = append(positions, i)
		}
		for _, i := range positions {
			for _, x := range []byte{0x01, 0x20, 0xff} {
				m := bytes.Clone(b)
				m[i] ^= x
				checkSameAsReference(t, "mutated", m)
			}
			checkSameAsReference(t, "truncated", b[:i])
		}
		checkSameAsReference(t, "trailing byte", append(bytes.Clone(b), 0))
		_ = si
	}
	if accepted < 10 {
		t.Fatalf("only %d fixtures are envelopes the reference accepts: the test proves little", accepted)
	}
	t.Logf("%d seeds, %d accepted", len(seeds), accepted)
}

// FuzzLeanDecoder: the lean decoder accepts exactly what the reference
// parser accepts, and reads the same envelope out of it.
func FuzzLeanDecoder(f *testing.F) {
	for _, b := range envelopeSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSameAsReference(t, "fuzz", b)
	})
}
