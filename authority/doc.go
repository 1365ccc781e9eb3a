// Package authority is the pure core of fednode: keys, declarations, their
// deterministic encoding and COSE envelopes, the in-memory semantics of the
// federation graph, and the verifier that turns a credential and a request into
// a Decision.
//
// It does no I/O: no files, no network, no clock. Time is always passed in
// (WithTime), randomness is passed in where signing needs it. That is what lets
// an edge site link the verifier alone, and what makes a decision a pure
// function of bytes, trust state and time.
//
// WARNING: authority must not import libp2p, hashicorp/raft, badger, net/http or
// any other package of this module; TestImportBoundaries in the repository root
// keeps that true.
//
// Who may import it: everyone. It imports nobody of ours.
package authority
