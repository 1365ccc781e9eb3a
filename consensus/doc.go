// Package consensus orders fednode's replicated state with Raft: it runs a
// hashicorp/raft node over the node's peer-to-peer host and drives a
// StateStore through a deterministic FSM whose commands are registered once
// per command type.
//
// The flow it owns: a node proposes a Command with Raft.Apply; the leader
// appends it to the Raft log (a chainstore-backed LogStore), replicates it,
// and once it is committed every node's FSM dispatches it to the Handler
// registered for its type, which persists its effects together with the
// entry's index. Replays of entries already applied (after a restart) are
// skipped by index, so a handler sees each index once per state.
//
// What it is not: consensus does not decide what a command means or whether
// it is authorized; handlers do that, and they re-verify signatures. It does
// not talk to the network itself: it uses a small Network interface
// (implemented by gossip over libp2p streams, and by LoopbackNetwork in tests)
// and builds Raft's stream layer on it. It does not store anything itself:
// the log, stable store and state are supplied by the caller (chainstore in
// production, MemState and in-memory stores in tests).
//
// Who may import it: node, cmd/fednode, testnet and tests. consensus is the
// only package of fednode that imports hashicorp/raft, and no caller needs a
// raft type: the only ones in its API are in FSM's raft.FSM methods, which
// are for Raft alone. It must not import libp2p or badger (a test checks).
package consensus
