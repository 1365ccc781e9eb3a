package authority

// External test vectors for the signature algorithms, run through this
// package's own code (PublicKey.verify, PrivateKey.sign and the go-cose
// signer/verifier adapters), not through the libraries underneath.
// testdata/vectors/README.md names each file's source and licence.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/c2sp/wycheproof"
	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// wycheproofFile is the part of a Wycheproof verify or sign file we read.
type wycheproofFile struct {
	Algorithm  string `json:"algorithm"`
	TestGroups []struct {
		// EdDSA groups carry the key as an object, ML-DSA groups as hex.
		PublicKey   json.RawMessage `json:"publicKey"`
		PrivateSeed string          `json:"privateSeed"`
		Tests       []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Msg     string   `json:"msg"`
			Ctx     *string  `json:"ctx"`
			Rnd     *string  `json:"rnd"`
			Sig     string   `json:"sig"`
			Result  string   `json:"result"`
			Flags   []string `json:"flags"`
		} `json:"tests"`
	} `json:"testGroups"`
}

func loadWycheproof(t *testing.T, name string) wycheproofFile {
	t.Helper()
	b, err := fs.ReadFile(wycheproof.TestVectors, name)
	if err != nil {
		t.Fatalf("wycheproof %s: %v", name, err)
	}
	var f wycheproofFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("wycheproof %s: %v", name, err)
	}
	if len(f.TestGroups) == 0 {
		t.Fatalf("wycheproof %s: no test groups", name)
	}
	return f
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %.20q: %v", s, err)
	}
	return b
}

// wantVerify maps a Wycheproof result to what verify must answer. Neither
// file used here has "acceptable" cases (checked when they were added); if a
// later revision adds some, either answer passes and the case is logged, as
// Wycheproof's README prescribes for acceptable results.
func wantVerify(t *testing.T, result string) (want, any bool) {
	switch result {
	case "valid":
		return true, false
	case "invalid":
		return false, false
	case "acceptable":
		return false, true
	}
	t.Fatalf("unknown wycheproof result %q", result)
	return false, false
}

// TestWycheproofEd25519 runs every case of ed25519_test.json (EdDSA verify,
// 151 cases: malleability, non-canonical encodings, truncation, garbage)
// through PublicKey.verify.
func TestWycheproofEd25519(t *testing.T) {
	f := loadWycheproof(t, "ed25519_test.json")
	n := 0
	for _, g := range f.TestGroups {
		var pk struct {
			Curve string `json:"curve"`
			PK    string `json:"pk"`
		}
		if err := json.Unmarshal(g.PublicKey, &pk); err != nil || pk.Curve != "edwards25519" {
			t.Fatalf("ed25519 group key %s: %v", g.PublicKey, err)
		}
		key := PublicKey{Alg: AlgEd25519, Key: unhex(t, pk.PK)}
		for _, tc := range g.Tests {
			n++
			want, any := wantVerify(t, tc.Result)
			got := key.verify(unhex(t, tc.Msg), unhex(t, tc.Sig))
			if any {
				t.Logf("tcId %d (acceptable, %v): verify = %v", tc.TcID, tc.Flags, got)
				continue
			}
			if got != want {
				t.Errorf("tcId %d (%s, %v): verify = %v, want %v", tc.TcID, tc.Comment, tc.Flags, got, want)
			}
		}
	}
	t.Logf("%d ed25519 cases", n)
}

// TestWycheproofMLDSA65Verify runs every case of mldsa_65_verify_test.json
// through PublicKey.verify. fednode signs and verifies with the empty
// context only (RFC 9964 requires it), so a case with a non-empty context
// must be refused whatever its result: a signature made under another
// context is not a fednode signature.
func TestWycheproofMLDSA65Verify(t *testing.T) {
	f := loadWycheproof(t, "mldsa_65_verify_test.json")
	n, ctxCases := 0, 0
	for _, g := range f.TestGroups {
		var pkHex string
		if err := json.Unmarshal(g.PublicKey, &pkHex); err != nil {
			t.Fatalf("ml-dsa group key: %v", err)
		}
		key := PublicKey{Alg: AlgMLDSA65, Key: unhex(t, pkHex)}
		for _, c := range []*keyCache{nil, {}} {
			for _, tc := range g.Tests {
				n++
				want, any := wantVerify(t, tc.Result)
				if tc.Ctx != nil && *tc.Ctx != "" {
					ctxCases++
					want, any = false, false
				}
				got := key.verifyCached(unhex(t, tc.Msg), unhex(t, tc.Sig), c)
				if any {
					t.Logf("tcId %d (acceptable, %v): verify = %v", tc.TcID, tc.Flags, got)
					continue
				}
				if got != want {
					t.Errorf("tcId %d (%s, %v, cached %v): verify = %v, want %v", tc.TcID, tc.Comment, tc.Flags, c != nil, got, want)
				}
			}
		}
	}
	t.Logf("%d ml-dsa-65 verify cases (each uncached and cached), %d with a non-empty context", n/2, ctxCases/2)
}

// TestWycheproofMLDSA65SignSeed checks key generation from the FIPS 204 seed
// ξ (the key-file form) and deterministic signing against
// mldsa_65_sign_seed_test.json: ParsePrivateKey of the seed must give the
// vector's public key, and sign must give its signature byte for byte.
// Cases with a context, a precomputed μ only, or randomness are skipped:
// fednode never signs that way.
func TestWycheproofMLDSA65SignSeed(t *testing.T) {
	f := loadWycheproof(t, "mldsa_65_sign_seed_test.json")
	signed, skipped, refused := 0, 0, 0
	for _, g := range f.TestGroups {
		var pkHex string
		if err := json.Unmarshal(g.PublicKey, &pkHex); err != nil {
			t.Fatalf("ml-dsa group key: %v", err)
		}
		k, err := ParsePrivateKey(keyFileOf(t, AlgMLDSA65, unhex(t, g.PrivateSeed)))
		if err != nil {
			// Only the groups with a seed of the wrong length may be refused.
			for _, tc := range g.Tests {
				if tc.Result != "invalid" || !slices.Contains(tc.Flags, "IncorrectPrivateKeyLength") {
					t.Fatalf("tcId %d: %v", tc.TcID, err)
				}
				refused++
			}
			continue
		}
		if !bytes.Equal(k.Public().Key, unhex(t, pkHex)) {
			t.Fatalf("seed %s…: public key differs from the vector's", g.PrivateSeed[:8])
		}
		for _, tc := range g.Tests {
			// μ-only cases (flag Internal) carry no message at all.
			if (tc.Ctx != nil && *tc.Ctx != "") || tc.Rnd != nil || tc.Result != "valid" || slices.Contains(tc.Flags, "Internal") {
				skipped++
				continue
			}
			signed++
			sig, err := k.sign(unhex(t, tc.Msg))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sig, unhex(t, tc.Sig)) {
				t.Errorf("tcId %d (%s): signature differs from the vector's", tc.TcID, tc.Comment)
			}
			if !k.Public().verify(unhex(t, tc.Msg), sig) {
				t.Errorf("tcId %d: own signature does not verify", tc.TcID)
			}
		}
	}
	if signed == 0 {
		t.Fatal("no signing case applied")
	}
	if refused == 0 {
		t.Error("no seed of the wrong length was tried")
	}
	t.Logf("%d ml-dsa-65 signing cases reproduced, %d seeds of the wrong length refused, %d skipped (context, μ-only, randomized or invalid)", signed, refused, skipped)
}

// keyFileOf is the documented key-file layout {1: alg, 2: seed}, by hand.
func keyFileOf(t *testing.T, alg Alg, seed []byte) []byte {
	t.Helper()
	if len(seed) > 255 {
		t.Fatalf("seed of %d bytes", len(seed))
	}
	b := []byte{0xa2, 0x01, byte(alg), 0x02, 0x58, byte(len(seed))}
	return append(b, seed...)
}

func readVector(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// sigStructure is the COSE ToBeSigned of a Sign1 message with no external
// AAD (RFC 9052 §4.4), built here independently of go-cose.
func sigStructure(t *testing.T, rawProtected, payload []byte) []byte {
	t.Helper()
	var prot []byte
	if err := cbor.Unmarshal(rawProtected, &prot); err != nil {
		t.Fatalf("protected header: %v", err)
	}
	b, err := encMode.Marshal([]any{"Signature1", prot, []byte{}, payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCOSEExampleEd25519 is cose-wg/Examples eddsa-examples/eddsa-sig-01:
// a COSE_Sign1 with Ed25519 (RFC 8032 test key 1). Our verifier adapter must
// accept it, our Sig_structure must equal its ToBeSign, and, Ed25519 being
// deterministic, signing through our signer adapter must reproduce the whole
// message byte for byte.
func TestCOSEExampleEd25519(t *testing.T) {
	var v struct {
		Input struct {
			Plaintext string `json:"plaintext"`
			Sign0     struct {
				Key struct {
					X string `json:"x_hex"`
					D string `json:"d_hex"`
				} `json:"key"`
			} `json:"sign0"`
		} `json:"input"`
		Intermediates struct {
			ToBeSign string `json:"ToBeSign_hex"`
		} `json:"intermediates"`
		Output struct {
			CBOR string `json:"cbor"`
		} `json:"output"`
	}
	readVector(t, "eddsa-sig-01.json", &v)
	want := unhex(t, v.Output.CBOR)
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(want); err != nil {
		t.Fatal(err)
	}
	if string(msg.Payload) != v.Input.Plaintext {
		t.Fatalf("payload %q", msg.Payload)
	}
	pub := PublicKey{Alg: AlgEd25519, Key: unhex(t, v.Input.Sign0.Key.X)}
	if err := pub.validate(); err != nil {
		t.Fatal(err)
	}
	if err := msg.Verify(nil, verifier{pub}); err != nil {
		t.Fatalf("verifier adapter refuses the example: %v", err)
	}
	tbs := sigStructure(t, msg.Headers.RawProtected, msg.Payload)
	if !bytes.Equal(tbs, unhex(t, v.Intermediates.ToBeSign)) {
		t.Fatalf("Sig_structure %x, want ToBeSign %s", tbs, v.Intermediates.ToBeSign)
	}

	k, err := ParsePrivateKey(keyFileOf(t, AlgEd25519, unhex(t, v.Input.Sign0.Key.D)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public().Key, pub.Key) {
		t.Fatalf("d gives public key %x, want %x", k.Public().Key, pub.Key)
	}
	sig, err := k.sign(tbs)
	if err != nil || !bytes.Equal(sig, msg.Signature) {
		t.Fatalf("sign(ToBeSign) = %x, %v; want %x", sig, err, msg.Signature)
	}
	again := cose.Sign1Message{Headers: msg.Headers, Payload: msg.Payload}
	again.Headers.RawProtected, again.Headers.RawUnprotected = nil, nil
	if err := again.Sign(nil, nil, signer{k}); err != nil {
		t.Fatal(err)
	}
	got, err := again.MarshalCBOR()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("signer adapter output\n%x\nwant\n%x (%v)", got, want, err)
	}

	// One flipped bit anywhere in the signature is refused.
	bad := msg
	bad.Signature = bytes.Clone(msg.Signature)
	bad.Signature[len(bad.Signature)-1] ^= 0x01
	if err := bad.Verify(nil, verifier{pub}); err == nil {
		t.Error("a flipped signature bit verifies")
	}
}

// coseKey is the part of a COSE_Key (RFC 9052 §7, AKP type of RFC 9964)
// that the examples carry.
type coseKey struct {
	Kty  int    `cbor:"1,keyasint"`
	Kid  []byte `cbor:"2,keyasint"`
	Alg  int64  `cbor:"3,keyasint"`
	Pub  []byte `cbor:"-1,keyasint"`
	Priv []byte `cbor:"-2,keyasint"`
}

func decodeCOSEKey(t *testing.T, h string) coseKey {
	t.Helper()
	var k coseKey
	if err := cbor.Unmarshal(unhex(t, h), &k); err != nil {
		t.Fatalf("COSE_Key: %v", err)
	}
	if k.Kty != 7 {
		t.Fatalf("COSE_Key kty %d, want 7 (AKP)", k.Kty)
	}
	return k
}

// TestCOSEExampleMLDSA65 is the ML-DSA-65 COSE_Sign1 example of
// draft-ietf-cose-dilithium-11 Appendix A.2 (all-zero seed). Our key
// derivation from the seed must give its public key, our verifier adapter
// must accept it, and deterministic signing through our signer adapter must
// reproduce it byte for byte.
func TestCOSEExampleMLDSA65(t *testing.T) {
	var v struct {
		Priv  string `json:"priv"`
		Key   string `json:"key"`
		Sign1 string `json:"sign1"`
	}
	readVector(t, "cose-dilithium-ML_DSA_65.cose.json", &v)
	ck := decodeCOSEKey(t, v.Key)
	if ck.Alg != int64(coseAlgMLDSA65) || !bytes.Equal(ck.Priv, unhex(t, v.Priv)) {
		t.Fatalf("COSE_Key alg %d, priv %x", ck.Alg, ck.Priv)
	}
	pub := PublicKey{Alg: AlgMLDSA65, Key: ck.Pub}
	if err := pub.validate(); err != nil {
		t.Fatal(err)
	}
	want := unhex(t, v.Sign1)
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(want); err != nil {
		t.Fatal(err)
	}
	if a, err := msg.Headers.Protected.Algorithm(); err != nil || a != coseAlgMLDSA65 {
		t.Fatalf("example alg %v, %v", a, err)
	}
	if got, err := algFromCOSE(coseAlgMLDSA65); err != nil || got != AlgMLDSA65 {
		t.Fatalf("algFromCOSE(-49) = %v, %v", got, err)
	}
	for _, c := range []*keyCache{nil, {}} {
		if !pub.verifyCached(sigStructure(t, msg.Headers.RawProtected, msg.Payload), msg.Signature, c) {
			t.Fatalf("verify (cached %v) refuses the example", c != nil)
		}
	}
	if err := msg.Verify(nil, verifier{pub}); err != nil {
		t.Fatalf("verifier adapter refuses the example: %v", err)
	}

	k, err := ParsePrivateKey(keyFileOf(t, AlgMLDSA65, ck.Priv))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public().Key, ck.Pub) {
		t.Fatal("the seed gives another public key than the example's")
	}
	again := cose.Sign1Message{
		Headers: cose.Headers{Protected: msg.Headers.Protected, Unprotected: cose.UnprotectedHeader{}},
		Payload: msg.Payload,
	}
	if err := again.Sign(nil, nil, signer{k}); err != nil {
		t.Fatal(err)
	}
	got, err := again.MarshalCBOR()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("deterministic re-signing differs from the example (%v)", err)
	}

	bad := msg
	bad.Signature = bytes.Clone(msg.Signature)
	bad.Signature[10] ^= 0x01
	if err := bad.Verify(nil, verifier{pub}); err == nil {
		t.Error("a flipped signature bit verifies")
	}
}

// TestCOSEExampleHybrid is the ML-DSA-65-Ed25519 COSE_Sign1 example of
// draft-ietf-jose-pq-composite-sigs (all-zero seeds). It is signed with
// that draft's working COSE value (-58 in the example; the text requests
// -55), not fednode's private-use one, so go-cose's header check would
// refuse it: the signature is checked over its Sig_structure with
// PublicKey.verify directly, and deterministic signing must reproduce it.
func TestCOSEExampleHybrid(t *testing.T) {
	var v struct {
		Priv      string `json:"priv"`
		MLDSASeed string `json:"mldsa_seed"`
		EdDSASeed string `json:"eddsa_seed"`
		Key       string `json:"key"`
		Sign1     string `json:"sign1"`
	}
	readVector(t, "jose-pq-composite-sigs-ML-DSA-65-Ed25519.cose.json", &v)
	ck := decodeCOSEKey(t, v.Key)
	if !bytes.Equal(ck.Priv, unhex(t, v.MLDSASeed+v.EdDSASeed)) || !bytes.Equal(ck.Priv, unhex(t, v.Priv)) {
		t.Fatal("composite private key is not mldsa_seed || eddsa_seed")
	}
	pub := PublicKey{Alg: AlgHybrid, Key: ck.Pub}
	if err := pub.validate(); err != nil {
		t.Fatal(err)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(unhex(t, v.Sign1)); err != nil {
		t.Fatal(err)
	}
	tbs := sigStructure(t, msg.Headers.RawProtected, msg.Payload)
	for _, c := range []*keyCache{nil, {}} {
		if !pub.verifyCached(tbs, msg.Signature, c) {
			t.Fatalf("verify (cached %v) refuses the composite example", c != nil)
		}
	}
	k, err := ParsePrivateKey(keyFileOf(t, AlgHybrid, ck.Priv))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public().Key, ck.Pub) {
		t.Fatal("the seeds give another composite public key than the example's")
	}
	sig, err := k.sign(tbs)
	if err != nil || !bytes.Equal(sig, msg.Signature) {
		t.Fatalf("deterministic re-signing differs from the example (%v)", err)
	}
	// The example's header says the draft's algorithm, and fednode's
	// adapter speaks only its own private-use value for the hybrid.
	if err := msg.Verify(nil, verifier{pub}); err == nil {
		t.Error("the verifier adapter accepted a header algorithm other than its own")
	}
}

// TestVectorsREADME: every vector file is named in the README with its source.
func TestVectorsREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("testdata", "vectors", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "vectors", "*.json"))
	if len(files) == 0 {
		t.Fatal("no vector files")
	}
	for _, f := range files {
		if !strings.Contains(string(readme), filepath.Base(f)) {
			t.Errorf("%s is not described in testdata/vectors/README.md", f)
		}
	}
}
