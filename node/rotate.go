package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fednode/fednode/authority"
)

// Rotating a home's root keys (`fednode rotate`), so that no crash loses a
// key:
//
//  1. NewRotation generates the new keys, in memory.
//  2. The caller signs the Rotation with the home's CURRENT threshold and,
//     under the signing lock and before submitting it, StageSigned writes
//     the keys and the envelope to rotate-pending/ (0700, files 0600) in
//     one rename. From here on the stage is kept until it is committed:
//     the new keys may be the root already.
//  3. CommitRotation, once the rotation is accepted (or when the operator
//     says so, for an air-gapped root): the current root key files that the
//     new set drops are copied to retired/<key ID>.key (0700 directory,
//     0600 files), then the new keys are written over root.key, root-2.key,
//     ..., the envelope becomes rotation.cose, and the stage is removed.
//     Every step is idempotent, so an interrupted commit is finished by
//     running it again; LoadHome refuses a half-installed home and says so.
//
// A running node reads its signing key through Home.SigningKey and reloads
// it (Home.ReloadKeys) when the graph says the key it holds was rotated out.
const (
	dirPending = "rotate-pending"
	dirRetired = "retired"
)

// Errors of rotating a home's keys.
var (
	// ErrRotationStaged: a signed rotation is staged and not committed;
	// commit it before staging another.
	ErrRotationStaged = errors.New("node: a signed rotation is staged")
	// ErrNoRotationStaged: there is no signed rotation to commit.
	ErrNoRotationStaged = errors.New("node: no signed rotation is staged")
	// ErrKeyRetired: the home's keys are not in its authority's current
	// root set: the node cannot sign until the new keys are installed.
	ErrKeyRetired = errors.New("node: the home's root key was rotated out")
)

// liveKeys is the signing state a running node reads; swapped whole.
type liveKeys struct {
	mu        sync.RWMutex
	root      *authority.PrivateKey
	threshold int
}

func (l *liveKeys) set(h *Home) {
	l.mu.Lock()
	l.root, l.threshold = h.Root, h.Threshold
	l.mu.Unlock()
}

// SigningKey is the key the node's own signatures (checkpoints, bundles,
// receipts) are made with: root.key as last (re)loaded. Safe for concurrent
// use with ReloadKeys.
func (h *Home) SigningKey() *authority.PrivateKey {
	if h.live == nil {
		return h.Root
	}
	h.live.mu.RLock()
	defer h.live.mu.RUnlock()
	return h.live.root
}

// ReloadKeys reads the home's root keys again (after `fednode rotate`
// installed new ones) and makes them the SigningKey. The exported fields
// keep what LoadHome read. On error the keys in use stay.
func (h *Home) ReloadKeys() error {
	fresh, err := LoadHome(h.Dir)
	if err != nil {
		return fmt.Errorf("node: reload keys: %w", err)
	}
	if h.live == nil {
		return errors.New("node: reload keys: home not loaded by LoadHome")
	}
	h.live.set(fresh)
	return nil
}

// findKey finds k in set by key ID.
func findKey(set []authority.PublicKey, k authority.PublicKey) (int, bool) {
	kid := k.KeyID()
	for i, s := range set {
		if bytes.Equal(s.KeyID(), kid) {
			return i, true
		}
	}
	return -1, false
}

func rootSetSource(rotation []byte) string {
	if rotation == nil {
		return "the genesis"
	}
	return "rotation " + authority.IDOf(rotation).Short()
}

// StagedRotation is a rotation staged in a home: the new keys, and the
// signed envelope once there is one.
type StagedRotation struct {
	Keys      []*authority.PrivateKey
	Threshold int
	// Signed is the signed rotation; nil until StageSigned.
	Signed *authority.Signed
}

// Rotation is the body declaring s's keys.
func (s *StagedRotation) Rotation() *authority.Rotation {
	r := &authority.Rotation{Threshold: uint8(s.Threshold)}
	for _, k := range s.Keys {
		r.RootKeys = append(r.RootKeys, k.Public())
	}
	return r
}

// NewRotation generates n fresh root keys of alg with threshold k, in
// memory: nothing is on disk, and nothing signed, until StageSigned.
func NewRotation(alg authority.Alg, n, k int) (*StagedRotation, error) {
	if n < 1 || n > authority.MaxRootKeys {
		return nil, fmt.Errorf("node: rotate: --keys %d: want 1 to %d root keys", n, authority.MaxRootKeys)
	}
	if k < 1 || k > n {
		return nil, fmt.Errorf("node: rotate: --threshold %d: want 1 to %d (the number of new root keys)", k, n)
	}
	s := &StagedRotation{Threshold: k}
	for i := 0; i < n; i++ {
		key, err := authority.GenerateKey(alg, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("node: rotate: %w", err)
		}
		s.Keys = append(s.Keys, key)
	}
	return s, nil
}

// StageSigned writes s's keys and its signed rotation sd to the home's
// stage, rotate-pending/ (0700, files 0600), all at once (a directory
// renamed into place). It must run, under the home's signing lock, before
// sd is submitted anywhere, so that keys that may become the root are on
// disk first. A stage of other keys is never replaced (ErrRotationStaged):
// its rotation may be accepted already; a stage of the same keys (a retry
// at a later position) is.
func (h *Home) StageSigned(s *StagedRotation, sd *authority.Signed) error {
	if err := s.matches(sd); err != nil {
		return err
	}
	dir := filepath.Join(h.Dir, dirPending)
	old, err := h.Staged()
	if err != nil {
		return err
	}
	same := old != nil && old.sameKeys(s)
	if old != nil && !same {
		if old.Signed != nil {
			return fmt.Errorf("%w in %s: commit it first (fednode rotate --home %s --commit)", ErrRotationStaged, dir, h.Dir)
		}
		// An unsigned stage was never submitted: its keys are nothing.
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("node: rotate: %w", err)
		}
	}
	// Leftovers of a stage that crashed before its rename were never
	// submitted: their keys are nothing.
	if left, _ := filepath.Glob(filepath.Join(h.Dir, "."+dirPending+".tmp*")); len(left) > 0 {
		for _, l := range left {
			_ = os.RemoveAll(l)
		}
	}
	tmp, err := os.MkdirTemp(h.Dir, "."+dirPending+".tmp*")
	if err != nil {
		return fmt.Errorf("node: rotate: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("node: rotate: %w", err)
	}
	for i, k := range s.Keys {
		b, err := authority.MarshalPrivateKey(k)
		if err != nil {
			return fmt.Errorf("node: rotate: %w", err)
		}
		if err := WriteFileAtomic(filepath.Join(tmp, rootKeyFile(i)), b, 0o600); err != nil {
			return fmt.Errorf("node: rotate: stage %s: %w", rootKeyFile(i), err)
		}
	}
	if err := WriteFileAtomic(filepath.Join(tmp, fileRotation), sd.Raw, 0o600); err != nil {
		return fmt.Errorf("node: rotate: stage the signed rotation: %w", err)
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("node: rotate: %w", err)
	}
	if same {
		// The same keys: replace the envelope only, in place.
		if err := WriteFileAtomic(filepath.Join(dir, fileRotation), sd.Raw, 0o600); err != nil {
			return fmt.Errorf("node: rotate: stage the signed rotation: %w", err)
		}
	} else if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("node: rotate: %w", err)
	}
	if err := syncDir(h.Dir); err != nil {
		return fmt.Errorf("node: rotate: %w", err)
	}
	s.Signed = sd
	return nil
}

// sameKeys reports whether s and o stage the same keys, in order.
func (s *StagedRotation) sameKeys(o *StagedRotation) bool {
	if len(s.Keys) != len(o.Keys) {
		return false
	}
	for i := range s.Keys {
		if !bytes.Equal(s.Keys[i].Public().Key, o.Keys[i].Public().Key) {
			return false
		}
	}
	return true
}

// matches checks that sd is a rotation of exactly s's keys and threshold.
func (s *StagedRotation) matches(sd *authority.Signed) error {
	r := sd.Decl.Rotation
	if sd.Decl.Kind != authority.KindRotation || r == nil {
		return fmt.Errorf("node: rotate: %v %s is not a rotation", sd.Decl.Kind, sd.ID.Short())
	}
	if int(r.Threshold) != s.Threshold || len(r.RootKeys) != len(s.Keys) {
		return fmt.Errorf("node: rotate: rotation %s declares %d-of-%d, the staged keys are %d-of-%d", sd.ID.Short(), r.Threshold, len(r.RootKeys), s.Threshold, len(s.Keys))
	}
	for i, k := range s.Keys {
		if !bytes.Equal(r.RootKeys[i].KeyID(), k.Public().KeyID()) {
			return fmt.Errorf("node: rotate: rotation %s's root key %d is not the staged %s", sd.ID.Short(), i, rootKeyFile(i))
		}
	}
	return nil
}

// Staged reads the home's stage: nil, nil when there is none.
func (h *Home) Staged() (*StagedRotation, error) {
	dir := filepath.Join(h.Dir, dirPending)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	s := &StagedRotation{}
	for i := 0; ; i++ {
		b, err := os.ReadFile(filepath.Join(dir, rootKeyFile(i)))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("node: rotate: read the stage: %w", err)
		}
		k, err := authority.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("node: rotate: staged %s: %w", rootKeyFile(i), err)
		}
		s.Keys = append(s.Keys, k)
	}
	raw, err := os.ReadFile(filepath.Join(dir, fileRotation))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: rotate: read the staged rotation: %w", err)
	}
	sd, err := authority.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("node: rotate: staged %s: %w", fileRotation, err)
	}
	if sd.Decl.Rotation != nil {
		s.Threshold = int(sd.Decl.Rotation.Threshold)
	}
	if err := s.matches(sd); err != nil {
		return nil, err
	}
	s.Signed = sd
	return s, nil
}

// CommitRotation installs the staged, signed rotation's keys as the home's
// root keys, retiring the ones it drops to retired/. Call it once the
// rotation is accepted: from then on the old keys sign nothing. It is
// idempotent: run it again after a crash.
func (h *Home) CommitRotation() (*authority.Signed, error) {
	s, err := h.Staged()
	if err != nil {
		return nil, err
	}
	if s == nil || s.Signed == nil {
		return nil, fmt.Errorf("%w in %s", ErrNoRotationStaged, filepath.Join(h.Dir, dirPending))
	}
	if s.Signed.Decl.Authority != h.Authority {
		return nil, fmt.Errorf("node: rotate: the staged rotation is %s's, not %s's", s.Signed.Decl.Authority.Short(), h.Authority.Short())
	}
	newSet := s.Signed.Decl.Rotation.RootKeys
	// 1. Retire every current key file the new set drops: copy first, so
	// that the key is on disk twice before any file is replaced.
	retired := filepath.Join(h.Dir, dirRetired)
	if err := os.MkdirAll(retired, 0o700); err != nil {
		return nil, fmt.Errorf("node: rotate: %w", err)
	}
	if err := os.Chmod(retired, 0o700); err != nil {
		return nil, fmt.Errorf("node: rotate: %w", err)
	}
	files, err := extraRootKeys(h.Dir)
	if err != nil {
		return nil, err
	}
	files = append([]string{fileRootKey}, files...)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(h.Dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("node: rotate: read %s: %w", f, err)
		}
		k, err := authority.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("node: rotate: %s: %w", f, err)
		}
		if _, ok := findKey(newSet, k.Public()); ok {
			continue // a new key already written by an interrupted commit, or one kept
		}
		dst := filepath.Join(retired, hex.EncodeToString(k.Public().KeyID())+".key")
		if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := WriteFileAtomic(dst, b, 0o600); err != nil {
			return nil, fmt.Errorf("node: rotate: retire %s: %w", f, err)
		}
	}
	if err := syncDir(retired); err != nil {
		return nil, fmt.Errorf("node: rotate: %w", err)
	}
	// 2. The new keys over root.key, root-2.key, ...; then drop the old
	// numbered files past the new count (retired above).
	for i, k := range s.Keys {
		b, err := authority.MarshalPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("node: rotate: %w", err)
		}
		if err := WriteFileAtomic(filepath.Join(h.Dir, rootKeyFile(i)), b, 0o600); err != nil {
			return nil, fmt.Errorf("node: rotate: install %s: %w", rootKeyFile(i), err)
		}
	}
	for _, f := range files {
		if i := rootKeyIndex(f); i >= len(s.Keys) {
			if err := os.Remove(filepath.Join(h.Dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("node: rotate: %w", err)
			}
		}
	}
	// 3. The rotation that makes them the root, then the stage goes.
	if err := WriteFileAtomic(filepath.Join(h.Dir, fileRotation), s.Signed.Raw, 0o644); err != nil {
		return nil, fmt.Errorf("node: rotate: %w", err)
	}
	if err := syncDir(h.Dir); err != nil {
		return nil, fmt.Errorf("node: rotate: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(h.Dir, dirPending)); err != nil {
		return nil, fmt.Errorf("node: rotate: remove the stage: %w", err)
	}
	return s.Signed, nil
}

// rootKeyIndex is the 0-based index of a root key file name.
func rootKeyIndex(f string) int {
	if f == fileRootKey {
		return 0
	}
	var n int
	if _, err := fmt.Sscanf(strings.TrimPrefix(f, "root-"), "%d.key", &n); err != nil || n < 2 {
		return -1
	}
	return n - 1
}

// syncDir fsyncs a directory, so that renames into it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// signingKey is the key the node signs its own statements with: the home's,
// reloaded from disk if the graph says it was rotated out. It refuses
// (ErrKeyRetired) rather than sign with a retired key.
func (n *Node) signingKey() (*authority.PrivateKey, error) {
	k := n.home.SigningKey()
	if n.isCurrentRoot(k) {
		return k, nil
	}
	if err := n.home.ReloadKeys(); err != nil {
		return nil, fmt.Errorf("%w, and reloading failed: %w", ErrKeyRetired, err)
	}
	k = n.home.SigningKey()
	if !n.isCurrentRoot(k) {
		return nil, fmt.Errorf("%w: %s's current root set does not hold root.key; install the new keys (fednode rotate --home %s --commit)", ErrKeyRetired, n.home.Config.Name, n.home.Dir)
	}
	n.log.Info("node: reloaded root keys after a rotation")
	return k, nil
}

// isCurrentRoot reports whether k is in the current root set of the node's
// authority; while the authority is not agreed yet, its genesis keys are.
func (n *Node) isCurrentRoot(k *authority.PrivateKey) bool {
	ok := true
	n.store.View(func(v authority.View) {
		if a, found := v.Authority(n.home.Authority); found {
			_, ok = findKey(a.RootKeys, k.Public())
		}
	})
	return ok
}

// ReloadKeys makes the node sign with the home's root keys as they are on
// disk now (after `fednode rotate` installed new ones). The node also
// reloads by itself when the graph says its key was rotated out.
func (n *Node) ReloadKeys() error { return n.home.ReloadKeys() }

// rotationIDs are the IDs of a's rotations, in chain order.
func rotationIDs(a *authority.AuthorityInfo) []authority.ID {
	var out []authority.ID
	for _, rs := range a.Roots[min(1, len(a.Roots)):] {
		out = append(out, rs.ID)
	}
	return out
}

// RootSet is an authority's current root set as a verifier outside the
// graph establishes it: its genesis, then each rotation checked against the
// set before it.
type RootSet struct {
	Name      string
	Keys      []authority.PublicKey
	Threshold int
}

// FollowRotations checks the chain of root sets from an authority's genesis
// through its rotations (in chain order): each must be a rotation of that
// authority signed by the threshold of the set before it. It returns the
// last set. It proves the rotations are genuine, not that none is missing:
// a node that withholds the latest rotation makes the set before it look
// current.
func FollowRotations(genesis *authority.Signed, rotations []*authority.Signed) (RootSet, error) {
	g := genesis.Decl.Genesis
	if genesis.Decl.Kind != authority.KindGenesis || g == nil {
		return RootSet{}, fmt.Errorf("node: %v %s is not a genesis", genesis.Decl.Kind, genesis.ID.Short())
	}
	set := RootSet{Name: g.Name, Keys: g.RootKeys, Threshold: int(g.Threshold)}
	var seq uint64
	for i, r := range rotations {
		if r.Decl.Kind != authority.KindRotation || r.Decl.Authority != genesis.ID || r.Decl.Seq <= seq {
			return RootSet{}, fmt.Errorf("node: rotation %d (%s) is not a later rotation of %s", i+1, r.ID.Short(), g.Name)
		}
		if err := r.VerifyThreshold(set.Keys, set.Threshold); err != nil {
			return RootSet{}, fmt.Errorf("node: rotation %d (%s) of %s is not signed by the threshold of the set before it: %w", i+1, r.ID.Short(), g.Name, err)
		}
		seq = r.Decl.Seq
		set.Keys, set.Threshold = r.Decl.Rotation.RootKeys, int(r.Decl.Rotation.Threshold)
	}
	return set, nil
}

// handleReloadKeys is POST /v1/keys/reload: sign with the keys on disk now.
// It answers with the key ID now signing (no key material).
func (n *Node) handleReloadKeys(w http.ResponseWriter, _ *http.Request) {
	if err := n.ReloadKeys(); err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		KeyID HexBytes `json:"key_id"`
	}{n.home.SigningKey().Public().KeyID()})
}

// CommitRotationIn is CommitRotation for the home in dir, which need not
// load: an interrupted commit leaves LoadHome refusing it until the commit
// is finished. It takes the home's signing lock.
func CommitRotationIn(dir string) (*authority.Signed, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileConfig))
	if err != nil {
		return nil, fmt.Errorf("node: %s is not a fednode home: %w", dir, err)
	}
	h := &Home{Dir: dir}
	if err := json.Unmarshal(b, &h.Config); err != nil {
		return nil, fmt.Errorf("node: %s: %w", filepath.Join(dir, fileConfig), err)
	}
	if h.Authority, err = authority.ParseID(h.Config.Authority); err != nil {
		return nil, fmt.Errorf("node: %s: authority: %w", filepath.Join(dir, fileConfig), err)
	}
	unlock, err := h.LockSigning()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return h.CommitRotation()
}

// checkRevocable refuses, at admission, a revocation the graph would refuse
// at apply: one of an Anchors declaration (authority.ErrNotRevocable), so
// that it is answered 400 rather than taken and dropped.
func (n *Node) checkRevocable(sd *authority.Signed) error {
	if sd.Decl.Kind != authority.KindRevocation {
		return nil
	}
	raw, err := n.store.Declaration(sd.Decl.Revocation.Target)
	if err != nil {
		return nil // not agreed (or not ours to know): the graph judges it
	}
	if t, err := authority.Parse(raw); err == nil && t.Decl.Kind == authority.KindAnchors {
		return fmt.Errorf("%w: revocation %s: %w: %s is an anchors declaration; declare new anchors (fednode trust) to replace it", ErrInvalid, sd.ID.Short(), authority.ErrNotRevocable, t.ID.Short())
	}
	return nil
}
