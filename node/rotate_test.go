package node

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/bundle"
	"github.com/fednode/fednode/tlog"
)

// stagedRotation stages n keys of alg (threshold k) in h and signs the
// rotation at seq 1 with h's current threshold, as `fednode rotate
// --offline` does.
func stagedRotation(t *testing.T, h *Home, alg authority.Alg, n, k int) *StagedRotation {
	t.Helper()
	s, err := NewRotation(alg, n, k)
	if err != nil {
		t.Fatalf("NewRotation: %v", err)
	}
	sd, err := h.Sign(authority.Declaration{Kind: authority.KindRotation, Authority: h.Authority, Seq: 1, Prev: h.Authority,
		IssuedAt: t0.Unix(), Rotation: s.Rotation()})
	if err != nil {
		t.Fatalf("sign rotation: %v", err)
	}
	if err := h.StageSigned(s, sd); err != nil {
		t.Fatalf("StageSigned: %v", err)
	}
	return s
}

// keyFiles returns every private key on disk under dir (home, stage,
// retired), by key ID.
func keyFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.HasSuffix(p, ".key") || filepath.Base(p) == fileNodeKey {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		k, err := authority.ParsePrivateKey(b)
		if err != nil {
			return err
		}
		out[string(k.Public().KeyID())] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCommitRotation: committing installs the new keys as root.key,
// root-2.key, ... and retires the old ones, and a commit interrupted at
// any step is finished by running it again, with no key lost on the way.
func TestCommitRotation(t *testing.T) {
	tests := []struct {
		name string
		// crash leaves the home as an interrupted commit would.
		crash func(t *testing.T, h *Home, s *StagedRotation)
		// loads says whether LoadHome works before the commit is finished.
		loads bool
	}{
		{"no crash", func(*testing.T, *Home, *StagedRotation) {}, true},
		{"after the new root.key was written", func(t *testing.T, h *Home, s *StagedRotation) {
			b, _ := authority.MarshalPrivateKey(s.Keys[0])
			if err := os.MkdirAll(filepath.Join(h.Dir, dirRetired), 0o700); err != nil {
				t.Fatal(err)
			}
			old, _ := os.ReadFile(filepath.Join(h.Dir, fileRootKey))
			k, _ := authority.ParsePrivateKey(old)
			if err := WriteFileAtomic(filepath.Join(h.Dir, dirRetired, "x.key"), old, 0o600); err != nil || k == nil {
				t.Fatal(err)
			}
			if err := WriteFileAtomic(filepath.Join(h.Dir, fileRootKey), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"after rotation.cose was written, before the stage went", func(t *testing.T, h *Home, s *StagedRotation) {
			// Everything but the stage's removal: commit, then restore the stage.
			stage := filepath.Join(h.Dir, dirPending)
			saved := t.TempDir()
			if err := os.CopyFS(saved, os.DirFS(stage)); err != nil {
				t.Fatal(err)
			}
			if _, err := h.CommitRotation(); err != nil {
				t.Fatal(err)
			}
			if err := os.CopyFS(stage, os.DirFS(saved)); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Init(filepath.Join(t.TempDir(), "gov"), InitOptions{Name: "gov", Now: t0, Keys: 2, Threshold: 2})
			if err != nil {
				t.Fatal(err)
			}
			old := keyFiles(t, h.Dir)
			s := stagedRotation(t, h, authority.AlgMLDSA65, 3, 2)
			// Staged: the home still loads with its old keys.
			if again, err := LoadHome(h.Dir); err != nil || again.Threshold != 2 || again.Rotation != nil {
				t.Fatalf("LoadHome with a stage: %v", err)
			}
			tt.crash(t, h, s)
			if _, err := LoadHome(h.Dir); (err == nil) != tt.loads {
				t.Fatalf("LoadHome after the crash: %v, want loads=%v", err, tt.loads)
			} else if err != nil && !strings.Contains(err.Error(), "--commit") {
				t.Errorf("LoadHome's refusal does not say how to finish: %v", err)
			}
			all := keyFiles(t, h.Dir)
			for kid := range old {
				if !all[kid] {
					t.Fatal("an old key is on disk nowhere after the crash")
				}
			}
			sd, err := h.CommitRotation()
			if err != nil {
				t.Fatalf("CommitRotation: %v", err)
			}
			got, err := LoadHome(h.Dir)
			if err != nil {
				t.Fatalf("LoadHome: %v", err)
			}
			if got.Threshold != 2 || len(got.Roots) != 3 || !bytes.Equal(got.Rotation, sd.Raw) {
				t.Fatalf("home after commit: %d keys, threshold %d", len(got.Roots), got.Threshold)
			}
			for i, k := range s.Keys {
				if !bytes.Equal(got.Roots[i].Public().Key, k.Public().Key) {
					t.Errorf("%s is not the staged key %d", rootKeyFile(i), i)
				}
			}
			fi, err := os.Stat(filepath.Join(h.Dir, dirRetired))
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("retired/: %v %v", fi, err)
			}
			retired := keyFiles(t, filepath.Join(h.Dir, dirRetired))
			for kid := range old {
				if !retired[kid] {
					t.Error("an old root key is not in retired/")
				}
			}
			ents, _ := os.ReadDir(filepath.Join(h.Dir, dirRetired))
			for _, e := range ents {
				if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
					t.Errorf("retired/%s has mode %v", e.Name(), fi.Mode().Perm())
				}
			}
			if _, err := os.Stat(filepath.Join(h.Dir, dirPending)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the stage is still there: %v", err)
			}
			if _, err := h.CommitRotation(); !errors.Is(err, ErrNoRotationStaged) {
				t.Errorf("second commit: %v, want ErrNoRotationStaged", err)
			}
		})
	}
}

// TestStageSigned: a signed stage of other keys is never replaced; one of
// the same keys (a retry at a later position) is.
func TestStageSigned(t *testing.T) {
	h := initHome(t, "gov")
	if _, err := NewRotation(authority.AlgEd25519, 2, 3); err == nil {
		t.Fatal("threshold 3 of 2 keys")
	}
	s := stagedRotation(t, h, authority.AlgEd25519, 1, 1)
	// The same keys at another position: the envelope is replaced.
	again, err := h.Sign(authority.Declaration{Kind: authority.KindRotation, Authority: h.Authority, Seq: 1, Prev: h.Authority,
		IssuedAt: t0.Unix() + 1, Rotation: s.Rotation()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.StageSigned(s, again); err != nil {
		t.Fatalf("restaging the same keys: %v", err)
	}
	if st, err := h.Staged(); err != nil || st.Signed.ID != again.ID {
		t.Fatalf("Staged = %v, %v; want the new envelope", st, err)
	}
	// Other keys: refused, and the stage is untouched.
	other, err := NewRotation(authority.AlgEd25519, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := h.Sign(authority.Declaration{Kind: authority.KindRotation, Authority: h.Authority, Seq: 1, Prev: h.Authority,
		IssuedAt: t0.Unix(), Rotation: other.Rotation()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.StageSigned(other, sd); !errors.Is(err, ErrRotationStaged) {
		t.Fatalf("a signed stage was replaced: %v", err)
	}
	if st, err := h.Staged(); err != nil || !st.sameKeys(s) || st.Signed.ID != again.ID {
		t.Fatalf("the stage changed: %v", err)
	}
	// A rotation of other keys than the ones given is refused outright.
	if err := h.StageSigned(s, sd); err == nil {
		t.Fatal("staged a rotation that does not declare the staged keys")
	}
}

// TestNodeSignsWithRotatedKeys: once a rotation is agreed, the node signs
// nothing with its retired key; once the new keys are installed it signs
// checkpoints, receipts and bundles with them (here ML-DSA-65, so checkpoint
// notes of the new note type), and verifiers take the current root set.
func TestNodeSignsWithRotatedKeys(t *testing.T) {
	n, h := startSingle(t, "rot")
	oldKey := h.Root.Public()
	s, err := NewRotation(authority.AlgMLDSA65, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sd, err := SignNextWith(ctx, h, n, t0, func(d *authority.Declaration) {
		d.Kind, d.Rotation = authority.KindRotation, s.Rotation()
	}, SignOptions{Before: func(sd *authority.Signed) error { return h.StageSigned(s, sd) }})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "rotation agreed", func() bool { return n.Agreed(sd.ID) })
	if _, err := n.Checkpoint(); !errors.Is(err, ErrKeyRetired) {
		t.Fatalf("checkpoint before the new keys are installed: %v, want ErrKeyRetired", err)
	}
	if _, err := h.CommitRotation(); err != nil {
		t.Fatal(err)
	}
	cp, err := n.Checkpoint()
	if err != nil {
		t.Fatalf("checkpoint after install: %v", err)
	}
	newKey := s.Keys[0].Public()
	if _, _, err := tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: "rot", Key: newKey}}); err != nil {
		t.Fatalf("checkpoint with the new key: %v", err)
	}
	if _, _, err := tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: "rot", Key: oldKey}}); !errors.Is(err, tlog.ErrUnverified) {
		t.Fatalf("checkpoint with the old key: %v, want ErrUnverified", err)
	}
	b, err := n.ExportBundle(ctx, ExportOptions{})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	bd, err := bundle.Open(b, bundle.Policy{Trust: []authority.ID{h.Authority}})
	if err != nil {
		t.Fatalf("bundle after rotation: %v", err)
	}
	if len(bd.CheckpointSigners) != 1 {
		t.Errorf("checkpoint signers %v", bd.CheckpointSigners)
	}
	cred := credential(t, h.Authority, "alice", s.Keys[0])
	_, raw, err := n.VerifyWithReceipt(cred.Raw, "rot", "r", "read", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReceipt(raw, []authority.PublicKey{newKey}); err != nil {
		t.Fatalf("receipt with the new key: %v", err)
	}
	if _, err := OpenReceipt(raw, []authority.PublicKey{oldKey}); err == nil {
		t.Fatal("receipt opened with the retired key")
	}
}

// TestFollowRotations: a verifier outside the graph follows an authority's
// root set through rotations each signed by the threshold before it.
func TestFollowRotations(t *testing.T) {
	k := func(n byte) *authority.PrivateKey {
		key, err := authority.GenerateKey(authority.AlgEd25519, bytes.NewReader(bytes.Repeat([]byte{n}, 32)))
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	a1, a2, b1, c1 := k(1), k(2), k(3), k(4)
	gen := mustSign(t, authority.Declaration{Kind: authority.KindGenesis, IssuedAt: t0.Unix(),
		Genesis: &authority.Genesis{Name: "g", RootKeys: []authority.PublicKey{a1.Public(), a2.Public()}, Threshold: 1}}, a1)
	rotate := func(seq uint64, prev authority.ID, to *authority.PrivateKey, by ...*authority.PrivateKey) *authority.Signed {
		sd, err := authority.SignMulti(authority.Declaration{Kind: authority.KindRotation, Authority: gen.ID, Seq: seq, Prev: prev, IssuedAt: t0.Unix(),
			Rotation: &authority.Rotation{RootKeys: []authority.PublicKey{to.Public()}, Threshold: 1}}, by...)
		if err != nil {
			t.Fatal(err)
		}
		return sd
	}
	r1 := rotate(1, gen.ID, b1, a2)
	r2 := rotate(2, r1.ID, c1, b1)
	forged := rotate(2, r1.ID, c1, a1) // by a key r1 retired
	tests := []struct {
		name string
		rots []*authority.Signed
		want []byte // kid of the current key; nil: refused
	}{
		{"genesis only", nil, nil},
		{"two rotations", []*authority.Signed{r1, r2}, c1.Public().KeyID()},
		{"a rotation by a retired key", []*authority.Signed{r1, forged}, nil},
		{"rotations out of order", []*authority.Signed{r2, r1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := FollowRotations(gen, tt.rots)
			switch {
			case tt.rots == nil:
				if err != nil || len(set.Keys) != 2 || set.Name != "g" {
					t.Fatalf("genesis set: %+v, %v", set, err)
				}
			case tt.want == nil:
				if err == nil {
					t.Fatal("accepted")
				}
				t.Log(err)
			default:
				if err != nil || len(set.Keys) != 1 || !bytes.Equal(set.Keys[0].KeyID(), tt.want) {
					t.Fatalf("set %+v, %v", set, err)
				}
			}
		})
	}
}
