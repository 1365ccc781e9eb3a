package authority

import (
	"bytes"
	"reflect"
	"testing"
)

// checkCredentialFast fails unless the fast path either declines b or
// decodes exactly what unmarshalStrict decodes (and unmarshalStrict
// accepts b). It reports whether the fast path took b.
func checkCredentialFast(t *testing.T, b []byte) bool {
	t.Helper()
	var fast Declaration
	if !decodeCredentialFast(b, &fast, nil, nil) {
		if !reflect.DeepEqual(fast, Declaration{}) {
			t.Fatalf("the fast path declined %x but wrote its result", b)
		}
		return false
	}
	var slow Declaration
	if err := unmarshalStrict(b, &slow); err != nil {
		t.Fatalf("the fast path accepts %x, which unmarshalStrict refuses: %v", b, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("the fast path decodes %x differently:\nfast %#v\nslow %#v", b, fast, slow)
	}
	return true
}

// payloadSeeds returns the payloads of every fixture envelope, and
// credential payloads that exercise every field.
func payloadSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, b := range envelopeSeeds(t) {
		if d, ok := leanDecode(b); ok {
			out = append(out, d.payload)
		}
	}
	k := testKey(t, AlgMLDSA65, 3).Public()
	for _, c := range []Credential{
		{Subject: "s"},
		{Subject: ""},
		{Subject: "s", NotBefore: -3, NotAfter: 1 << 40, Serial: []byte{1, 2}, Attributes: []Attr{{"a", "b"}, {"c", ""}}, Resources: "r/*", Actions: []string{"read", ""}, HolderKey: &k, Parent: IDOf([]byte("p"))},
		{Subject: "ünïcode", HolderKey: &PublicKey{Alg: 200, Key: []byte{}}},
	} {
		b, err := marshal(&Declaration{Kind: KindCredential, Authority: IDOf([]byte("a")), IssuedAt: 7, Credential: &c})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestCredentialFastMatchesStrict: over every fixture payload and
// systematic damage to each, the fast path declines or agrees with
// unmarshalStrict, and it does take every canonical credential.
func TestCredentialFastMatchesStrict(t *testing.T) {
	taken := 0
	for _, p := range payloadSeeds(t) {
		var d Declaration
		isCred := unmarshalStrict(p, &d) == nil && d.Kind == KindCredential
		if checkCredentialFast(t, p) {
			taken++
		} else if isCred {
			t.Errorf("the fast path declines a canonical credential payload %x", p)
		}
		for i := range p {
			for _, x := range []byte{0x01, 0x02, 0x20, 0x80, 0xff} {
				m := bytes.Clone(p)
				m[i] ^= x
				checkCredentialFast(t, m)
			}
			checkCredentialFast(t, p[:i])
		}
		checkCredentialFast(t, append(bytes.Clone(p), 0))
	}
	if taken < 5 {
		t.Fatalf("the fast path took only %d payloads", taken)
	}
}

func FuzzCredentialFast(f *testing.F) {
	for _, p := range payloadSeeds(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkCredentialFast(t, b) })
}
