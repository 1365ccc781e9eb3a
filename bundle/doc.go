// Package bundle is the signed, self-verifying export of a node's agreed
// federation graph at one version, and its offline reader: an edge site with
// no network (a ship, a factory, a forward base) opens a bundle, checks it
// against the transparency log's checkpoint and the signatures of the
// authorities it trusts, rebuilds the graph and answers authorization
// requests from that graph alone.
//
// What it is not: bundle does not fetch or refresh bundles, keep a clock, or
// sign checkpoints (tlog does; the exporting node collects cosignatures
// before Build). It adds no semantics of its own: the graph is rebuilt with
// authority.Graph.Apply and requests are decided by authority.Verify, so a
// bundle answers exactly as the node that exported it would have at the
// moment of export, except that a bundle past its deadline, or older than
// one the site has already seen, is refused before the request is judged
// (reasons stale-bundle and rollback).
//
// Who may import it: node and cmd/fednode (to build and export), the edge
// verifier cmd/fedverify and tests (to open). It imports only the standard
// library, authority, tlog and fxamacker/cbor, because it is linked into the
// small edge verifier: no network, no storage engine, no consensus. The
// core API does no I/O at all (Open takes bytes); ReadFile and Load
// (load.go) read bundle files, and Site (site.go) keeps a site's last seen
// version: those are the only I/O.
//
// # Wire format, version 2
//
// Every map below has integer keys and is Core Deterministic CBOR (RFC 8949
// §4.2): shortest integers, definite lengths, keys sorted, no tags, no
// duplicate keys, nil arrays written as empty arrays. A bundle is the map
//
//	1: payload     bstr   the encoded payload (below)
//	2: signatures  array of 1..MaxSigners bstr, each a signature envelope
//
// A signature envelope is a canonical COSE_Sign1 made by authority.Seal with
// one root key of the signing authority (protected header exactly {alg,
// kid}, attached payload), whose payload is the statement
//
//	1: context  tstr   "fednode-bundle-v2"
//	2: digest   bstr   SHA-256 of the payload bytes (key 1 of the bundle)
//	3: signer   bstr   32-byte ID of the signing authority (its genesis ID)
//
// so that k signatures do not repeat a multi-megabyte payload, and each
// names its authority under the signature. The signers are distinct; the
// first is the exporter. The payload is
//
//	1:  format        uint   2 (FormatVersion)
//	2:  graph version uint   N, 1..MaxDeclarations: the log's tree size
//	3:  exported-at   int    Unix milliseconds, >= 0
//	4:  not-after     int    Unix milliseconds, > exported-at: the deadline
//	5:  origin        tstr   the log's checkpoint origin, e.g. "fednode/<log name>"
//	6:  checkpoint    bstr   the C2SP signed note of the checkpoint of origin at
//	                         size N (package tlog), signed by the exporter and
//	                         perhaps cosigned by others
//	7:  declarations  array of bstr: the declaration envelopes of versions
//	                         M+1..N in acceptance order (authority.Parse form)
//	8:  proofs        array of arrays of bstr: proofs[i] is the RFC 9162
//	                         inclusion proof of declarations[i], leaf index
//	                         M+i, in the tree of size N
//	9:  base version  uint   M: absent for a full bundle (M = 0); present and
//	                         0 < M < N for a delta carrying versions M+1..N
//	10: base root     bstr   delta only: the log's root at size M
//	11: consistency   array of bstr: delta only: the RFC 9162 consistency
//	                         proof from size M to N
//
// Leaf i of the log is the declaration at graph version i+1 (tlog), so a
// full bundle's declarations are leaves 0..N-1.
//
// What a signature means: the signer vouches for this payload, and through
// it for the graph at version N of the log named by origin, valid until
// not-after. What the checkpoint adds: the exporter (and its cosigners)
// signed the log's root at size N in the format witnesses and auditors
// read, so a bundle that disagrees with the log a consortium publishes is
// evidence of a split view (tlog.SplitView).
//
// Why one canonical encoding: a bundle is a signed claim about a graph, and a
// reader that accepted several encodings of one claim would let a relay
// change the bytes (and any hash of them) without the signers. So Open
// decodes strictly (no unknown keys either) and requires the bundle, the
// payload and every statement to re-encode to themselves.
//
// Versions: field numbers are the wire format; never renumber. A reader
// refuses every format but its own, naming both (a format 1 bundle, a
// single COSE_Sign1 envelope, is recognised as such): adding a field means
// a new FormatVersion.
//
// Bounds: a bundle is at most MaxBundleSize bytes, with at most MaxSigners
// signatures of at most MaxSignatureSize bytes each; its graph version is at
// most MaxDeclarations; a proof has at most MaxProofHashes hashes; the
// checkpoint note is at most tlog.MaxNoteSize bytes; each declaration at
// most authority.MaxDeclarationSize bytes.
//
// # Trust
//
// An authority's ID is the hash of its genesis, so a signer's keys are
// pinned by its ID: Open finds each signer's genesis among the declarations
// (or, for a delta, in the base graph) and checks the signature with the
// keys it declares. Which signers count is the site's Policy: the
// authorities it trusts and how many of them must have signed (k). A site
// pins its trusted authorities by ID; without a trust list any signer found
// in the graph counts, which proves only that the bundle is self-consistent.
package bundle
