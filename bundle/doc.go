// Package bundle is the signed, self-contained export of a node's agreed
// federation graph, and its offline reader: an edge site with no network
// opens a bundle, rebuilds the graph from it and answers authorization
// requests from that graph alone.
//
// What it is not: bundle does not fetch, store or refresh bundles, keep a
// clock or decide how stale is too stale (Age and the decision's graph age
// report it; the caller decides). It adds no semantics of its own: the
// graph is rebuilt with authority.Graph.Apply and requests are decided by
// authority.Verify, so a bundle answers exactly as the node that exported it
// would have at the moment of export.
//
// Who may import it: node and cmd/fednode (to export), the offline edge
// verifier and tests (to open). It imports only the standard library,
// authority and fxamacker/cbor, because it is linked into the small edge
// verifier: no network, no storage, no consensus. The core API does no I/O
// at all (Open takes bytes); Load, the one function that reads a file, lives
// apart in load.go.
//
// # Wire format, version 1
//
// A bundle is a canonical COSE_Sign1 envelope made by authority.Seal with a
// root key of the exporting node's authority: protected header exactly
// {alg, kid}, no unprotected header, attached payload. The payload is the
// Core Deterministic CBOR (RFC 8949 §4.2) of a map with integer keys:
//
//	1: Format        uint   = 1 (FormatVersion)
//	2: GraphVersion  uint   number of declarations in the agreed graph
//	3: ExportedAt    int    Unix milliseconds, >= 0, when the graph was exported
//	4: Exporter      bstr   32-byte ID of the exporting node's authority (its genesis ID)
//	5: Declarations  array of bstr: every declaration of the graph, each an
//	                 encoded declaration envelope as authority.Parse accepts
//	                 it, versions 1..GraphVersion in acceptance order
//
// Why one canonical encoding: a bundle is a signed claim about a graph, and
// a reader that accepted several encodings of one claim would let a relay
// change the bytes (and any hash of them) without the signer. So Open
// decodes strictly (no duplicate keys, no indefinite lengths, no tags, no
// unknown keys) and requires the payload to re-encode to itself.
//
// Field numbers are the wire format: never renumber, only add. A reader
// refuses any Format other than the one it knows, so adding a field means a
// new FormatVersion; an old reader then refuses the new bundle with a
// message that names both versions rather than ignoring what it does not
// understand.
//
// Bounds: a bundle is at most MaxBundleSize bytes and holds at most
// MaxDeclarations declarations; each declaration is at most
// authority.MaxDeclarationSize bytes.
package bundle
