package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	dirData     = "data"
	dirRaft     = "raft"
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
	Root      *authority.PrivateKey
	Identity  []byte
	Token     string
}

// InitOptions are the choices of `fednode init`.
type InitOptions struct {
	Name   string
	Kind   string
	Listen []string // default: TCP and QUIC on 127.0.0.1, random ports
	API    string   // default: 127.0.0.1:0
	Now    time.Time
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
	root, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: init: %w", err)
	}
	gen, err := authority.Sign(authority.Declaration{
		Kind:     authority.KindGenesis,
		IssuedAt: o.Now.Unix(),
		Genesis: &authority.Genesis{
			Name:      o.Name,
			Kind:      o.Kind,
			RootKeys:  []authority.PublicKey{root.Public()},
			Threshold: 1,
		},
	}, root)
	if err != nil {
		return nil, fmt.Errorf("node: init: genesis for %q: %w", o.Name, err)
	}
	identity, err := gossip.GenerateIdentity()
	if err != nil {
		return nil, fmt.Errorf("node: init: %w", err)
	}
	peerID, err := gossip.PeerIDOf(identity)
	if err != nil {
		return nil, fmt.Errorf("node: init: %w", err)
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("node: init: token: %w", err)
	}
	rootBytes, err := authority.MarshalPrivateKey(root)
	if err != nil {
		return nil, fmt.Errorf("node: init: %w", err)
	}
	listen := o.Listen
	if len(listen) == 0 {
		listen = DefaultListen
	}
	api := o.API
	if api == "" {
		api = "127.0.0.1:0"
	}
	cfg := HomeConfig{Name: o.Name, Kind: o.Kind, Authority: gen.ID.String(), PeerID: peerID, Listen: listen, API: api}
	cfgBytes, _ := json.MarshalIndent(cfg, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{fileRootKey, rootBytes, 0o600},
		{fileNodeKey, identity, 0o600},
		{fileToken, []byte(hex.EncodeToString(tok) + "\n"), 0o600},
		{fileGenesis, gen.Raw, 0o644},
		{fileConfig, append(cfgBytes, '\n'), 0o600},
	} {
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
	for _, f := range []string{fileRootKey, fileNodeKey, fileToken} {
		if err := checkSecretMode(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	rk, err := os.ReadFile(filepath.Join(dir, fileRootKey))
	if err != nil {
		return nil, fmt.Errorf("node: read root key: %w", err)
	}
	if h.Root, err = authority.ParsePrivateKey(rk); err != nil {
		return nil, fmt.Errorf("node: %s: %w", filepath.Join(dir, fileRootKey), err)
	}
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
