package authority

// Bare signature checks, outside any envelope or decision: the unit of
// verification cost that `fednode bench verify` compares decisions with,
// and a check for tools that hold a key and a signed message.

// Verify reports whether sig is k's signature over msg, for k's algorithm.
// Unpacked ML-DSA-65 keys and decoded Ed25519 keys are cached (see keyCache
// and edVerify), which changes the cost, never the answer. Safe for concurrent use.
func (k PublicKey) Verify(msg, sig []byte) bool { return k.verify(msg, sig) }

// VerifyUncached is Verify decoding the key from its bytes on every call,
// as a verifier meeting the key for the first time does: for ML-DSA-65 and
// the hybrid it costs the unpacking (the expansion of the public matrix),
// which for ML-DSA costs more than the verification itself; for Ed25519 it
// is crypto/ed25519.Verify, which decompresses the key's point each time.
func (k PublicKey) VerifyUncached(msg, sig []byte) bool { return k.verifyCached(msg, sig, nil) }
