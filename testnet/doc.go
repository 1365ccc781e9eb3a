// Package testnet runs a local fednode mesh in one process and drives it
// with a scenario: N real nodes (each its own libp2p host on loopback, Raft
// instance and badger directory in a temporary directory), built with the
// same node.New that `fednode run` uses.
//
// The scenario language is a public interface (see Parse): operators
// rehearse federation changes with it, and the repository's tests run the
// files under testdata/ with the same runner that `fednode testnet` uses.
//
// Only cmd/fednode and tests import testnet.
package testnet
