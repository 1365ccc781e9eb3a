package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/bundle"
)

// Bundles for the edge: the agreed graph at one version with its
// checkpoint, an inclusion proof per declaration, a deadline, and the
// signatures of this node's authority and of any members asked to cosign.

// Bounds of bundle export.
const (
	// DefaultBundleMaxAge is how long a bundle stays fresh unless the
	// exporter says otherwise.
	DefaultBundleMaxAge = 24 * time.Hour
	// MaxBundleMaxAge bounds a bundle's freshness: an edge site must come
	// back for a new one at least this often.
	MaxBundleMaxAge = 90 * 24 * time.Hour
	// ProtoCosign asks a member to cosign a bundle of the graph it holds.
	ProtoCosign = "/fednode/cosign/1"
	// maxCosignFrame bounds a cosign request or response: a whole bundle.
	maxCosignFrame = bundle.MaxBundleSize
	cosignTimeout  = 60 * time.Second
	// cosignCatchUp is how long a cosigner waits for its replica to reach
	// the bundle's version before it refuses.
	cosignCatchUp = 5 * time.Second
)

// ExportOptions say what bundle to export.
type ExportOptions struct {
	// MaxAge is how long the bundle is fresh from its export; zero:
	// DefaultBundleMaxAge.
	MaxAge time.Duration
	// Cosign lists authorities (names or IDs) whose nodes must cosign: the
	// export fails unless each one did.
	Cosign []string
	// BaseVersion, if non-zero, makes a delta bundle carrying only the
	// declarations after that version (it opens on top of a bundle of it).
	BaseVersion uint64
}

// ExportBundle signs the agreed graph at its current version for offline
// use. It refuses while this node holds split-view evidence.
func (n *Node) ExportBundle(ctx context.Context, o ExportOptions) ([]byte, error) {
	if ev := n.SplitView(); ev != nil {
		return nil, fmt.Errorf("%w: this node has evidence of two roots for one log size; an operator must investigate before it exports bundles (see status)", ErrSplitView)
	}
	maxAge := o.MaxAge
	if maxAge == 0 {
		maxAge = DefaultBundleMaxAge
	}
	if maxAge < 0 || maxAge > MaxBundleMaxAge {
		return nil, fmt.Errorf("node: bundle: max age %s: want more than 0 and at most %s", maxAge, MaxBundleMaxAge)
	}
	if !n.store.Has(n.home.Authority) {
		return nil, fmt.Errorf("node: bundle: this node's authority %s is not in the agreed graph yet (has the node joined?)", n.home.Authority.Short())
	}
	cp, _, err := n.WitnessedCheckpoint()
	if err != nil {
		return nil, fmt.Errorf("node: bundle: %w", err)
	}
	if o.BaseVersion >= cp.Size {
		return nil, fmt.Errorf("node: bundle: base version %d: the graph is at version %d, so there is nothing newer to carry", o.BaseVersion, cp.Size)
	}
	envs := make([][]byte, 0, cp.Size-o.BaseVersion)
	err = n.store.Declarations(o.BaseVersion, cp.Size, func(_ uint64, env []byte) error {
		envs = append(envs, append([]byte(nil), env...))
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := n.now()
	c := bundle.Contents{
		GraphVersion: cp.Size,
		ExportedAt:   now.UnixMilli(),
		NotAfter:     now.Add(maxAge).UnixMilli(),
		Origin:       cp.Origin,
		Checkpoint:   []byte(cp.Note),
		Declarations: envs,
		BaseVersion:  o.BaseVersion,
	}
	prove := func() error { return c.ProveFull(cp.Root) }
	if o.BaseVersion > 0 {
		prove = func() error { return c.Prove(n.store.LogNodes()) }
	}
	if err := prove(); err != nil {
		return nil, fmt.Errorf("node: bundle: %w", err)
	}
	signer, err := n.bundleSigner()
	if err != nil {
		return nil, err
	}
	b, err := bundle.Build(c, signer)
	if err != nil {
		return nil, fmt.Errorf("node: bundle: %w", err)
	}
	if len(o.Cosign) == 0 {
		return b, nil
	}
	if o.BaseVersion > 0 {
		return nil, errors.New("node: bundle: a delta bundle is signed by its exporter only: cosign the full bundle instead")
	}
	return n.collectCosignatures(ctx, b, o.Cosign)
}

func (n *Node) bundleSigner() (bundle.Signer, error) {
	key, err := n.signingKey()
	if err != nil {
		return bundle.Signer{}, fmt.Errorf("node: bundle: %w", err)
	}
	s := bundle.Signer{Name: n.home.Config.Name, ID: n.home.Authority, Key: key}
	n.store.View(func(v authority.View) {
		if a, ok := v.Authority(n.home.Authority); ok {
			s.Roots = a.RootKeys
		}
	})
	return s, nil
}

// collectCosignatures asks connected peers to cosign until every wanted
// authority has.
func (n *Node) collectCosignatures(ctx context.Context, b []byte, refs []string) ([]byte, error) {
	want := map[authority.ID]string{}
	var resolveErr error
	n.store.View(func(v authority.View) {
		for _, ref := range refs {
			id, err := authority.ResolveAuthority(v, ref)
			if err != nil {
				resolveErr = fmt.Errorf("node: bundle: cosigner %q: %w", ref, err)
				return
			}
			if a, _ := v.Authority(id); a != nil {
				want[id] = a.Name
			}
		}
	})
	if resolveErr != nil {
		return nil, resolveErr
	}
	delete(want, n.home.Authority)
	ctx, cancel := context.WithTimeout(ctx, cosignTimeout)
	defer cancel()
	// Members are the Raft servers; connected peers may include others.
	// Learn and dial the servers first, so a member only just admitted to
	// the cluster can be asked too.
	n.refreshDirectory(0)
	peers := n.host.ConnectedPeers()
	if servers, err := n.raft.Servers(); err == nil {
		for _, sv := range servers {
			if sv.ID != n.host.PeerID() && !slices.Contains(peers, sv.ID) {
				peers = append(peers, sv.ID)
			}
		}
	}
	for _, peer := range peers {
		if len(want) == 0 {
			break
		}
		wanted := make([]authority.ID, 0, len(want))
		for id := range want {
			wanted = append(wanted, id)
		}
		var resp cosignResponse
		if err := n.callBig(ctx, peer, cosignRequest{Bundle: b, Want: wanted}, &resp); err != nil {
			n.log.Debug("cosign", "peer", peer, "err", err)
			continue
		}
		if resp.Error != "" || len(resp.Bundle) == 0 {
			n.log.Debug("cosign refused", "peer", peer, "err", resp.Error)
			continue
		}
		if _, err := bundle.Open(resp.Bundle, bundle.Policy{Trust: []authority.ID{resp.Authority}}); err != nil {
			n.log.Warn("a peer returned a cosigned bundle that does not verify", "peer", peer, "err", err)
			continue
		}
		b = resp.Bundle
		delete(want, resp.Authority)
	}
	if len(want) > 0 {
		var missing []string
		for _, name := range want {
			missing = append(missing, name)
		}
		slices.Sort(missing)
		return nil, fmt.Errorf("node: bundle: no cosignature from %v (are their nodes connected and at this graph version?)", missing)
	}
	return b, nil
}

type cosignRequest struct {
	Bundle []byte         `cbor:"1,keyasint"`
	Want   []authority.ID `cbor:"2,keyasint"`
}

type cosignResponse struct {
	Bundle    []byte       `cbor:"1,keyasint,omitempty"`
	Authority authority.ID `cbor:"2,keyasint,omitzero"`
	Error     string       `cbor:"3,keyasint,omitempty"`
}

// handleCosign cosigns a bundle only if it verifies and its checkpoint root
// is this replica's root at that version: a witness vouches for what it
// holds, never for what it is told.
func (n *Node) handleCosign(remote string, c net.Conn) {
	var req cosignRequest
	if err := readFrameMax(c, &req, maxCosignFrame); err != nil {
		n.log.Debug("cosign: bad request", "from", remote, "err", err)
		return
	}
	resp := n.cosign(req)
	_ = writeFrameMax(c, resp, maxCosignFrame)
}

func (n *Node) cosign(req cosignRequest) cosignResponse {
	fail := func(format string, args ...any) cosignResponse {
		return cosignResponse{Authority: n.home.Authority, Error: fmt.Sprintf(format, args...)}
	}
	if !slices.Contains(req.Want, n.home.Authority) {
		return fail("cosign: %s was not asked", n.home.Config.Name)
	}
	if ev := n.SplitView(); ev != nil {
		return fail("cosign: this node holds split-view evidence")
	}
	b, err := bundle.Open(req.Bundle, bundle.Policy{})
	if err != nil {
		return fail("cosign: %v", err)
	}
	origin, err := n.LogOrigin()
	if err != nil || b.Head.Origin != origin {
		return fail("cosign: the bundle is of log %q, this node keeps %q", b.Head.Origin, origin)
	}
	// The exporter may be a little ahead of this replica: give Raft a
	// moment to bring it to the bundle's version.
	for deadline := time.Now().Add(cosignCatchUp); b.GraphVersion > n.store.Version() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if b.GraphVersion > n.store.Version() {
		return fail("cosign: the bundle is at graph version %d, this replica at %d", b.GraphVersion, n.store.Version())
	}
	root, err := n.store.LogRootAt(b.GraphVersion)
	if err != nil || string(root) != string(b.Head.Root) {
		return fail("cosign: the bundle's root at version %d is not this replica's", b.GraphVersion)
	}
	signer, err := n.bundleSigner()
	if err != nil {
		return fail("cosign: %v", err)
	}
	out, err := bundle.Cosign(req.Bundle, signer)
	if err != nil {
		return fail("cosign: %v", err)
	}
	return cosignResponse{Bundle: out, Authority: n.home.Authority}
}

// callBig is call for the cosign protocol, whose messages are bundles.
func (n *Node) callBig(ctx context.Context, peer string, req, resp any) error {
	c, err := n.host.Dial(ctx, peer, ProtoCosign)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := writeFrameMax(c, req, maxCosignFrame); err != nil {
		return fmt.Errorf("node: %s to %s: %w", ProtoCosign, peer, err)
	}
	if err := readFrameMax(c, resp, maxCosignFrame); err != nil {
		return fmt.Errorf("node: %s from %s: %w", ProtoCosign, peer, err)
	}
	return nil
}
