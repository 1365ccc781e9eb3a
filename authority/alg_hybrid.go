package authority

import (
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/veraison/go-cose"
)

// The hybrid (AlgHybrid) is ML-DSA-65-Ed25519 of
// draft-ietf-jose-pq-composite-sigs (the JOSE/COSE profile of the LAMPS
// composite ML-DSA, draft-ietf-lamps-pq-composite-sigs), built exactly as
// that draft builds it so that its published COSE example verifies here:
//
//	public key  = ML-DSA-65 pk (1952 B) || Ed25519 pk (32 B)
//	key seed    = ML-DSA-65 ξ (32 B)    || Ed25519 seed (32 B)
//	M           = the COSE ToBeSigned (Sig_structure) bytes
//	M'          = Prefix || Label || 0x00 || SHA-512(M)
//	signature   = ML-DSA-65.Sign(M', ctx = Label) (3309 B) || Ed25519.Sign(M') (64 B)
//
// with Prefix "CompositeAlgorithmSignatures2025" and Label
// "COMPSIG-MLDSA65-Ed25519-SHA512". Both halves sign the same M', so both
// cover the same Sig_structure; a signature verifies only if both do. The
// 0x00 is the length of the (always empty) application context. Prefix and
// Label are the domain separation: M' can never be a COSE Sig_structure
// (those start with 0x84) nor note text, so neither half can be lifted into
// a plain Ed25519 or ML-DSA signature of a declaration, and the ML-DSA half,
// made with ctx = Label, never verifies as a plain (empty-context) ML-DSA-65
// signature.
const (
	hybridPrefix = "CompositeAlgorithmSignatures2025"
	hybridLabel  = "COMPSIG-MLDSA65-Ed25519-SHA512"

	hybridPublicKeySize = mldsa65.PublicKeySize + ed25519.PublicKeySize
	hybridSignatureSize = mldsa65.SignatureSize + ed25519.SignatureSize
)

// coseAlgHybrid is the COSE algorithm of AlgHybrid. The COSE Algorithms
// registry (RFC 9053) reserves values below -65536 for private use. The draft
// requests -55 for ML-DSA-65-Ed25519 ("TBD (request assignment -55)"), but
// nothing is assigned, its own example generator signs with -58, and the
// requests -51..-53 already collide with RFC 9864's ESP384, ESP512 and
// Ed448. So fednode uses -65536 - 55 until IANA assigns a value; switching
// then is a new Alg (the COSE value is hashed into every envelope).
const coseAlgHybrid cose.Algorithm = -65536 - 55

// hybridMessage is M' for the Sig_structure (or other message) msg.
func hybridMessage(msg []byte) []byte {
	ph := sha512.Sum512(msg)
	m := make([]byte, 0, len(hybridPrefix)+len(hybridLabel)+1+len(ph))
	m = append(m, hybridPrefix...)
	m = append(m, hybridLabel...)
	m = append(m, 0x00)
	return append(m, ph[:]...)
}

// hybridSign signs msg with both halves of k (deterministic, as sign is).
func hybridSign(k *PrivateKey, msg []byte) ([]byte, error) {
	m := hybridMessage(msg)
	sig := make([]byte, mldsa65.SignatureSize, hybridSignatureSize)
	err := mldsa65.SignTo(k.ml, m, []byte(hybridLabel), false, sig)
	clearUpper()
	if err != nil {
		return nil, fmt.Errorf("authority: sign: %v: %w", AlgHybrid, err)
	}
	return append(sig, ed25519.Sign(k.ed, m)...), nil
}

// hybridVerify checks a hybrid signature; the caller has checked the
// lengths of key and sig.
func hybridVerify(key, msg, sig []byte, c *keyCache) bool {
	m := hybridMessage(msg)
	mlKey, edKey := key[:mldsa65.PublicKeySize], key[mldsa65.PublicKeySize:]
	mlSig, edSig := sig[:mldsa65.SignatureSize], sig[mldsa65.SignatureSize:]
	// Checking Ed25519 first keeps a key whose Ed25519 half fails out of
	// the cache, and its Ed25519 half is kept only once the ML-DSA half
	// verified too (only keys that verified are kept).
	edOK, fresh := c.edCheck(edKey, m, edSig)
	if !edOK || !c.verify(mlKey, m, []byte(hybridLabel), mlSig) {
		return false
	}
	if fresh != nil {
		c.put(&cachedKey{ed: fresh}, edKey)
	}
	return true
}
