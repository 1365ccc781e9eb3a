package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/fednode/fednode/authority"
)

// Consistency is how fresh a read of the agreed graph must be. A public
// interface: the API's "consistency" query parameter takes these values.
type Consistency string

const (
	// ConsistencyLocal reads this replica as it is, stating its graph
	// version, applied Raft index and age. It works with no quorum and no
	// network; verification always reads this way.
	ConsistencyLocal Consistency = "local"
	// ConsistencyLinearizable reads through the leader: the leader
	// confirms with a quorum that it still leads and names its commit
	// index (the read index), and this replica waits until it applied that
	// index, so the read reflects every write acknowledged before it began.
	// It fails (ErrNoQuorum) when Raft has no quorum.
	ConsistencyLinearizable Consistency = "linearizable"
)

// ParseConsistency parses the API's consistency parameter; "" is local.
func ParseConsistency(s string) (Consistency, error) {
	switch Consistency(s) {
	case "", ConsistencyLocal:
		return ConsistencyLocal, nil
	case ConsistencyLinearizable:
		return ConsistencyLinearizable, nil
	}
	return "", fmt.Errorf("%w: consistency %q: want %q or %q", ErrBadConsistency, s, ConsistencyLinearizable, ConsistencyLocal)
}

var (
	// ErrNoQuorum: a linearizable read could not be served because Raft
	// has no leader that a quorum of voters confirms (or it is not
	// reachable from here). Local reads still work.
	ErrNoQuorum = errors.New("node: no Raft quorum for a linearizable read")
	// ErrBadConsistency: the consistency asked for is neither
	// "linearizable" nor "local".
	ErrBadConsistency = errors.New("node: bad consistency")
)

const (
	// ProtoReadIndex asks the leader for a read index (a wire format: keep
	// the ID). Request: an empty CBOR map; response {1: read index, 2:
	// error}.
	ProtoReadIndex = "/fednode/readindex/1"
	// linearizableTimeout bounds a linearizable read when the caller's
	// context has no earlier deadline: without quorum it fails in about
	// this long, rather than hang.
	linearizableTimeout = 5 * time.Second
)

type readIndexResponse struct {
	Index uint64 `cbor:"1,keyasint"`
	Error string `cbor:"2,keyasint,omitempty"`
}

// ReadState says what a read of the agreed graph saw. A public interface:
// JSON responses carry these fields and every read endpoint sets the
// headers of the same names (Fednode-Consistency, Fednode-Graph-Version,
// Fednode-Applied-Index, Fednode-Graph-Age-Ms, Fednode-Read-Index).
type ReadState struct {
	Consistency Consistency `json:"consistency"`
	// GraphVersion is the version of the graph the read returned.
	GraphVersion uint64 `json:"graph_version"`
	// AppliedIndex is the Raft index this replica had applied when the
	// read was taken; what was read is at least that new.
	AppliedIndex uint64 `json:"applied_index"`
	// GraphAgeMS is how long ago the graph read was last known to be
	// current: for a local read, since the leader was last heard from (0
	// at the leader); for a linearizable read, since the read began.
	GraphAgeMS int64 `json:"graph_age_ms"`
	// ReadIndex is the leader's confirmed commit index that a linearizable
	// read waited for; 0 for a local read.
	ReadIndex uint64 `json:"read_index,omitempty"`
}

// ReadIndex returns a read index: a Raft index at or above every write
// committed before the call, confirmed by the leader with a quorum. The
// leader answers itself; a follower asks the leader. It fails with
// ErrNoQuorum when no leader is known, reachable or confirmed.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if n.raft.IsLeader() {
		idx, err := n.raft.ReadIndex(ctx)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrNoQuorum, err)
		}
		return idx, nil
	}
	leader := n.raft.Leader()
	if leader == "" || leader == n.host.PeerID() {
		return 0, fmt.Errorf("%w: no leader is known here", ErrNoQuorum)
	}
	var resp readIndexResponse
	if err := n.call(ctx, leader, ProtoReadIndex, struct{}{}, &resp); err != nil {
		return 0, fmt.Errorf("%w: asking the leader %s: %w", ErrNoQuorum, leader, err)
	}
	if resp.Error != "" {
		return 0, fmt.Errorf("%w: the leader %s: %s", ErrNoQuorum, leader, resp.Error)
	}
	return resp.Index, nil
}

// LinearizableRead waits until this replica reflects every write committed
// before the call: it gets a read index (ReadIndex) and waits until the
// local state applied it. Reads of the store after it returns are
// linearizable. Without a deadline in ctx it gives up after
// linearizableTimeout; it fails with ErrNoQuorum when Raft has none.
func (n *Node) LinearizableRead(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, linearizableTimeout)
	defer cancel()
	idx, err := n.ReadIndex(ctx)
	if err != nil {
		return 0, err
	}
	if err := n.raft.WaitApplied(ctx, idx); err != nil {
		return 0, fmt.Errorf("%w: this replica did not reach the read index %d: %w", ErrNoQuorum, idx, err)
	}
	return idx, nil
}

// Read runs fn on a view of the agreed graph with consistency c and says
// what it saw. fn must not retain v, nor call the store's write methods.
// A linearizable read fails with ErrNoQuorum (fn is then not called); a
// local read never fails.
func (n *Node) Read(ctx context.Context, c Consistency, fn func(v authority.View)) (ReadState, error) {
	st := ReadState{Consistency: c}
	start := time.Now()
	asOf := n.graphAsOf()
	switch c {
	case ConsistencyLinearizable:
		idx, err := n.LinearizableRead(ctx)
		if err != nil {
			return st, err
		}
		st.ReadIndex, asOf = idx, start
	case ConsistencyLocal:
	default:
		return st, fmt.Errorf("%w: %q", ErrBadConsistency, c)
	}
	st.AppliedIndex = n.store.AppliedIndex()
	n.store.View(func(v authority.View) {
		st.GraphVersion = v.Version()
		if fn != nil {
			fn(v)
		}
	})
	if age := time.Since(asOf); age > 0 {
		st.GraphAgeMS = age.Milliseconds()
	}
	return st, nil
}

// handleReadIndex answers a follower's ProtoReadIndex at the leader. Only
// Raft servers may ask: each request costs the leader a heartbeat round.
func (n *Node) handleReadIndex(remote string, c net.Conn) {
	var req struct{}
	if err := readFrame(c, &req); err != nil {
		return
	}
	var resp readIndexResponse
	if !n.isServer(remote) {
		resp.Error = "readindex: only Raft servers may ask for a read index; read through a member's API"
	} else {
		ctx, cancel := context.WithTimeout(n.ctx, linearizableTimeout)
		idx, err := n.raft.ReadIndex(ctx)
		cancel()
		if err != nil {
			resp.Error = err.Error()
		}
		resp.Index = idx
	}
	_ = writeFrame(c, resp)
}

// readFor serves the read part of an API request: it parses the
// consistency parameter and reads with it, writing the error response
// itself (400 for a bad parameter, 503 without quorum) and returning false
// when the handler should stop.
func (n *Node) readFor(w http.ResponseWriter, r *http.Request, fn func(v authority.View)) (ReadState, bool) {
	c, err := ParseConsistency(r.URL.Query().Get("consistency"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return ReadState{}, false
	}
	st, err := n.Read(r.Context(), c, fn)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, apiError{"linearizable read refused: " + err.Error() +
			"; retry when Raft has a quorum, or read with consistency=local (this replica, with its version and age)"})
		return st, false
	}
	h := w.Header()
	h.Set("Fednode-Consistency", string(st.Consistency))
	h.Set("Fednode-Graph-Version", strconv.FormatUint(st.GraphVersion, 10))
	h.Set("Fednode-Applied-Index", strconv.FormatUint(st.AppliedIndex, 10))
	h.Set("Fednode-Graph-Age-Ms", strconv.FormatInt(st.GraphAgeMS, 10))
	if st.ReadIndex > 0 {
		h.Set("Fednode-Read-Index", strconv.FormatUint(st.ReadIndex, 10))
	}
	return st, true
}

// Graph, authority and status responses with the read they came from.
type (
	graphRead struct {
		GraphJSON
		ReadState
	}
	authorityRead struct {
		AuthorityStatus
		ReadState
	}
	statusRead struct {
		Status
		ReadState
	}
)
