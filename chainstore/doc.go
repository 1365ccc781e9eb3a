// Package chainstore is the badger-backed storage of one node: the agreed
// federation graph (declarations, indexes, heads, revocations), the Raft log
// and stable store, and the peer address book.
//
// A Store owns one badger database. Every namespace in it is a single-byte key
// prefix documented in keys.go; that layout is an on-disk format and changes to
// it need a migration.
//
// What it is not: chainstore does not decide what is agreed. It stores what the
// Raft FSM applies and what Raft itself asks to persist; it never verifies
// signatures and never talks to the network. It does not import
// hashicorp/raft: the consensus package adapts LogRecord to raft.Log and
// translates ErrLogNotFound to raft.ErrLogNotFound.
//
// Who may import it: consensus, node and tools under cmd/. chainstore is the
// only package of fednode that imports badger; nothing outside it should see a
// badger type.
//
// Durability: the database is opened with SyncWrites, so every committed write
// is fsynced before the call returns, which Raft's log and stable store
// require.
package chainstore
