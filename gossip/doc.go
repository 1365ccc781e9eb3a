// Package gossip is fednode's peer-to-peer layer: a libp2p host (TCP and
// QUIC) that gossips signed declarations over GossipSub on
// [DeclarationsTopic], and other small signed messages (transparency-log
// checkpoints on [CheckpointsTopic]) on extra topics named in Config.Topics,
// each with its own size limit, validator and delivery; and carries
// point-to-point streams (for Raft) as plain net.Conn and net.Listener
// values.
//
// It is the only package of fednode that imports libp2p. Everything other
// packages need from libp2p is offered here through plain Go types: peer IDs
// and multiaddrs are strings, identities are marshalled private keys
// ([]byte), streams are net.Conn. No libp2p type appears in the exported API,
// so a libp2p upgrade stays inside this directory.
//
// What it is not: gossip does not decode, verify or store declarations or
// checkpoints. The caller supplies Config.Validate (which must reject before
// anything touches the store) and Config.Deliver, and the same pair per
// extra topic. Gossip is best effort: GossipSub drops messages under
// overload and deduplicates by content (per topic) for a while, so
// completeness must come from a pull-based sync above this package.
//
// Who may import it: node (which wires it to the validator, the store and
// consensus) and tests. authority must not import it.
package gossip
