// Package interop holds only tests: they check what fednode writes for
// auditors (a transparency-log export, inclusion and consistency proofs, a
// checkpoint) with other people's code alone — transparency-dev/merkle's
// RFC 9162 verifiers and the Go checksum database's signed-note package —
// and without importing any fednode package. The fixtures in testdata were
// written by a real `fednode audit export/prove/consistency/checkpoint` run
// (see testdata/README.md).
package interop
