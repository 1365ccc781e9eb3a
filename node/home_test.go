package node

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

func TestInitModes(t *testing.T) {
	h := initHome(t, "aws-prod")
	fi, err := os.Stat(h.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("home dir mode = %v, want 0700", got)
	}
	tests := []struct {
		name string
		file string
		mode os.FileMode
	}{
		{name: "root key", file: fileRootKey, mode: 0o600},
		{name: "node identity", file: fileNodeKey, mode: 0o600},
		{name: "API token", file: fileToken, mode: 0o600},
		{name: "config", file: fileConfig, mode: 0o600},
		{name: "genesis is public", file: fileGenesis, mode: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Stat(filepath.Join(h.Dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.mode {
				t.Errorf("%s mode = %v, want %v", tt.file, got, tt.mode)
			}
		})
	}
	// No temporary file of the atomic writes is left behind.
	ents, err := os.ReadDir(h.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left-over temporary file %s", e.Name())
		}
	}
}

func TestLoadHomeRoundTrip(t *testing.T) {
	h := initHome(t, "aws-prod")
	g, err := LoadHome(h.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if g.Authority != h.Authority || g.Authority.IsZero() {
		t.Errorf("authority: loaded %s, init gave %s", g.Authority, h.Authority)
	}
	if authority.IDOf(g.Genesis) != g.Authority {
		t.Errorf("genesis does not hash to the authority id")
	}
	if !bytes.Equal(g.Identity, h.Identity) || len(g.Identity) == 0 {
		t.Errorf("node identity differs after reload")
	}
	if g.Token != h.Token || len(g.Token) != 64 {
		t.Errorf("token: loaded %q, init gave %q (want 64 hex digits)", g.Token, h.Token)
	}
	if g.Config.Name != "aws-prod" || g.Config.Kind != "sovereign" || g.Config.PeerID == "" ||
		g.Config.API != "127.0.0.1:0" || len(g.Config.Listen) != len(DefaultListen) {
		t.Errorf("config after reload: %+v", g.Config)
	}
	if !bytes.Equal(g.Root.Public().KeyID(), h.Root.Public().KeyID()) {
		t.Errorf("root key differs after reload")
	}
	gen, err := authority.Parse(g.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.VerifyWith([]authority.PublicKey{g.Root.Public()}); err != nil {
		t.Errorf("the genesis is not signed by the home's root key: %v", err)
	}
	if gen.Decl.IssuedAt != t0.Unix() {
		t.Errorf("genesis issued at %d, want InitOptions.Now %d", gen.Decl.IssuedAt, t0.Unix())
	}
}

func TestInitRefuses(t *testing.T) {
	h := initHome(t, "aws-prod")
	before, err := os.ReadFile(filepath.Join(h.Dir, fileRootKey))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		opts InitOptions
		want string
	}{
		{name: "existing home", dir: h.Dir, opts: InitOptions{Name: "other", Now: t0}, want: "refusing to overwrite"},
		{name: "existing home, same name", dir: h.Dir, opts: InitOptions{Name: "aws-prod", Now: t0}, want: "already holds a fednode home"},
		{name: "no name", dir: filepath.Join(t.TempDir(), "x"), opts: InitOptions{Now: t0}, want: "--name is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Init(tt.dir, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Init: err = %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "node: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	after, err := os.ReadFile(filepath.Join(h.Dir, fileRootKey))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a refused Init changed root.key")
	}
}

func TestLoadHomeRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  []string
	}{
		{
			name:  "empty dir",
			setup: func(t *testing.T) string { return t.TempDir() },
			want:  []string{"not a fednode home", "fednode init"},
		},
		{
			name: "root key readable by others",
			setup: func(t *testing.T) string {
				h := initHome(t, "aws-prod")
				if err := os.Chmod(filepath.Join(h.Dir, fileRootKey), 0o644); err != nil {
					t.Fatal(err)
				}
				return h.Dir
			},
			want: []string{fileRootKey, "chmod 600"},
		},
		{
			name: "genesis swapped",
			setup: func(t *testing.T) string {
				h := initHome(t, "aws-prod")
				other := initHome(t, "gcp-prod")
				if err := os.WriteFile(filepath.Join(h.Dir, fileGenesis), other.Genesis, 0o644); err != nil {
					t.Fatal(err)
				}
				return h.Dir
			},
			want: []string{fileGenesis, "does not match"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			_, err := LoadHome(dir)
			if err == nil {
				t.Fatal("LoadHome succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.name == "root key readable by others" && !strings.Contains(err.Error(), filepath.Join(dir, fileRootKey)) {
				t.Errorf("error %q does not name the file's path", err)
			}
		})
	}
}

func TestAPIAddrRecord(t *testing.T) {
	h := initHome(t, "aws-prod")
	if _, err := h.APIAddr(); err == nil || !strings.Contains(err.Error(), "fednode run") {
		t.Fatalf("APIAddr before any run: err = %v, want a hint to run the node", err)
	}
	if err := h.RecordAPIAddr("127.0.0.1:4242"); err != nil {
		t.Fatal(err)
	}
	got, err := h.APIAddr()
	if err != nil || got != "127.0.0.1:4242" {
		t.Fatalf("APIAddr = %q, %v", got, err)
	}
	c, err := ClientForHome(h)
	if err != nil || c.Addr != "127.0.0.1:4242" || c.Token != h.Token {
		t.Fatalf("ClientForHome = %+v, %v", c, err)
	}
}

func TestLockSigningExcludes(t *testing.T) {
	h := initHome(t, "aws-prod")
	unlock, err := h.LockSigning()
	if err != nil {
		t.Fatal(err)
	}
	// A second holder (another open file description, as another process
	// would have) must wait for the first.
	h2, err := LoadHome(h.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		u2, err := h2.LockSigning()
		if err != nil {
			t.Error(err)
			return
		}
		got.Store(true)
		u2()
	}()
	// Not a timed assertion: the flag cannot be set while we hold the lock,
	// whatever the scheduling; the sleep only gives a broken lock a chance
	// to show.
	time.Sleep(50 * time.Millisecond)
	if got.Load() {
		t.Fatal("a second LockSigning succeeded while the first was held")
	}
	unlock()
	<-done
	if !got.Load() {
		t.Fatal("the second LockSigning never got the lock")
	}
}

// TestInitRefusesPartialHome: a directory that holds keys but no config
// (an Init that crashed half-way, or a config deleted by hand) must not have
// its keys overwritten either.
func TestInitRefusesPartialHome(t *testing.T) {
	tests := []struct {
		name string
		keep string
	}{
		{name: "root key left", keep: fileRootKey},
		{name: "node identity left", keep: fileNodeKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := initHome(t, "aws-prod")
			if err := os.Remove(filepath.Join(h.Dir, fileConfig)); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(filepath.Join(h.Dir, tt.keep))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Init(h.Dir, InitOptions{Name: "aws-prod", Now: t0}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
				t.Errorf("Init over a home without config: err = %v, want a refusal", err)
			}
			after, err := os.ReadFile(filepath.Join(h.Dir, tt.keep))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("Init overwrote %s", tt.keep)
			}
		})
	}
}

// TestLoadHomeRefusesEmptyToken: with an empty token, "Authorization:
// Bearer " would pass the API's check.
func TestLoadHomeRefusesEmptyToken(t *testing.T) {
	h := initHome(t, "aws-prod")
	if err := os.WriteFile(filepath.Join(h.Dir, fileToken), []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHome(h.Dir); err == nil || !strings.Contains(err.Error(), fileToken) {
		t.Fatalf("LoadHome with an empty token: err = %v, want a refusal naming %s", err, fileToken)
	}
}
