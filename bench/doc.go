// Package bench measures what operators size a deployment by: verification
// cost per algorithm and chain depth, revocation latency across a mesh, Raft
// commit throughput, and catch-up sync speed. Each measurement returns a
// plain struct that `fednode bench ...` prints as one JSON object.
//
// It is not a test helper: it builds real graphs, nodes and meshes on
// loopback, and it is imported only by cmd/fednode (and its own tests).
package bench
