package testnet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fednode/fednode/node"
)

// Mesh is a set of nodes on loopback, one per authority, in one process.
type Mesh struct {
	dir    string
	ownDir bool
	log    *slog.Logger
	clock  func() time.Time

	mu    sync.Mutex
	nodes map[string]*member
	order []string // names in start order; order[0] bootstrapped the cluster
}

type member struct {
	name string
	home string
	n    *node.Node // nil while killed
}

// MeshOptions configure a mesh.
type MeshOptions struct {
	// Dir holds the nodes' homes; empty: a new temporary directory, removed
	// by Close.
	Dir    string
	Logger *slog.Logger
	Clock  func() time.Time
}

// NewMesh returns an empty mesh.
func NewMesh(o MeshOptions) (*Mesh, error) {
	m := &Mesh{dir: o.Dir, log: o.Logger, clock: o.Clock, nodes: map[string]*member{}}
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

// Dir is the directory holding the nodes' homes.
func (m *Mesh) Dir() string { return m.dir }

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
	if _, err := node.Init(home, node.InitOptions{Name: s.Name, Kind: kind, Now: m.clock()}); err != nil {
		return err
	}
	n, err := node.New(ctx, node.Config{Home: home, Bootstrap: bootstrap, Join: join, Logger: m.log, Clock: m.clock})
	if err != nil {
		return fmt.Errorf("testnet: start %s: %w", s.Name, err)
	}
	m.mu.Lock()
	m.nodes[s.Name] = &member{name: s.Name, home: home, n: n}
	m.order = append(m.order, s.Name)
	m.mu.Unlock()
	return nil
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

// Restart starts a killed node again from its home directory.
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
	n, err := node.New(ctx, node.Config{Home: mb.home, Logger: m.log, Clock: m.clock})
	if err != nil {
		return fmt.Errorf("testnet: restart %s: %w", name, err)
	}
	m.mu.Lock()
	mb.n = n
	m.mu.Unlock()
	return nil
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
