package testnet

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// Mesh is a set of nodes on loopback, one per authority, in one process.
type Mesh struct {
	files  fs.FS // resolves scenario FILE paths; may be nil
	dir    string
	ownDir bool
	log    *slog.Logger
	clock  func() time.Time
	// configure is MeshOptions.Configure; nil: none.
	configure func(name string, c *node.Config)

	mu    sync.Mutex
	nodes map[string]*member
	order []string // names in start order; order[0] bootstrapped the cluster
	// cut holds the partitions in force: cut[x][y] means x and y block each
	// other. Invariant: symmetric (cut[x][y] == cut[y][x]), never x == x,
	// names are members.
	cut map[string]map[string]bool
	// raft is the Raft tuning of the nodes started from now on (faults.go).
	raft node.RaftTuning
}

type member struct {
	name string
	home string
	peer string // libp2p peer ID; the same across restarts
	auth authority.ID
	// listen is where the node last listened (multiaddrs without /p2p/),
	// so that a restart comes back at the same addresses.
	listen []string
	n      *node.Node // nil while killed
}

// listenAddrs strips the /p2p/<id> suffix from a node's full addresses.
func listenAddrs(full []string) []string {
	out := make([]string, 0, len(full))
	for _, a := range full {
		if i := strings.Index(a, "/p2p/"); i > 0 {
			a = a[:i]
		}
		out = append(out, a)
	}
	return out
}

// MeshOptions configure a mesh.
type MeshOptions struct {
	// Dir holds the nodes' homes; empty: a new temporary directory, removed
	// by Close.
	Dir    string
	Logger *slog.Logger
	Clock  func() time.Time
	// Files resolves the FILE paths of authority specs (jwks=,
	// x509-roots=); nil: such specs fail.
	Files fs.FS
	// Configure, if set, may adjust each node's Config (hooks, tuning)
	// before node.New, at start and at every restart.
	Configure func(name string, c *node.Config)
}

// NewMesh returns an empty mesh.
func NewMesh(o MeshOptions) (*Mesh, error) {
	m := &Mesh{files: o.Files, dir: o.Dir, log: o.Logger, clock: o.Clock, configure: o.Configure, nodes: map[string]*member{}, cut: map[string]map[string]bool{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.clock == nil {
		m.clock = time.Now
	}
	if m.dir == "" {
		d, err := os.MkdirTemp("", "fednode-testnet-")
		if err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		m.dir, m.ownDir = d, true
	}
	return m, nil
}

// Add starts nodes for new authorities, concurrently. The very first node of
// the mesh bootstraps the Raft cluster; every other joins through it.
func (m *Mesh) Add(ctx context.Context, specs []AuthorityCmd) error {
	if len(specs) == 0 {
		return nil
	}
	if len(m.order) == 0 {
		if err := m.start(ctx, specs[0], true, nil); err != nil {
			return err
		}
		// Joiners are admitted by a leader: let the founder win its
		// one-voter election first rather than have them retry.
		founder := m.Node(specs[0].Name)
		for deadline := time.Now().Add(30 * time.Second); !founder.IsLeader() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		specs = specs[1:]
	}
	join := m.joinAddrs()
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.start(ctx, s, false, join)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *Mesh) joinAddrs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, name := range m.order {
		if mb := m.nodes[name]; mb.n != nil {
			out = append(out, mb.n.Addrs()...)
			if len(out) >= 4 {
				break
			}
		}
	}
	return out
}

func (m *Mesh) start(ctx context.Context, s AuthorityCmd, bootstrap bool, join []string) error {
	home := filepath.Join(m.dir, s.Name)
	kind := s.Kind
	if kind == "" {
		kind = defaultKind(s.Name)
	}
	opts := node.InitOptions{Name: s.Name, Kind: kind, Now: m.clock(), Alg: s.Alg, Keys: s.Keys, Threshold: s.Threshold}
	if s.JWKS != "" {
		b, err := m.readFile(s.JWKS)
		if err != nil {
			return fmt.Errorf("testnet: authority %s: jwks=: %w", s.Name, err)
		}
		opts.OIDC = &authority.OIDCAnchor{Issuer: s.Issuer, JWKS: b}
	}
	if s.X509Roots != "" {
		b, err := m.readFile(s.X509Roots)
		if err != nil {
			return fmt.Errorf("testnet: authority %s: x509-roots=: %w", s.Name, err)
		}
		if opts.X509Roots, err = pemCerts(b); err != nil {
			return fmt.Errorf("testnet: authority %s: x509-roots=%s: %w", s.Name, s.X509Roots, err)
		}
	}
	if _, err := node.Init(home, opts); err != nil {
		return err
	}
	n, err := node.New(ctx, m.config(s.Name, node.Config{Home: home, Bootstrap: bootstrap, Join: join, Logger: m.log, Clock: m.clock, Raft: m.raftTuning(), SyncInterval: meshSyncInterval}))
	if err != nil {
		return fmt.Errorf("testnet: start %s: %w", s.Name, err)
	}
	m.mu.Lock()
	m.nodes[s.Name] = &member{name: s.Name, home: home, peer: n.PeerID(), auth: n.Authority(), listen: listenAddrs(n.Addrs()), n: n}
	m.order = append(m.order, s.Name)
	m.mu.Unlock()
	return nil
}

// config applies MeshOptions.Configure to a node's Config.
func (m *Mesh) config(name string, c node.Config) node.Config {
	if m.configure != nil {
		m.configure(name, &c)
	}
	return c
}

// defaultKind guesses a kind from a name like "aws-prod".
func defaultKind(name string) string {
	for _, k := range []string{"aws", "azure", "gcp", "ad", "pki", "oidc", "sovereign"} {
		if len(name) >= len(k) && name[:len(k)] == k {
			return k
		}
	}
	if len(name) >= 3 && name[:3] == "dod" {
		return "pki"
	}
	return "sovereign"
}

// Node returns a running node by name, or nil if it is killed or unknown.
func (m *Mesh) Node(name string) *node.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mb, ok := m.nodes[name]; ok {
		return mb.n
	}
	return nil
}

// Live returns the running nodes in start order, with their names.
func (m *Mesh) Live() ([]string, []*node.Node) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	var nodes []*node.Node
	for _, name := range m.order {
		if mb := m.nodes[name]; mb.n != nil {
			names = append(names, name)
			nodes = append(nodes, mb.n)
		}
	}
	return names, nodes
}

// Names returns every node's name, sorted.
func (m *Mesh) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := append([]string(nil), m.order...)
	sort.Strings(out)
	return out
}

// Kill stops a node abruptly (its store, host and Raft close; nothing is
// handed over).
func (m *Mesh) Kill(name string) error {
	m.mu.Lock()
	mb, ok := m.nodes[name]
	m.mu.Unlock()
	if !ok || mb.n == nil {
		return fmt.Errorf("testnet: kill %s: no such running node", name)
	}
	err := mb.n.Close()
	m.mu.Lock()
	mb.n = nil
	m.mu.Unlock()
	return err
}

// Restart starts a killed node again from its home directory, listening
// where it listened before, as a deployed node with fixed ports does. (The
// homes ask for ephemeral ports; with new ones at every restart, restarting
// every node in turn would leave each address book naming only dead
// addresses, and the cluster unable to reconnect.) If an old port was
// taken meanwhile, it takes new ones.
func (m *Mesh) Restart(ctx context.Context, name string) error {
	m.mu.Lock()
	mb, ok := m.nodes[name]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("testnet: restart %s: no such node", name)
	}
	if mb.n != nil {
		return fmt.Errorf("testnet: restart %s: it is running", name)
	}
	n, err := node.New(ctx, m.config(name, node.Config{Home: mb.home, Listen: mb.listen, Logger: m.log, Clock: m.clock, Raft: m.raftTuning(), SyncInterval: meshSyncInterval}))
	if err != nil {
		m.log.Warn("testnet: restart on the old addresses failed; taking new ports", "node", name, "listen", mb.listen, "err", err)
		n, err = node.New(ctx, m.config(name, node.Config{Home: mb.home, Logger: m.log, Clock: m.clock, Raft: m.raftTuning(), SyncInterval: meshSyncInterval}))
	}
	if err != nil {
		return fmt.Errorf("testnet: restart %s: %w", name, err)
	}
	m.mu.Lock()
	mb.n = n
	mb.listen = listenAddrs(n.Addrs())
	// A partition outlives a restart. The other side blocks this node's
	// peer ID already, so its gaters refuse the node's first dials; block
	// them here too, for the connections this node accepts.
	peers := m.cutPeersLocked(name)
	m.mu.Unlock()
	if len(peers) > 0 {
		if err := n.Block(peers...); err != nil {
			return fmt.Errorf("testnet: restart %s: keep its partition: %w", name, err)
		}
	}
	return nil
}

// cutPeersLocked returns the peer IDs of the nodes cut off from name.
func (m *Mesh) cutPeersLocked(name string) []string {
	var peers []string
	for other := range m.cut[name] {
		peers = append(peers, m.nodes[other].peer)
	}
	sort.Strings(peers)
	return peers
}

// Partition cuts every node of side off from every node of other, in both
// directions (each blocks the other's peer ID), until Heal. An empty other
// means every other node of the mesh. Killed nodes count: the running side
// blocks them, and a node restarted while cut off stays cut off.
// Partitions add up: a second one cuts more links.
func (m *Mesh) Partition(side, other []string) error {
	m.mu.Lock()
	for _, name := range append(slices.Clone(side), other...) {
		if _, ok := m.nodes[name]; !ok {
			m.mu.Unlock()
			return fmt.Errorf("testnet: partition: no node %s", name)
		}
	}
	if len(other) == 0 {
		for _, name := range m.order {
			if !slices.Contains(side, name) {
				other = append(other, name)
			}
		}
	}
	type block struct {
		n     *node.Node
		peers []string
	}
	blocks := map[string]*block{}
	add := func(x, y string) {
		if m.cut[x] == nil {
			m.cut[x] = map[string]bool{}
		}
		m.cut[x][y] = true
		if n := m.nodes[x].n; n != nil {
			if blocks[x] == nil {
				blocks[x] = &block{n: n}
			}
			blocks[x].peers = append(blocks[x].peers, m.nodes[y].peer)
		}
	}
	for _, x := range side {
		for _, y := range other {
			if x == y {
				continue
			}
			add(x, y)
			add(y, x)
		}
	}
	m.mu.Unlock()
	var errs []error
	for name, b := range blocks {
		if err := b.n.Block(b.peers...); err != nil {
			errs = append(errs, fmt.Errorf("testnet: partition at %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// CutOff reports whether a partition separates nodes x and y.
func (m *Mesh) CutOff(x, y string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cut[x][y]
}

// Partitioned reports whether any partition is in force.
func (m *Mesh) Partitioned() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.cut) > 0
}

// Reachable returns the running nodes of members (see Counted) that no
// partition separates from name (name included when it runs), in start
// order, with their names.
func (m *Mesh) Reachable(name string) ([]string, []*node.Node) {
	names, nodes := m.Live()
	m.mu.Lock()
	var rn []string
	var rs []*node.Node
	for i, other := range names {
		if !m.cut[name][other] {
			rn = append(rn, other)
			rs = append(rs, nodes[i])
		}
	}
	m.mu.Unlock()
	return m.members(rn, rs)
}

// healConnectTimeout bounds one reconnecting dial of Heal.
const healConnectTimeout = 10 * time.Second

// Heal lifts every partition: each running node unblocks every peer it
// blocked, then dials every other running node itself, so that neither
// libp2p's dial backoff (grown by the refused dials while cut off) nor
// waiting to be dialled delays the healing. It returns once the dials are
// done; Raft and gossip resume over the new connections on their own.
func (m *Mesh) Heal(ctx context.Context) error {
	m.mu.Lock()
	clear(m.cut)
	m.mu.Unlock()
	names, nodes := m.Live()
	var errs []error
	for i, n := range nodes {
		if b := n.Blocked(); len(b) > 0 {
			if err := n.Unblock(b...); err != nil {
				errs = append(errs, fmt.Errorf("testnet: heal %s: %w", names[i], err))
			}
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, n := range nodes {
		for j, peer := range nodes {
			if i == j {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last error
				for _, addr := range peer.Addrs() {
					cctx, cancel := context.WithTimeout(ctx, healConnectTimeout)
					last = n.Connect(cctx, addr)
					cancel()
					if last == nil {
						return
					}
				}
				mu.Lock()
				errs = append(errs, fmt.Errorf("testnet: heal: %s cannot reach %s: %w", names[i], names[j], last))
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Home returns the home of a node (running or not).
func (m *Mesh) Home(name string) (*node.Home, error) {
	m.mu.Lock()
	mb, ok := m.nodes[name]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("testnet: no node %s", name)
	}
	return node.LoadHome(mb.home)
}

// Close stops every node and removes the mesh's directory if it made it.
func (m *Mesh) Close() error {
	_, nodes := m.Live()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Close() }()
	}
	wg.Wait()
	if m.ownDir {
		return os.RemoveAll(m.dir)
	}
	return nil
}

// MaxScenarioFileSize bounds a file a scenario names (a JWKS, a JWT, a PEM
// chain): each is a few kilobytes.
const MaxScenarioFileSize = 1 << 20

// readFile reads a file a scenario names, relative to the scenario.
func (m *Mesh) readFile(name string) ([]byte, error) {
	if m.files == nil {
		return nil, fmt.Errorf("testnet: %s: no directory to resolve scenario files in", name)
	}
	f, err := m.files.Open(name)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxScenarioFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("testnet: read %s: %w", name, err)
	}
	if len(b) > MaxScenarioFileSize {
		return nil, fmt.Errorf("testnet: %s is larger than %d bytes", name, MaxScenarioFileSize)
	}
	return b, nil
}

// pemCerts returns the DER of every CERTIFICATE block of a PEM file, in
// order; it refuses a file with none.
func pemCerts(b []byte) ([][]byte, error) {
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, blk.Bytes)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("testnet: no PEM CERTIFICATE block")
	}
	return out, nil
}
