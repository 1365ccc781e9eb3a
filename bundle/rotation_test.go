package bundle

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// TestOpenAfterRotation: a bundle is checked against each signer's root set
// as its own graph leaves it: after a rotation the new key signs, and the
// retired one signs nothing new (seal or checkpoint), while a bundle of the
// graph before the rotation still opens with the old key.
func TestOpenAfterRotation(t *testing.T) {
	pki, aws := newParty(t, "pki"), newParty(t, "aws")
	newKey := testKey(t, "pki rotated")
	rot := mustSign(t, authority.Declaration{
		Kind: authority.KindRotation, Authority: pki.id(), Seq: 1, Prev: pki.id(),
		IssuedAt: exportTime.Add(-time.Hour).Unix(),
		Rotation: &authority.Rotation{RootKeys: []authority.PublicKey{newKey.Public()}, Threshold: 1},
	}, pki.key)
	all := [][]byte{pki.gen.Raw, aws.gen.Raw, rot.Raw}
	log := logOf(t, all)
	pkiNew := party{name: "pki", key: newKey, gen: pki.gen}
	trust := Policy{Trust: []authority.ID{pki.id()}}

	tests := []struct {
		name      string
		bundle    func() []byte
		wantError string // "" opens
	}{
		{"sealed and checkpointed by the new key", func() []byte {
			return forge(t, contentsOf(t, all, log, 0, 3, pkiNew), pkiNew)
		}, ""},
		{"the graph before the rotation, by the old key", func() []byte {
			return forge(t, contentsOf(t, all, log, 0, 2, pki), pki)
		}, ""},
		{"sealed by the retired key", func() []byte {
			return forge(t, contentsOf(t, all, log, 0, 3, pki), pki)
		}, "current root set"},
		{"sealed by the new key, checkpoint by the retired one", func() []byte {
			return forge(t, contentsOf(t, all, log, 0, 3, pki), pkiNew)
		}, "current root set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd, err := Open(tt.bundle(), trust)
			if tt.wantError == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if len(bd.CheckpointSigners) != 1 || bd.CheckpointSigners[0] != pki.id() {
					t.Errorf("checkpoint signers %v", bd.CheckpointSigners)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantError) {
				t.Fatalf("Open = %v, want ErrInvalid naming %q", err, tt.wantError)
			}
			t.Log(err)
		})
	}

	// Build takes the signer's current set when given: the exporting node
	// knows it from its graph.
	s := pkiNew.signer()
	if _, err := Build(contentsOf(t, all, log, 0, 3, pkiNew), s); err == nil || !strings.Contains(err.Error(), "not a root key") {
		t.Fatalf("Build with a key outside the genesis and no Roots: %v", err)
	}
	s.Roots = []authority.PublicKey{newKey.Public()}
	b, err := Build(contentsOf(t, all, log, 0, 3, pkiNew), s)
	if err != nil {
		t.Fatalf("Build with Roots: %v", err)
	}
	mustOpen(t, b, trust)

	// A delta over the rotation, by the new key, on a base by the old one.
	base := mustOpen(t, forge(t, contentsOf(t, all, log, 0, 2, pki), pki), trust)
	if _, err := OpenDelta(base, forge(t, contentsOf(t, all, log, 2, 3, pkiNew), pkiNew), trust); err != nil {
		t.Fatalf("OpenDelta: %v", err)
	}
}
