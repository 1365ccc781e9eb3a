package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Default tunables. They suit nodes on one LAN or loopback, including a
// loaded 2-core test machine under the race detector; WAN consortia should
// raise the timeouts (a heartbeat timeout well above the worst round trip).
const (
	// DefaultHeartbeatTimeout: a follower that hears nothing from the
	// leader for this long (randomised up to 2x) starts a (pre-)election.
	DefaultHeartbeatTimeout = 500 * time.Millisecond
	// DefaultElectionTimeout: a candidate that wins no election in this
	// long (randomised up to 2x) starts another.
	DefaultElectionTimeout = 500 * time.Millisecond
	// DefaultLeaderLeaseTimeout: a leader that cannot reach a quorum for
	// this long steps down. At most the heartbeat timeout.
	DefaultLeaderLeaseTimeout = 250 * time.Millisecond
	// DefaultCommitTimeout: how long the leader waits before sending an
	// idle follower a heartbeat that carries the commit index.
	DefaultCommitTimeout = 20 * time.Millisecond
	// DefaultSnapshotInterval: how often Raft checks whether to snapshot.
	DefaultSnapshotInterval = 2 * time.Minute
	// DefaultSnapshotThreshold: snapshot once this many entries were
	// appended since the last snapshot. Our state is already durable, so
	// snapshots serve only to trim the log and to catch followers up.
	DefaultSnapshotThreshold = 8192
	// DefaultTrailingLogs: entries kept after a snapshot, so that a
	// follower a little behind catches up from the log rather than by
	// InstallSnapshot.
	DefaultTrailingLogs = 10240
)

// snapshotRetain is how many snapshots the file snapshot store keeps.
const snapshotRetain = 2

// Config configures New.
type Config struct {
	// Network is the host Raft runs on; Network.LocalID is our ServerID
	// and ServerAddress. Required.
	Network Network
	// Log and Stable are Raft's durable stores (one *chainstore.Store
	// serves both). Required.
	Log    LogStore
	Stable StableStore
	// State is the replicated state, the one FSM drives. Optional when FSM
	// is set: it defaults to FSM's state; if both are set they must match.
	State StateStore
	// FSM dispatches committed commands; register every handler before New.
	// Required.
	FSM *FSM
	// SnapshotDir holds Raft's snapshots (the newest 2 are kept). Required.
	SnapshotDir string
	// Bootstrap makes a node with no Raft state (no log, term or snapshot)
	// the sole voter of a new cluster. Ignored when state exists, so it is
	// safe on every start of the founding node. Others join by AddVoter.
	Bootstrap bool

	// Logger receives our messages and raft's. Nil means slog.Default().
	Logger *slog.Logger
	// LogLevel is the lowest level of raft's own messages that reach Logger
	// (raft logs every election and snapshot at Info). Nil means Warn.
	LogLevel slog.Leveler

	// PeerAllowed, when set, admits peers to the Raft transport: a
	// connection from a peer it refuses is closed before Raft reads it, and
	// Raft never dials one (ErrPeerRefused). It is called concurrently and
	// must be fast (it runs on every accepted stream). Nil admits all.
	PeerAllowed func(peerID string) bool

	// Tunables: zero means the Default above.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
}

// Errors of Raft's methods.
var (
	// ErrNotLeader is matched (errors.Is) by every *NotLeaderError.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrLeadershipLost: leadership was lost before the entry was known to
	// be committed. It may or may not be applied: do not blindly retry a
	// command that is not idempotent.
	ErrLeadershipLost = errors.New("consensus: leadership lost; the entry may or may not be committed")
	// ErrShutdown: Raft is shut down.
	ErrShutdown = errors.New("consensus: raft is shut down")
	// ErrCommandTooLarge: the encoded command exceeds MaxCommandSize.
	ErrCommandTooLarge = errors.New("consensus: command too large")
	// ErrNothingToSnapshot: no entry was applied since the last snapshot.
	ErrNothingToSnapshot = errors.New("consensus: nothing new to snapshot")
	// ErrBadConfig: New was given an incomplete or inconsistent Config.
	ErrBadConfig = errors.New("consensus: bad config")
)

// NotLeaderError is returned by leader-only operations on another node.
// Leader is the current leader's ID, "" when none is known (an election is
// in progress); a caller forwards the request there or retries later.
type NotLeaderError struct {
	Leader string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "consensus: not the leader, and no leader is known"
	}
	return "consensus: not the leader; the leader is " + e.Leader
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// State names returned by Raft.State and in Stats.
const (
	StateFollower  = "follower"
	StateCandidate = "candidate"
	StateLeader    = "leader"
	StateShutdown  = "shutdown"
)

// Raft is one node's member of the Raft cluster. All methods are safe for
// concurrent use.
type Raft struct {
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	stream *streamLayer
	id     string
	log    *slog.Logger

	stable *stableAfterShutdown

	// Read index (readindex.go): the log Raft reads, the FSM and its
	// state, and the last term in which this leader committed a barrier.
	logs      raft.LogStore
	fsm       *FSM
	state     StateStore
	readyTerm atomic.Uint64

	shutdownOnce sync.Once
	shutdownErr  error
}

// New starts Raft on cfg.Network with the given stores.
//
// Our state is persistent, so Raft does not restore the latest snapshot on
// start (entries at or below State.AppliedIndex are skipped on replay)
// unless State.NeedsRestore, or the latest snapshot is newer than the state
// (the state was lost or replaced).
func New(cfg Config) (*Raft, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.defaults()
	logger := cfg.Logger
	id := cfg.Network.LocalID()
	logger = logger.With("raft_id", id)
	hc := newHCLog(logger, cfg.LogLevel)

	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.SnapshotDir, snapshotRetain, hc.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("consensus: snapshot store in %s: %w", cfg.SnapshotDir, err)
	}
	restore, err := needsRestore(cfg.State, snaps, logger)
	if err != nil {
		return nil, err
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = hc
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NoSnapshotRestoreOnStart = !restore
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}

	logs, err := raft.NewLogCache(logCacheSize, raftLog{cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("consensus: log cache: %w", err)
	}

	stream, err := newStreamLayer(cfg.Network, cfg.PeerAllowed)
	if err != nil {
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  hc.Named("transport"),
	})

	cfg.FSM.start(logger)
	stable := &stableAfterShutdown{StableStore: cfg.Stable}
	r, err := raft.NewRaft(rc, cfg.FSM, logs, stable, snaps, trans)
	if err != nil {
		_ = trans.Close()
		return nil, fmt.Errorf("consensus: start raft: %w", err)
	}
	out := &Raft{raft: r, trans: trans, stream: stream, id: id, log: logger, stable: stable, logs: logs, fsm: cfg.FSM, state: cfg.State}

	if cfg.Bootstrap {
		if err := out.bootstrap(logs, cfg.Stable, snaps); err != nil {
			_ = out.Shutdown()
			return nil, err
		}
	}
	return out, nil
}

func (c *Config) check() error {
	var missing []string
	if c.Network == nil {
		missing = append(missing, "Network")
	}
	if c.Log == nil {
		missing = append(missing, "Log")
	}
	if c.Stable == nil {
		missing = append(missing, "Stable")
	}
	if c.FSM == nil {
		missing = append(missing, "FSM")
	}
	if c.SnapshotDir == "" {
		missing = append(missing, "SnapshotDir")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %v", ErrBadConfig, missing)
	}
	if c.Network.LocalID() == "" {
		return fmt.Errorf("%w: Network.LocalID is empty", ErrBadConfig)
	}
	if c.State == nil {
		c.State = c.FSM.state
	} else if !sameState(c.State, c.FSM.state) {
		return fmt.Errorf("%w: State is not the StateStore that FSM drives", ErrBadConfig)
	}
	return nil
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LogLevel == nil {
		c.LogLevel = slog.LevelWarn
	}
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	set(&c.ElectionTimeout, DefaultElectionTimeout)
	set(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	set(&c.CommitTimeout, DefaultCommitTimeout)
	set(&c.SnapshotInterval, DefaultSnapshotInterval)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
}

// needsRestore decides whether Raft must restore the latest snapshot on
// start. Skipping it is only safe when the state already holds everything
// up to the snapshot: Raft will not replay entries at or below it.
func needsRestore(state StateStore, snaps raft.SnapshotStore, log *slog.Logger) (bool, error) {
	metas, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("consensus: list snapshots: %w", err)
	}
	if state.NeedsRestore() {
		if len(metas) == 0 {
			log.Warn("consensus: state needs a restore but there is no snapshot; replaying the log")
		}
		return true, nil
	}
	if len(metas) > 0 && metas[0].Index > state.AppliedIndex() {
		log.Warn("consensus: latest snapshot is newer than the state; restoring it",
			"snapshot_index", metas[0].Index, "applied_index", state.AppliedIndex())
		return true, nil
	}
	return false, nil
}

func (r *Raft) bootstrap(logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) error {
	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("consensus: bootstrap: check existing state: %w", err)
	}
	if has {
		return nil
	}
	f := r.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(r.id),
		Address:  raft.ServerAddress(r.id),
	}}})
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("consensus: bootstrap: %w", err)
	}
	r.log.Info("consensus: bootstrapped a one-voter cluster")
	return nil
}

// ID returns our ServerID (Network.LocalID).
func (r *Raft) ID() string { return r.id }

// Apply proposes cmd and waits until it is applied on this node (the
// leader), returning the handler's result and the entry's index.
//
// If the handler's result is an error, it is returned as err with index set:
// the entry was committed (and rejected identically on every node). On
// another node Apply returns a *NotLeaderError. If ctx ends first, Apply
// returns ctx's error, but the command may still be committed later.
func (r *Raft) Apply(ctx context.Context, cmd Command) (result any, index uint64, err error) {
	data := cmd.Encode()
	if len(data) > MaxCommandSize {
		return nil, 0, fmt.Errorf("%w: %d bytes, at most %d", ErrCommandTooLarge, len(data), MaxCommandSize)
	}
	var f raft.ApplyFuture
	err = r.await(ctx, "apply", func(timeout time.Duration) error {
		f = r.raft.Apply(data, timeout)
		return f.Error()
	})
	if err != nil {
		return nil, 0, err
	}
	result, index = f.Response(), f.Index()
	if e, ok := result.(error); ok {
		return nil, index, e
	}
	return result, index, nil
}

// await runs op (a raft call given the time left before ctx's deadline, 0
// for none, and waiting on its future) until it returns or ctx ends, and
// maps raft's errors to ours. A raft future cannot be cancelled: on ctx's
// end op finishes in the background.
func (r *Raft) await(ctx context.Context, what string, op func(timeout time.Duration) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("consensus: %s: %w", what, err)
	}
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- op(timeout) }()
	select {
	case err := <-done:
		return r.mapErr(what, err)
	case <-ctx.Done():
		return fmt.Errorf("consensus: %s: %w", what, ctx.Err())
	}
}

func (r *Raft) mapErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return &NotLeaderError{Leader: r.Leader()}
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %s", ErrLeadershipLost, what)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %s", ErrShutdown, what)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("consensus: %s: %w", what, context.DeadlineExceeded)
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		return ErrNothingToSnapshot
	default:
		return fmt.Errorf("consensus: %s: %w", what, err)
	}
}

// Leader returns the current leader's ID, "" when none is known.
func (r *Raft) Leader() string {
	_, id := r.raft.LeaderWithID()
	return string(id)
}

// IsLeader reports whether this node is the leader. Leadership can be lost
// at any moment; use Barrier for a linearizable check.
func (r *Raft) IsLeader() bool { return r.raft.State() == raft.Leader }

// State returns StateFollower, StateCandidate, StateLeader or
// StateShutdown.
func (r *Raft) State() string { return stateName(r.raft.State()) }

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return StateLeader
	case raft.Candidate:
		return StateCandidate
	case raft.Shutdown:
		return StateShutdown
	default:
		return StateFollower
	}
}

// Stats is a snapshot of this node's view of the cluster, for metrics and
// status pages.
type Stats struct {
	State  string
	Leader string
	Term   uint64
	// LastIndex is the last entry in our log; CommitIndex the last known
	// committed; AppliedIndex the last handed to the FSM. AppliedIndex
	// counts entries the FSM never sees (barriers, configuration changes):
	// compare StateStore.AppliedIndex for the state.
	LastIndex, CommitIndex, AppliedIndex uint64
	// LastContact is when a follower last heard from the leader (zero on
	// the leader and before any contact).
	LastContact time.Time
	// Voters and NonVoters are the IDs in the latest configuration.
	Voters, NonVoters []string
}

// Stats returns the current Stats.
func (r *Raft) Stats() Stats {
	s := Stats{
		State:        r.State(),
		Leader:       r.Leader(),
		Term:         r.raft.CurrentTerm(),
		LastIndex:    r.raft.LastIndex(),
		CommitIndex:  r.raft.CommitIndex(),
		AppliedIndex: r.raft.AppliedIndex(),
		LastContact:  r.raft.LastContact(),
	}
	if servers, err := r.Servers(); err == nil {
		for _, sv := range servers {
			if sv.Voter {
				s.Voters = append(s.Voters, sv.ID)
			} else {
				s.NonVoters = append(s.NonVoters, sv.ID)
			}
		}
	}
	return s
}

// Server is a member of the cluster configuration.
type Server struct {
	ID    string
	Voter bool
}

// Servers returns the latest cluster configuration (possibly not yet
// committed), in configuration order.
func (r *Raft) Servers() ([]Server, error) {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, r.mapErr("get configuration", err)
	}
	cfg := f.Configuration()
	out := make([]Server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, Server{ID: string(s.ID), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddVoter adds peer id as a voter and waits until the change is committed;
// the peer must be running Raft (without Bootstrap) and reachable through
// the Network. Leader only. A peer that already is a voter is left alone.
func (r *Raft) AddVoter(ctx context.Context, id string) error {
	return r.change(ctx, "add voter", id, func(s Server, ok bool) bool { return ok && s.Voter },
		func(timeout time.Duration) raft.Future {
			return r.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, timeout)
		})
}

// RemoveServer removes peer id from the cluster and waits until the change
// is committed. Leader only. An unknown id is not an error. A removed node
// shuts its Raft down once it learns of its removal.
func (r *Raft) RemoveServer(ctx context.Context, id string) error {
	return r.change(ctx, "remove server", id, func(_ Server, ok bool) bool { return !ok },
		func(timeout time.Duration) raft.Future {
			return r.raft.RemoveServer(raft.ServerID(id), 0, timeout)
		})
}

// change makes one configuration change for peer id and waits until it is
// committed. Leader only. done reports, from id's entry in the latest
// configuration (ok: it has one), that the change is made already: then
// nothing is proposed.
func (r *Raft) change(ctx context.Context, what, id string, done func(s Server, ok bool) bool, op func(timeout time.Duration) raft.Future) error {
	if !r.IsLeader() {
		return &NotLeaderError{Leader: r.Leader()}
	}
	servers, err := r.Servers()
	if err != nil {
		return err
	}
	var cur Server
	found := false
	for _, s := range servers {
		if s.ID == id {
			cur, found = s, true
		}
	}
	if done(cur, found) {
		return nil
	}
	return r.await(ctx, what+" "+id, func(timeout time.Duration) error { return op(timeout).Error() })
}

// Barrier waits until every entry committed before it is applied to our
// FSM. Leader only; on success we were the leader when it committed, so
// the state read next is at least as new as any write acknowledged before.
func (r *Raft) Barrier(ctx context.Context) error {
	return r.await(ctx, "barrier", func(timeout time.Duration) error {
		return r.raft.Barrier(timeout).Error()
	})
}

// Snapshot takes a snapshot now and trims the log (keeping TrailingLogs
// entries). It returns ErrNothingToSnapshot when nothing was applied since
// the last one.
func (r *Raft) Snapshot() error {
	return r.mapErr("snapshot", r.raft.Snapshot().Error())
}

// Shutdown stops Raft and closes its connections and listener. It is
// idempotent; the stores are the caller's to close afterwards.
func (r *Raft) Shutdown() error {
	r.shutdownOnce.Do(func() {
		err := r.raft.Shutdown().Error()
		// Shutdown closes the transport (and so our stream layer) already;
		// closing again is a no-op that makes it explicit.
		_ = r.trans.Close()
		r.stable.down.Store(true)
		if err != nil {
			r.shutdownErr = fmt.Errorf("consensus: shutdown: %w", err)
		}
	})
	return r.shutdownErr
}
