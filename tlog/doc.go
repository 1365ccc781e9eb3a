// Package tlog is the transparency log of the agreed federation graph: an
// RFC 9162 (Certificate Transparency v2) Merkle tree over the declarations in
// the order Raft accepted them, with inclusion and consistency proofs, and
// checkpoints (signed tree heads) in the C2SP signed-note format that any
// member authority, witness or auditor can sign, cosign and check offline.
//
// # The leaves
//
// Leaf i (0-based) is the declaration at graph version i+1, and its leaf data
// is that declaration's envelope exactly as accepted (the canonical COSE_Sign1
// bytes, authority.Signed.Raw). So the tree size is the graph version, and
// LeafHash(envelope) = SHA-256(0x00 || envelope). Interior nodes are
// SHA-256(0x01 || left || right) and the empty tree's root is SHA-256("")
// (RFC 9162 §2.1.1). Because the envelope has one canonical encoding and the
// order is agreed, every node computes the same root for the same graph
// version. Hashing and proofs are github.com/transparency-dev/merkle's
// (rfc6962, compact, proof), not ours.
//
// # Storage
//
// tlog keeps no tree. An Appender holds only the compact range of the
// current tree (its Frontier: at most 64 hashes) and reports every perfect
// subtree node it completes to a visit function; the caller persists those
// nodes (chainstore in badger, MemStore in memory) and serves them back
// through the NodeStore interface, from which InclusionProof,
// ConsistencyProof and RootAt build proofs and past roots. A perfect
// subtree's hash never changes once written.
//
// # Checkpoints
//
// A checkpoint is a C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint) note
// body, exactly three lines and nothing else:
//
//	fednode/<log name>
//	<tree size, decimal, no leading zeros>
//	<root hash, standard base64 with padding>
//
// signed as a C2SP signed note (c2sp.org/signed-note) with
// golang.org/x/mod/sumdb/note, so x/mod's note.Open reads what SignCheckpoint
// writes. Decisions, and why:
//
//   - No extension lines, and ParseCheckpoint refuses any. The tree size
//     already is the graph version, so a "graph-version N" line would only
//     repeat it (and two numbers that must agree are one more thing to check);
//     the spec marks extension lines NOT RECOMMENDED because monitors cannot
//     audit them.
//   - The origin is "fednode/" + the consortium's log name (Origin), one per
//     replicated graph. Callers must compare a checkpoint's Origin with the
//     log they expect: OpenCheckpoint reports it but cannot know it.
//   - The log has no key of its own: each member authority signs the root its
//     own replica computed, with its authority key, and witnesses cosign with
//     theirs (Cosign). So the signature lines are not named after the origin
//     (the spec's SHOULD for a single-key log) but after the signer: the key
//     name is the authority's name, escaped by KeyName so that it is a valid
//     note key name ('+', '%', spaces and control characters become %XX; a
//     name without them is used as is). The key ID is the note spec's:
//     SHA-256(key name || 0x0A || type || public key)[:4], so two
//     authorities of one name are still told apart; type is 0x01 for
//     Ed25519, and for the algorithms the spec assigns no byte to, 0xff and
//     a NUL-terminated label (NoteType: "fednode/mldsa65",
//     "fednode/mldsa65-ed25519"). "<name>+<id>" is not
//     possible: note key names may not contain '+'.
//   - Signatures are plain note signatures of the signer's root key: Ed25519
//     (type 0x01, readable by any C2SP verifier), ML-DSA-65 or the hybrid
//     (Verifier, for fednode's types), by members and witnesses alike, not tlog-cosignature/v1 timestamped cosignatures: tlog
//     has no clock, and a fednode witness attests only that it saw this root.
//   - A signature from a known key that does not verify rejects the whole note
//     (the spec's SHOULD, and x/mod's behaviour); signatures from unknown keys
//     are ignored; a note with no verified signature is refused.
//
// Two checkpoints of one origin and size with different roots are a split
// view (SplitView): the replicas diverged or a signer equivocated.
// SplitViewEvidence carries both signed notes so that a third party can check
// the claim offline.
//
// # What it is not
//
// tlog does no I/O: no files, no network, no clock, no storage engine. It does
// not decide when to sign or publish checkpoints, whom to trust as a witness,
// or how to gossip them; it does not check that leaf data is a valid
// declaration (the graph did that before the leaf was appended).
//
// Who may import it: chainstore (to keep the tree beside the graph), node (to
// sign, serve and cosign checkpoints and proofs), the offline verifier and
// auditors (to check proofs against checkpoints), tests. It imports only the
// standard library, authority, transparency-dev/merkle and x/mod's
// sumdb/note, because it is linked into the small offline verifier.
package tlog
