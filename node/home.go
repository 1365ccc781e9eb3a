package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/gossip"
)

// Files of a home directory. Secrets (keys, token) are written 0600 and the
// directory 0700.
const (
	fileConfig  = "config.json"
	fileRootKey = "root.key"
	fileNodeKey = "node.key"
	fileToken   = "token"
	fileGenesis = "genesis.cose"
	fileAPIAddr = "api.addr"
	fileLock    = "sign.lock"
	// fileRotation is the latest rotation whose keys the home holds
	// (rotate.go); absent until the first rotation.
	fileRotation = "rotation.cose"
	dirData      = "data"
	dirRaft      = "raft"
)

// HomeConfig is the config file of a home directory (config.json). Flags of
// `fednode run` override its fields.
type HomeConfig struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind,omitempty"`
	Authority string   `json:"authority"`
	PeerID    string   `json:"peer_id"`
	Listen    []string `json:"listen"`
	API       string   `json:"api"`
	// Bootstrap lists peer multiaddrs to connect to at start.
	Bootstrap []string `json:"bootstrap,omitempty"`
	LogLevel  string   `json:"log_level,omitempty"`
}

// Home is a loaded home directory.
type Home struct {
	Dir       string
	Config    HomeConfig
	Authority authority.ID
	Genesis   []byte
	// Root is the first root key (root.key) as loaded. A running node
	// signs its own statements (checkpoints, bundles, receipts) with
	// SigningKey, which follows rotations (rotate.go). Invariant: Root ==
	// Roots[0].
	Root *authority.PrivateKey
	// Roots are every root key the home holds: root.key, then root-2.key,
	// root-3.key, ... in that order.
	Roots []*authority.PrivateKey
	// Threshold is how many distinct root keys must sign a declaration of
	// the authority, as its current root set says: the genesis, or the
	// rotation in rotation.cose. A home may hold fewer keys than that (the
	// others kept elsewhere); Signers then refuses.
	Threshold int
	// Rotation is the envelope of the rotation that made the home's keys
	// the root (rotation.cose); nil while the genesis keys are.
	Rotation []byte
	Identity []byte
	Token    string

	// live is what a running node signs with, swapped by ReloadKeys; Root,
	// Roots and Threshold stay as loaded (rotate.go).
	live *liveKeys
}

// InitOptions are the choices of `fednode init`.
type InitOptions struct {
	Name   string
	Kind   string
	Listen []string // default: TCP and QUIC on 127.0.0.1, random ports
	API    string   // default: 127.0.0.1:0
	Now    time.Time
	// Alg is the root keys' algorithm; zero means Ed25519.
	Alg authority.Alg
	// Keys is how many root keys to generate (0 means 1), at most
	// authority.MaxRootKeys; Threshold how many must sign (0 means 1).
	Keys      int
	Threshold int
	// OIDC and X509Roots are external trust anchors declared in the
	// genesis (authority.Genesis); nil: none.
	OIDC      *authority.OIDCAnchor
	X509Roots [][]byte
}

// rootKeyFile names the i-th root key file (0-based): root.key, root-2.key, ...
func rootKeyFile(i int) string {
	if i == 0 {
		return fileRootKey
	}
	return "root-" + strconv.Itoa(i+1) + ".key"
}

// extraRootKeys lists the names of the root-*.key files in dir (not root.key).
func extraRootKeys(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "root-*.key"))
	if err != nil {
		return nil, fmt.Errorf("node: list root keys: %w", err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m, nil
}

// DefaultListen is where a node listens unless told otherwise: loopback only.
var DefaultListen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// Init creates a home directory: the authority's root key and signed
// genesis, the node's libp2p identity, the API token and the config file.
// It refuses a directory that already holds a home, so no key is ever
// overwritten.
func Init(dir string, o InitOptions) (*Home, error) {
	if o.Name == "" {
		return nil, errors.New("node: init: --name is required (the authority's name, e.g. aws-prod)")
	}
	// Any key file counts, not just the config: an Init that stopped half-way
	// or a deleted config must not cost the keys.
	for _, f := range []string{fileConfig, fileRootKey, fileNodeKey} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("node: init: %s already holds a fednode home (found %s); refusing to overwrite its keys", dir, f)
		}
	}
	if extra, err := extraRootKeys(dir); err != nil || len(extra) > 0 {
		if err != nil {
			return nil, fmt.Errorf("node: init: %w", err)
		}
		return nil, fmt.Errorf("node: init: %s already holds a fednode home (found %s); refusing to overwrite its keys", dir, extra[0])
	}
	if o.Alg == 0 {
		o.Alg = authority.AlgEd25519
	}
	if o.Keys == 0 {
		o.Keys = 1
	}
	if o.Threshold == 0 {
		o.Threshold = 1
	}
	if o.Keys < 1 || o.Keys > authority.MaxRootKeys {
		return nil, fmt.Errorf("node: init: --keys %d: want 1 to %d root keys", o.Keys, authority.MaxRootKeys)
	}
	if o.Threshold < 1 || o.Threshold > o.Keys {
		return nil, fmt.Errorf("node: init: --threshold %d: want 1 to %d (the number of root keys)", o.Threshold, o.Keys)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("node: init: create %s: %w", dir, err)
	}
	// The home holds secrets: keep it private even if it existed already.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("node: init: %w", err)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	roots := make([]*authority.PrivateKey, o.Keys)
	pubs := make([]authority.PublicKey, o.Keys)
	for i := range roots {
		k, err := authority.GenerateKey(o.Alg, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("node: init: %w", err)
		}
		roots[i], pubs[i] = k, k.Public()
	}
	identity, err := gossip.GenerateIdentity()
	if err != nil {
		return nil, fmt.Errorf("node: init: %w", err)
	}
	peerID, err := gossip.PeerIDOf(identity)
	if err != nil {
		return nil, fmt.Errorf("node: init: %w", err)
	}
	listen := o.Listen
	if len(listen) == 0 {
		listen = DefaultListen
	}
	// The genesis is signed by the first Threshold keys: a root declaration
	// of a k-of-n authority needs k signatures, its founding one included.
	// It declares the node (its peer ID, and its addresses when their ports
	// are fixed): once a consortium's charter is active, only members'
	// declared peers may join the Raft transport.
	gen, err := authority.SignMulti(authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: o.Now.Unix(),
		Genesis: &authority.Genesis{
			Name:      o.Name,
			Kind:      o.Kind,
			RootKeys:  pubs,
			Threshold: uint8(o.Threshold),
			OIDC:      o.OIDC,
			X509Roots: o.X509Roots,
			Nodes:     []authority.NodeRef{{PeerID: peerID, Addrs: declaredAddrs(listen)}},
		},
	}, roots[:o.Threshold]...)
	if err != nil {
		return nil, fmt.Errorf("node: init: genesis for %q: %w", o.Name, err)
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("node: init: token: %w", err)
	}
	type file struct {
		name string
		data []byte
		mode os.FileMode
	}
	var files []file
	for i, k := range roots {
		b, err := authority.MarshalPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("node: init: %w", err)
		}
		files = append(files, file{rootKeyFile(i), b, 0o600})
	}
	api := o.API
	if api == "" {
		api = "127.0.0.1:0"
	}
	cfg := HomeConfig{Name: o.Name, Kind: o.Kind, Authority: gen.ID.String(), PeerID: peerID, Listen: listen, API: api}
	cfgBytes, _ := json.MarshalIndent(cfg, "", "  ")
	// The config goes last: a home with a config is complete.
	files = append(files,
		file{fileNodeKey, identity, 0o600},
		file{fileToken, []byte(hex.EncodeToString(tok) + "\n"), 0o600},
		file{fileGenesis, gen.Raw, 0o644},
		file{fileConfig, append(cfgBytes, '\n'), 0o600},
	)
	for _, f := range files {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, fmt.Errorf("node: init: %w", err)
		}
	}
	return LoadHome(dir)
}

// LoadHome reads a home directory written by Init.
func LoadHome(dir string) (*Home, error) {
	h := &Home{Dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, fileConfig))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("node: %s is not a fednode home (no %s): run `fednode init --home %s --name NAME` first", dir, fileConfig, dir)
		}
		return nil, fmt.Errorf("node: read home config: %w", err)
	}
	if err := json.Unmarshal(b, &h.Config); err != nil {
		return nil, fmt.Errorf("node: %s: %w", filepath.Join(dir, fileConfig), err)
	}
	if h.Authority, err = authority.ParseID(h.Config.Authority); err != nil {
		return nil, fmt.Errorf("node: %s: authority: %w", filepath.Join(dir, fileConfig), err)
	}
	if h.Genesis, err = os.ReadFile(filepath.Join(dir, fileGenesis)); err != nil {
		return nil, fmt.Errorf("node: read genesis: %w", err)
	}
	if authority.IDOf(h.Genesis) != h.Authority {
		return nil, fmt.Errorf("node: %s does not match the authority id in %s", fileGenesis, fileConfig)
	}
	gen, err := authority.Parse(h.Genesis)
	if err != nil || gen.Decl.Genesis == nil {
		return nil, fmt.Errorf("node: %s is not a genesis: %v", filepath.Join(dir, fileGenesis), err)
	}
	set, threshold := gen.Decl.Genesis.RootKeys, int(gen.Decl.Genesis.Threshold)
	if raw, err := os.ReadFile(filepath.Join(dir, fileRotation)); err == nil {
		rot, err := authority.Parse(raw)
		if err != nil || rot.Decl.Kind != authority.KindRotation || rot.Decl.Authority != h.Authority {
			return nil, fmt.Errorf("node: %s is not a rotation of %s: %v", filepath.Join(dir, fileRotation), h.Config.Name, err)
		}
		set, threshold, h.Rotation = rot.Decl.Rotation.RootKeys, int(rot.Decl.Rotation.Threshold), raw
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("node: read %s: %w", fileRotation, err)
	}
	h.Threshold = threshold
	extra, err := extraRootKeys(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range append([]string{fileRootKey, fileNodeKey, fileToken}, extra...) {
		if err := checkSecretMode(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	// Root keys are root.key, root-2.key, ... with no gap, so that "the
	// first k keys" means the same thing to every command.
	for i := 0; i < 1+len(extra); i++ {
		path := filepath.Join(dir, rootKeyFile(i))
		rk, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("node: read root key (root keys are root.key, root-2.key, ... with no gap): %w", err)
		}
		k, err := authority.ParsePrivateKey(rk)
		if err != nil {
			return nil, fmt.Errorf("node: %s: %w", path, err)
		}
		if _, ok := findKey(set, k.Public()); !ok {
			return nil, fmt.Errorf("node: %s is not a key of %s's current root set (%d keys, from %s): was `fednode rotate` interrupted? finish it with `fednode rotate --home %s --commit`", path, h.Config.Name, len(set), rootSetSource(h.Rotation), dir)
		}
		h.Roots = append(h.Roots, k)
	}
	h.Root = h.Roots[0]
	h.live = &liveKeys{}
	h.live.set(h)
	if h.Identity, err = os.ReadFile(filepath.Join(dir, fileNodeKey)); err != nil {
		return nil, fmt.Errorf("node: read node identity: %w", err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, fileToken))
	if err != nil {
		return nil, fmt.Errorf("node: read API token: %w", err)
	}
	h.Token = strings.TrimSpace(string(tok))
	if h.Token == "" {
		// An empty token would let "Authorization: Bearer " through.
		return nil, fmt.Errorf("node: %s is empty: restore it from a backup or write a new random token (e.g. openssl rand -hex 32)", filepath.Join(dir, fileToken))
	}
	return h, nil
}

// ErrBelowThreshold: the home holds fewer root keys than its authority's
// threshold asks, so it cannot sign a root declaration alone.
var ErrBelowThreshold = errors.New("node: fewer root keys than the threshold")

// Signers returns the keys a root declaration of the home's authority is
// signed with: the first Threshold root keys.
func (h *Home) Signers() ([]*authority.PrivateKey, error) {
	if len(h.Roots) < h.Threshold {
		return nil, fmt.Errorf("%w: %s holds %d root keys, its authority needs %d signatures", ErrBelowThreshold, h.Dir, len(h.Roots), h.Threshold)
	}
	return h.Roots[:h.Threshold], nil
}

// Sign signs d with the home's threshold of root keys (Signers).
func (h *Home) Sign(d authority.Declaration) (*authority.Signed, error) {
	keys, err := h.Signers()
	if err != nil {
		return nil, err
	}
	return authority.SignMulti(d, keys...)
}

// checkSecretMode refuses a key file that others can read.
func checkSecretMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("node: %s has mode %v: a key file must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	return nil
}

// RecordAPIAddr writes the address the running node's API listens on, so
// that CLI commands given --home can reach it.
func (h *Home) RecordAPIAddr(addr string) error {
	return WriteFileAtomic(filepath.Join(h.Dir, fileAPIAddr), []byte(addr+"\n"), 0o644)
}

// APIAddr returns the address recorded by the running node.
func (h *Home) APIAddr() (string, error) {
	b, err := os.ReadFile(filepath.Join(h.Dir, fileAPIAddr))
	if err != nil {
		return "", fmt.Errorf("node: no running node recorded its API address in %s (is `fednode run --home %s` running?): %w", h.Dir, h.Dir, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// LockSigning takes an exclusive lock on the home's signing position, so that
// two commands never sign two declarations at the same chain position (which
// would be equivocation). The returned func releases it.
func (h *Home) LockSigning() (func(), error) {
	f, err := os.OpenFile(filepath.Join(h.Dir, fileLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node: signing lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("node: signing lock: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// WriteFileAtomic writes data to path through a synced temporary file in
// the same directory and a rename, so a reader (or a crash) never sees half
// of it.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(name, path)
}
