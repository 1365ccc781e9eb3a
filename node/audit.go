package node

// The auditor's interface: checkpoints of this replica's transparency log,
// inclusion and consistency proofs, and the whole log as JSON lines. The log
// itself is chainstore's (leaf i = the declaration at graph version i+1);
// this file only reads it, signs checkpoints with the home's authority key,
// and serves both over the API.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/chainstore"
	"github.com/fednode/fednode/tlog"
)

// Errors of the audit methods, mapped to HTTP statuses by the API (503, 404
// and 400). Each is returned wrapped; use errors.Is.
var (
	// ErrEmptyLog: the replica holds no declaration yet, so there is no log
	// name and nothing to sign (the node has not joined a consortium).
	ErrEmptyLog = errors.New("node: the transparency log is empty")
	// ErrNotInLog: the declaration is not in this replica's log (unknown,
	// or not agreed here yet).
	ErrNotInLog = errors.New("node: declaration not in the transparency log")
	// ErrBadSize: a tree size beyond this replica's log, an old size above
	// the new one, or a leaf that the requested tree does not contain.
	ErrBadSize = errors.New("node: tree size out of range")
)

// exportPage is how many declarations ExportLog reads per store
// transaction: it copies a page out and writes it to the client outside the
// transaction, so that a slow reader never holds a badger read transaction
// open for long (at most 128 × 64 KiB in memory).
const exportPage = 128

// logNameBytes is how many leading bytes of the founder's genesis ID name the
// consortium's log.
const logNameBytes = 8

// HexBytes is a byte string that JSON renders as lowercase hex (hashes in
// the audit API; envelopes stay base64).
type HexBytes []byte

// MarshalText implements encoding.TextMarshaler.
func (h HexBytes) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(len(h)))
	hex.Encode(out, h)
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HexBytes) UnmarshalText(b []byte) error {
	out := make([]byte, hex.DecodedLen(len(b)))
	if _, err := hex.Decode(out, b); err != nil {
		return fmt.Errorf("node: hex: %w", err)
	}
	*h = out
	return nil
}

// CheckpointJSON is a signed checkpoint of this replica's log: the JSON of
// GET /v1/audit/checkpoint and the trailer of an export. Note is the C2SP
// signed note (tlog.SignCheckpoint) whose body holds Origin, Size and Root.
type CheckpointJSON struct {
	Origin string   `json:"origin"`
	Size   uint64   `json:"size"`
	Root   HexBytes `json:"root"`
	Note   string   `json:"note"`
	// Signers names the authorities whose signatures on Note verified:
	// this node's and those of the peers that witnessed the same root.
	Signers []string `json:"signers,omitempty"`
}

// InclusionJSON is the JSON of GET /v1/audit/prove/{id}: the declaration's
// envelope, its leaf index and hash, and the RFC 9162 audit path from it to
// the root of the tree of TreeSize leaves.
type InclusionJSON struct {
	ID       authority.ID `json:"id"`
	Index    uint64       `json:"index"`
	TreeSize uint64       `json:"tree_size"`
	LeafHash HexBytes     `json:"leaf_hash"`
	Proof    []HexBytes   `json:"proof"`
	Root     HexBytes     `json:"root"`
	Envelope []byte       `json:"envelope"` // base64 (standard encoding)
}

// ConsistencyJSON is the JSON of GET /v1/audit/consistency: the RFC 9162
// consistency proof between the trees of OldSize and NewSize leaves.
type ConsistencyJSON struct {
	OldSize uint64     `json:"old_size"`
	NewSize uint64     `json:"new_size"`
	OldRoot HexBytes   `json:"old_root"`
	NewRoot HexBytes   `json:"new_root"`
	Proof   []HexBytes `json:"proof"`
}

// ExportEntry is one line of an export (GET /v1/audit/export): leaf Index of
// the log. Authority is the authority the declaration belongs to: its issuer,
// or for a genesis the authority it founds (its own ID). Kind, Authority and
// Seq repeat what the envelope says, for readers that do not decode COSE.
// A public wire format: ARCHITECTURE.md documents it.
type ExportEntry struct {
	Index     uint64       `json:"index"`
	ID        authority.ID `json:"id"`
	Kind      string       `json:"kind"`
	Authority authority.ID `json:"authority"`
	Seq       uint64       `json:"seq"`
	LeafHash  HexBytes     `json:"leaf_hash"`
	Envelope  []byte       `json:"envelope"` // base64 (standard encoding)
}

// ExportTrailer is the last line of an export: the signed checkpoint of
// exactly the entries before it.
type ExportTrailer struct {
	Checkpoint CheckpointJSON `json:"checkpoint"`
}

// auditState caches what checkpoints need. The zero value is ready.
type auditState struct {
	mu sync.Mutex
	// origin is the log's checkpoint origin, "" until the first declaration
	// is agreed. Invariant: once set it never changes (version 1 is the
	// founder's genesis at every replica).
	origin string
	// last is the most recently signed checkpoint, by size; last.Size == 0
	// means none. Invariant: last.Root is the log's root at last.Size.
	last CheckpointJSON
}

// LogOrigin is the checkpoint origin of the consortium's log:
// tlog.Origin of the hex of the first 8 bytes of the ID of the declaration
// at graph version 1 (the founder's genesis), the same at every node.
func (n *Node) LogOrigin() (string, error) {
	n.audit.mu.Lock()
	defer n.audit.mu.Unlock()
	return n.logOriginLocked()
}

func (n *Node) logOriginLocked() (string, error) {
	if n.audit.origin != "" {
		return n.audit.origin, nil
	}
	var first authority.ID
	found := false
	err := n.store.Declarations(0, 1, func(_ uint64, env []byte) error {
		first, found = authority.IDOf(env), true
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("node: log origin: %w", err)
	}
	if !found {
		return "", fmt.Errorf("%w: no declaration is agreed here yet, so the log has no name (has the node joined?)", ErrEmptyLog)
	}
	n.audit.origin = tlog.Origin(hex.EncodeToString(first[:logNameBytes]))
	return n.audit.origin, nil
}

// Checkpoint returns the signed checkpoint of this replica's log at its
// current size (the graph version). Signing is cached per size, so polling
// costs one signature per new version at most. ErrEmptyLog before any
// declaration is agreed.
func (n *Node) Checkpoint() (CheckpointJSON, error) {
	size, root, err := n.store.LogRoot()
	if err != nil {
		return CheckpointJSON{}, fmt.Errorf("node: checkpoint: %w", err)
	}
	return n.checkpoint(size, root)
}

// checkpointAt returns the signed checkpoint of the log at a size it has
// reached (the current one or a past one).
func (n *Node) checkpointAt(size uint64) (CheckpointJSON, error) {
	n.audit.mu.Lock()
	if c := n.audit.last; c.Size == size && size > 0 {
		n.audit.mu.Unlock()
		return c.clone(), nil
	}
	n.audit.mu.Unlock()
	if size == 0 {
		return CheckpointJSON{}, fmt.Errorf("%w: nothing to sign at size 0", ErrEmptyLog)
	}
	root, err := n.store.LogRootAt(size)
	if err != nil {
		return CheckpointJSON{}, sizeErr(fmt.Errorf("node: checkpoint at %d: %w", size, err))
	}
	return n.checkpoint(size, root)
}

func (n *Node) checkpoint(size uint64, root []byte) (CheckpointJSON, error) {
	n.audit.mu.Lock()
	defer n.audit.mu.Unlock()
	if c := n.audit.last; c.Size == size && size > 0 {
		return c.clone(), nil
	}
	if size == 0 {
		return CheckpointJSON{}, fmt.Errorf("%w: nothing to sign at size 0", ErrEmptyLog)
	}
	origin, err := n.logOriginLocked()
	if err != nil {
		return CheckpointJSON{}, err
	}
	cp := tlog.Checkpoint{Origin: origin, Size: size, Root: root}
	key, err := n.signingKey()
	if err != nil {
		return CheckpointJSON{}, fmt.Errorf("node: checkpoint: %w", err)
	}
	note, err := tlog.SignCheckpoint(cp, n.home.Config.Name, key)
	if err != nil {
		return CheckpointJSON{}, fmt.Errorf("node: checkpoint: %w", err)
	}
	c := CheckpointJSON{Origin: origin, Size: size, Root: bytes.Clone(root), Note: string(note)}
	// Keep the newest: that is what pollers and exports ask for.
	if size >= n.audit.last.Size {
		n.audit.last = c
	}
	return c.clone(), nil
}

func (c CheckpointJSON) clone() CheckpointJSON {
	c.Root = bytes.Clone(c.Root)
	return c
}

// sizeErr marks chainstore's "beyond the log" as ErrBadSize.
func sizeErr(err error) error {
	if errors.Is(err, chainstore.ErrBeyondLog) {
		return fmt.Errorf("%w: %w", ErrBadSize, err)
	}
	return err
}

// Prove returns the inclusion proof of the agreed declaration id in the log
// of size leaves (0: the current size). ErrNotInLog if this replica does not
// hold id; ErrBadSize if size is beyond the log or below id's leaf.
func (n *Node) Prove(id authority.ID, size uint64) (InclusionJSON, error) {
	cur := n.store.Version()
	if size == 0 {
		size = cur
	}
	if size > cur {
		return InclusionJSON{}, fmt.Errorf("%w: size %d, the log has %d leaves", ErrBadSize, size, cur)
	}
	index, err := n.store.LogIndex(id)
	if errors.Is(err, chainstore.ErrNotFound) {
		return InclusionJSON{}, fmt.Errorf("%w: %w", ErrNotInLog, err)
	}
	if err != nil {
		return InclusionJSON{}, fmt.Errorf("node: prove %s: %w", id.Short(), err)
	}
	if index >= size {
		return InclusionJSON{}, fmt.Errorf("%w: declaration %s is leaf %d, not in the tree of %d leaves", ErrBadSize, id.Short(), index, size)
	}
	proof, err := n.store.InclusionProof(index, size)
	if err != nil {
		return InclusionJSON{}, sizeErr(fmt.Errorf("node: prove %s: %w", id.Short(), err))
	}
	root, err := n.store.LogRootAt(size)
	if err != nil {
		return InclusionJSON{}, sizeErr(fmt.Errorf("node: prove %s: %w", id.Short(), err))
	}
	env, err := n.store.Declaration(id)
	if err != nil {
		return InclusionJSON{}, fmt.Errorf("node: prove %s: %w", id.Short(), err)
	}
	return InclusionJSON{ID: id, Index: index, TreeSize: size, LeafHash: tlog.LeafHash(env),
		Proof: hexList(proof), Root: root, Envelope: env}, nil
}

// Consistency returns the consistency proof from the log at oldSize to the
// log at newSize. ErrBadSize if oldSize > newSize or newSize is beyond the
// log.
func (n *Node) Consistency(oldSize, newSize uint64) (ConsistencyJSON, error) {
	if oldSize > newSize {
		return ConsistencyJSON{}, fmt.Errorf("%w: old size %d is above new size %d", ErrBadSize, oldSize, newSize)
	}
	if cur := n.store.Version(); newSize > cur {
		return ConsistencyJSON{}, fmt.Errorf("%w: new size %d, the log has %d leaves", ErrBadSize, newSize, cur)
	}
	proof, err := n.store.ConsistencyProof(oldSize, newSize)
	if err != nil {
		return ConsistencyJSON{}, sizeErr(fmt.Errorf("node: consistency: %w", err))
	}
	oldRoot, err := n.store.LogRootAt(oldSize)
	if err != nil {
		return ConsistencyJSON{}, sizeErr(fmt.Errorf("node: consistency: %w", err))
	}
	newRoot, err := n.store.LogRootAt(newSize)
	if err != nil {
		return ConsistencyJSON{}, sizeErr(fmt.Errorf("node: consistency: %w", err))
	}
	return ConsistencyJSON{OldSize: oldSize, NewSize: newSize, OldRoot: oldRoot, NewRoot: newRoot, Proof: hexList(proof)}, nil
}

func hexList(hashes [][]byte) []HexBytes {
	out := make([]HexBytes, len(hashes))
	for i, h := range hashes {
		out[i] = h
	}
	return out
}

// ExportLog writes the whole log as JSON lines (one ExportEntry per leaf, in
// index order, then an ExportTrailer with the signed checkpoint of exactly
// those entries) to w. The size is fixed when it starts: declarations agreed
// meanwhile are not in this export. On an error after the first line, w
// holds a prefix without the trailer, which no verifier accepts.
func (n *Node) ExportLog(ctx context.Context, w io.Writer) error {
	size, cp, err := n.exportBegin()
	if err != nil {
		return err
	}
	return n.exportWrite(ctx, w, size, cp)
}

// exportBegin fixes the export's size and signs its checkpoint before
// anything is written, so the API can still answer an error status.
func (n *Node) exportBegin() (uint64, CheckpointJSON, error) {
	size := n.store.Version()
	if size == 0 {
		return 0, CheckpointJSON{}, fmt.Errorf("%w: nothing to export", ErrEmptyLog)
	}
	cp, err := n.checkpointAt(size)
	if err != nil {
		return 0, CheckpointJSON{}, err
	}
	return size, cp, nil
}

func (n *Node) exportWrite(ctx context.Context, w io.Writer, size uint64, cp CheckpointJSON) error {
	enc := json.NewEncoder(w) // no indent: one JSON value per line
	page := make([]ExportEntry, 0, exportPage)
	next := uint64(0)
	for next < size {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("node: export: %w", err)
		}
		page = page[:0]
		upTo := min(next+exportPage, size)
		err := n.store.Declarations(next, upTo, func(version uint64, env []byte) error {
			if want := next + uint64(len(page)) + 1; version != want {
				return fmt.Errorf("%w: version %d where %d was due", chainstore.ErrCorrupt, version, want)
			}
			sd, err := authority.Parse(env) // copies env: it outlives the transaction
			if err != nil {
				return fmt.Errorf("%w: version %d: %w", chainstore.ErrCorrupt, version, err)
			}
			owner := sd.Decl.Authority
			if sd.Decl.Kind == authority.KindGenesis {
				owner = sd.ID
			}
			page = append(page, ExportEntry{Index: version - 1, ID: sd.ID, Kind: sd.Decl.Kind.String(),
				Authority: owner, Seq: sd.Decl.Seq, LeafHash: tlog.LeafHash(sd.Raw), Envelope: sd.Raw})
			return nil
		})
		if err == nil && uint64(len(page)) != upTo-next {
			err = fmt.Errorf("%w: versions %d to %d hold %d declarations", chainstore.ErrCorrupt, next+1, upTo, len(page))
		}
		if err != nil {
			return fmt.Errorf("node: export: %w", err)
		}
		for i := range page {
			if err := enc.Encode(&page[i]); err != nil {
				return fmt.Errorf("node: export: write: %w", err)
			}
		}
		next = upTo
	}
	if err := enc.Encode(ExportTrailer{Checkpoint: cp}); err != nil {
		return fmt.Errorf("node: export: write: %w", err)
	}
	return nil
}

// auditStatus maps the audit errors to HTTP statuses.
func auditStatus(err error) int {
	switch {
	case errors.Is(err, ErrEmptyLog):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNotInLog):
		return http.StatusNotFound
	case errors.Is(err, ErrBadSize):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// querySize reads an optional decimal tree size from the query; def when
// absent.
func querySize(r *http.Request, key string, def uint64) (uint64, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a decimal tree size: %w", key, s, err)
	}
	return v, nil
}

func (n *Node) handleAuditCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, signers, err := n.WitnessedCheckpoint()
	if err != nil {
		writeJSON(w, auditStatus(err), apiError{err.Error()})
		return
	}
	cp.Signers = signers
	writeJSON(w, http.StatusOK, cp)
}

func (n *Node) handleAuditProve(w http.ResponseWriter, r *http.Request) {
	id, err := authority.ParseID(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"prove: " + err.Error()})
		return
	}
	size, err := querySize(r, "size", 0)
	if err == nil && size == 0 && r.URL.Query().Has("size") {
		err = errors.New("size=0: the empty tree contains no declaration")
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"prove: " + err.Error()})
		return
	}
	p, err := n.Prove(id, size)
	if err != nil {
		writeJSON(w, auditStatus(err), apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (n *Node) handleAuditConsistency(w http.ResponseWriter, r *http.Request) {
	if !r.URL.Query().Has("old") {
		writeJSON(w, http.StatusBadRequest, apiError{"consistency: old=SIZE is required (new=SIZE defaults to the current size)"})
		return
	}
	oldSize, err := querySize(r, "old", 0)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"consistency: " + err.Error()})
		return
	}
	newSize, err := querySize(r, "new", n.store.Version())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"consistency: " + err.Error()})
		return
	}
	p, err := n.Consistency(oldSize, newSize)
	if err != nil {
		writeJSON(w, auditStatus(err), apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (n *Node) handleAuditExport(w http.ResponseWriter, r *http.Request) {
	size, cp, err := n.exportBegin()
	if err != nil {
		writeJSON(w, auditStatus(err), apiError{err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if err := n.exportWrite(r.Context(), w, size, cp); err != nil {
		if r.Context().Err() != nil {
			n.log.Debug("audit export: the client went away", "size", size, "err", err)
		} else {
			n.log.Warn("audit export stopped", "size", size, "err", err)
		}
		// Cut the connection so the client sees a broken response, not a
		// clean end: a prefix without its trailer must not look complete.
		panic(http.ErrAbortHandler)
	}
}
