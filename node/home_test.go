package node

import (
	"bytes"
	"context"
	"errors"
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

// TestInitRootKeySets: init with k-of-n root keys of each algorithm writes
// n key files (0600), a genesis signed by k of them naming all n and the
// threshold k, and LoadHome reads them all back in order.
func TestInitRootKeySets(t *testing.T) {
	tests := []struct {
		name      string
		alg       authority.Alg
		keys      int
		threshold int
	}{
		{name: "default", keys: 0, threshold: 0},
		{name: "ed25519 2 of 3", alg: authority.AlgEd25519, keys: 3, threshold: 2},
		{name: "mldsa65 2 of 2", alg: authority.AlgMLDSA65, keys: 2, threshold: 2},
		{name: "hybrid 1 of 2", alg: authority.AlgHybrid, keys: 2, threshold: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "h")
			if _, err := Init(dir, InitOptions{Name: "aws-prod", Now: t0, Alg: tt.alg, Keys: tt.keys, Threshold: tt.threshold}); err != nil {
				t.Fatal(err)
			}
			h, err := LoadHome(dir)
			if err != nil {
				t.Fatal(err)
			}
			wantKeys, wantThreshold, wantAlg := max(tt.keys, 1), max(tt.threshold, 1), tt.alg
			if wantAlg == 0 {
				wantAlg = authority.AlgEd25519
			}
			if len(h.Roots) != wantKeys || h.Root != h.Roots[0] || h.Threshold != wantThreshold {
				t.Fatalf("home has %d roots (Root first: %v), threshold %d; want %d, true, %d", len(h.Roots), h.Root == h.Roots[0], h.Threshold, wantKeys, wantThreshold)
			}
			for i := 0; i < wantKeys; i++ {
				fi, err := os.Stat(filepath.Join(dir, rootKeyFile(i)))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s mode = %v, want 0600", rootKeyFile(i), fi.Mode().Perm())
				}
				if h.Roots[i].Alg() != wantAlg {
					t.Errorf("root key %d is %v, want %v", i, h.Roots[i].Alg(), wantAlg)
				}
			}
			gen, err := authority.Parse(h.Genesis)
			if err != nil {
				t.Fatal(err)
			}
			g := gen.Decl.Genesis
			if len(g.RootKeys) != wantKeys || int(g.Threshold) != wantThreshold || len(gen.Signatures) != wantThreshold {
				t.Fatalf("genesis: %d root keys, threshold %d, %d signatures; want %d, %d, %d", len(g.RootKeys), g.Threshold, len(gen.Signatures), wantKeys, wantThreshold, wantThreshold)
			}
			for i, k := range h.Roots {
				if !bytes.Equal(g.RootKeys[i].KeyID(), k.Public().KeyID()) {
					t.Errorf("genesis root key %d is not %s", i, rootKeyFile(i))
				}
			}
			if err := gen.VerifyThreshold(g.RootKeys, wantThreshold); err != nil {
				t.Errorf("genesis does not meet its own threshold: %v", err)
			}
		})
	}
}

// TestInitRootKeySetRefuses: bad key counts and thresholds are refused
// before anything is written; a stray root-N.key counts as a home.
func TestInitRootKeySetRefuses(t *testing.T) {
	tests := []struct {
		name string
		o    InitOptions
		want string
	}{
		{name: "threshold over keys", o: InitOptions{Keys: 2, Threshold: 3}, want: "--threshold 3"},
		{name: "too many keys", o: InitOptions{Keys: authority.MaxRootKeys + 1}, want: "--keys"},
		{name: "negative threshold", o: InitOptions{Keys: 2, Threshold: -1}, want: "--threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "h")
			tt.o.Name, tt.o.Now = "aws-prod", t0
			if _, err := Init(dir, tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Init: err = %v, want one containing %q", err, tt.want)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Error("a refused Init created the home directory")
			}
		})
	}
	t.Run("stray root-2.key", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "root-2.key"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Init(dir, InitOptions{Name: "aws-prod", Now: t0}); err == nil || !strings.Contains(err.Error(), "root-2.key") {
			t.Fatalf("Init: err = %v, want a refusal naming root-2.key", err)
		}
	})
}

// TestLoadHomeChecksEveryRootKey: each root-N.key must be private, and the
// set has no gap.
func TestLoadHomeChecksEveryRootKey(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{name: "root-3.key readable by others", setup: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "root-3.key"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: "root-3.key has mode"},
		{name: "gap", setup: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "root-2.key")); err != nil {
				t.Fatal(err)
			}
		}, want: "no gap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "h")
			if _, err := Init(dir, InitOptions{Name: "aws-prod", Now: t0, Keys: 3, Threshold: 2}); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			if _, err := LoadHome(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadHome: err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestSignNextThreshold: SignNext signs with the threshold of root keys, so a
// rule of a 2-of-3 authority (Ed25519 and ML-DSA-65) is agreed; a home left
// with fewer keys than the threshold refuses to sign.
func TestSignNextThreshold(t *testing.T) {
	tests := []struct {
		name string
		alg  authority.Alg
	}{
		{name: "ed25519", alg: authority.AlgEd25519},
		{name: "mldsa65", alg: authority.AlgMLDSA65},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Init(filepath.Join(t.TempDir(), "aws"), InitOptions{Name: "aws-prod", Kind: "aws", Now: t0, Alg: tt.alg, Keys: 3, Threshold: 2})
			if err != nil {
				t.Fatal(err)
			}
			n := startNode(t, h, Config{Bootstrap: true, API: "127.0.0.1:0"})
			waitFor(t, waitAgreed, "own genesis agreed", func() bool { return n.Agreed(n.Authority()) })
			okta := newOutsider(t, "okta")
			if _, err := n.Submit(context.Background(), okta.gen.Raw); err != nil {
				t.Fatal(err)
			}
			sd := nextRule(t, h, n, okta.id(), "s3://logs/*")
			if len(sd.Signatures) != 2 {
				t.Errorf("rule has %d signatures, want 2", len(sd.Signatures))
			}
			waitFor(t, waitAgreed, "the 2-of-3 rule agreed", agreedAt(sd.ID, n))

			short := *h
			short.Roots = h.Roots[:1]
			if _, err := SignNext(context.Background(), &short, n, t0, func(d *authority.Declaration) {
				d.Kind = authority.KindRevocation
				d.Revocation = &authority.Revocation{Target: sd.ID}
			}); !errors.Is(err, ErrBelowThreshold) {
				t.Fatalf("SignNext with 1 of 2 keys: err = %v, want ErrBelowThreshold", err)
			}
		})
	}
}
