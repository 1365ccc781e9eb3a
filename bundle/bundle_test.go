package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

var update = flag.Bool("update", false, "rewrite testdata/v2-valid.bundle from the fixture")

func TestOpen(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		policy  Policy
		trusted []authority.ID
	}{
		{"no trust list", Policy{}, []authority.ID{f.pki.id(), f.aws.id()}},
		{"no trust list, both needed", Policy{MinSignatures: 2}, []authority.ID{f.pki.id(), f.aws.id()}},
		{"exporter trusted", Policy{Trust: []authority.ID{f.pki.id()}}, []authority.ID{f.pki.id()}},
		{"cosigner trusted only", Policy{Trust: []authority.ID{f.aws.id()}}, []authority.ID{f.aws.id()}},
		{"both trusted, k=2", Policy{Trust: []authority.ID{f.gcp.id(), f.aws.id(), f.pki.id()}, MinSignatures: 2}, []authority.ID{f.pki.id(), f.aws.id()}},
		{"origin pinned", Policy{Origin: testOrigin}, []authority.ID{f.pki.id(), f.aws.id()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd := mustOpen(t, f.full, tt.policy)
			if bd.GraphVersion != fullVersion || bd.Graph.Version() != fullVersion || bd.BaseVersion != 0 {
				t.Errorf("graph version %d, graph %d, base %d", bd.GraphVersion, bd.Graph.Version(), bd.BaseVersion)
			}
			if bd.ExportedAt != exportTime.UnixMilli() || !bd.Expires().Equal(notAfter) || bd.Origin != testOrigin {
				t.Errorf("exported at %d, expires %v, origin %q", bd.ExportedAt, bd.Expires(), bd.Origin)
			}
			if bd.Head.Size != fullVersion || bd.Head.Origin != testOrigin || len(bd.Head.Root) != tlog.HashSize {
				t.Errorf("Head = %v", bd.Head)
			}
			if bd.Exporter().ID != f.pki.id() || len(bd.Signers) != 2 || bd.Signers[1].Name != "aws" {
				t.Errorf("signers: exporter %s, %d signers", bd.Exporter().Name, len(bd.Signers))
			}
			if bd.Proofs != nil {
				t.Error("an opened bundle keeps its inclusion proofs")
			}
			if !slices.Equal(bd.Trusted, tt.trusted) {
				t.Errorf("Trusted = %v, want %v", bd.Trusted, tt.trusted)
			}
			if !slices.Equal(bd.CheckpointSigners, []authority.ID{f.pki.id(), f.aws.id()}) {
				t.Errorf("CheckpointSigners = %v", bd.CheckpointSigners)
			}
			for i, id := range bd.Graph.Order() {
				if id != authority.IDOf(f.all[i]) {
					t.Errorf("graph order[%d] = %s, want %s", i, id.Short(), authority.IDOf(f.all[i]).Short())
				}
			}
		})
	}
}

// TestRefusals covers every kind of bad bundle Open must refuse. Each
// forged case signs its payload with keys that pass every check before the
// one under test, so that the check under test is what refuses.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	good := f.contents(t, 0, fullVersion, f.pki)
	canon, err := encMode.Marshal(&payload{Format: FormatVersion, Contents: good})
	if err != nil {
		t.Fatal(err)
	}
	if canon[0] != 0xa8 || canon[1] != 0x01 || canon[2] != 0x02 {
		t.Fatalf("payload does not start with map(8) {1: 2: % x", canon[:3])
	}
	digest := sha256.Sum256
	// in a consistent log: the exporter signed a checkpoint over these
	// declarations, so only the graph rebuild can refuse them.
	inLog := func(decls ...[]byte) []byte {
		log := logOf(t, decls)
		return forge(t, contentsOf(t, decls, log, 0, uint64(len(decls)), f.pki), f.pki)
	}
	g := f.all[:fullVersion]
	selfRevoke := revocationAt(t, f.aws, 2, f.revocation.ID, f.aws.id())
	trustPKI := []authority.ID{f.pki.id()}
	tests := []struct {
		name   string
		bundle func() []byte
		policy Policy
		frag   string
		is     error // also wrapped, besides ErrInvalid
	}{
		// Outer structure.
		{name: "empty", bundle: func() []byte { return nil }, frag: "outer structure"},
		{name: "garbage", bundle: func() []byte { return []byte("PK\x03\x04 a zip file, not a bundle") }, frag: "outer structure"},
		{name: "a declaration, not a bundle", bundle: func() []byte { return f.rule1.Raw }, frag: "this is a rule declaration envelope, not a bundle"},
		{
			name: "format 1 bundle",
			bundle: func() []byte {
				b, err := os.ReadFile(filepath.Join("testdata", "format-1.bundle"))
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			frag: "this is a format 1 bundle (a single COSE_Sign1 envelope); this reader knows only format 2",
		},
		{name: "truncated by one byte", bundle: func() []byte { return f.full[:len(f.full)-1] }, frag: "outer structure"},
		{name: "trailing byte", bundle: func() []byte { return append(bytes.Clone(f.full), 0) }, frag: "outer structure"},
		{name: "no signature", bundle: func() []byte { return assemble(t, canon) }, frag: "no signature"},
		{
			name: "too many signatures",
			bundle: func() []byte {
				sig := outerOf(t, forgePayload(t, canon, f.pki)).Signatures[0]
				sigs := make([][]byte, MaxSigners+1)
				for i := range sigs {
					sigs[i] = sig
				}
				return assemble(t, canon, sigs...)
			},
			frag: "33 signatures, over the limit of 32",
		},
		{
			name: "non-canonical outer map",
			// map(2) with its length in a following byte: 0xb8 0x02, not 0xa2
			bundle: func() []byte { return append([]byte{0xb8, 0x02}, f.full[1:]...) },
			frag:   "not in Core Deterministic CBOR encoding",
		},
		{
			name:   "self-described CBOR tag",
			bundle: func() []byte { return append([]byte{0xd9, 0xd9, 0xf7}, f.full...) },
			frag:   "outer structure {1: payload, 2: [signatures]}: not in Core Deterministic CBOR encoding: tag or simple value (major type 6) at byte 0",
		},
		{
			name:   "indefinite-length outer map",
			bundle: func() []byte { return append(append([]byte{0xbf}, f.full[1:]...), 0xff) },
			frag:   "indefinite length or reserved value at byte 0",
		},
		{
			name: "null for the signatures",
			bundle: func() []byte {
				b, err := encMode.Marshal(map[int]any{1: canon, 2: nil})
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			frag: "tag or simple value (major type 7)",
		},
		{
			name:   "text key in the outer map",
			bundle: func() []byte { return append([]byte{0xa2, 0x61, '1'}, f.full[2:]...) },
			frag:   "map key at byte 1 is not an unsigned integer",
		},
		// Payload.
		{
			name:   "newer format",
			bundle: func() []byte { return forgePayload(t, append([]byte{0xa8, 0x01, 0x03}, canon[3:]...), f.pki) },
			frag:   "format 3 is newer than this reader, which knows only format 2",
		},
		{
			name:   "format 1 payload",
			bundle: func() []byte { return forgePayload(t, append([]byte{0xa8, 0x01, 0x01}, canon[3:]...), f.pki) },
			frag:   "format 1: this reader knows only format 2",
		},
		{
			name:   "non-minimal integer in payload",
			bundle: func() []byte { return forgePayload(t, append([]byte{0xa8, 0x01, 0x18, 0x02}, canon[3:]...), f.pki) },
			frag:   "payload: not in Core Deterministic CBOR encoding: non-minimal integer or length at byte 2",
		},
		{
			name:   "duplicate key in payload",
			bundle: func() []byte { return forgePayload(t, append(append([]byte{0xa9}, canon[1:]...), 0x01, 0x02), f.pki) },
			frag:   "payload: not in Core Deterministic CBOR encoding: map key 1 at byte",
		},
		{
			name:   "unknown field in payload",
			bundle: func() []byte { return forgePayload(t, append(append([]byte{0xa9}, canon[1:]...), 0x0c, 0x00), f.pki) },
			frag:   "payload: cbor: found unknown field",
		},
		{
			name:   "explicit zero base version",
			bundle: func() []byte { return forgePayload(t, append(append([]byte{0xa9}, canon[1:]...), 0x09, 0x00), f.pki) },
			frag:   "payload: has keys [1 2 3 4 5 6 7 8 9], want [1 2 3 4 5 6 7 8]",
		},
		{
			name: "exported-at left out",
			bundle: func() []byte {
				if canon[5] != 0x03 || canon[6] != 0x1b || canon[15] != 0x04 {
					t.Fatalf("payload does not have exported-at as 3: uint64 at byte 5: % x", canon[:16])
				}
				return forgePayload(t, append([]byte{0xa7}, append(bytes.Clone(canon[1:5]), canon[15:]...)...), f.pki)
			},
			frag: "payload: has keys [1 2 4 5 6 7 8], want [1 2 3 4 5 6 7 8]",
		},
		{name: "payload not a map", bundle: func() []byte { return forgePayload(t, []byte{0x80}, f.pki) }, frag: "payload: cbor: cannot unmarshal array"},
		{
			name:   "graph version zero",
			bundle: func() []byte { c := good; c.GraphVersion = 0; return forge(t, c, f.pki) },
			frag:   "graph version 0",
		},
		{
			name:   "graph version over the limit",
			bundle: func() []byte { c := good; c.GraphVersion = MaxDeclarations + 1; return forge(t, c, f.pki) },
			frag:   "over the limit of 1048576 declarations",
		},
		{
			name:   "declaration removed",
			bundle: func() []byte { c := withCopies(good); c.Declarations = c.Declarations[:6]; return forge(t, c, f.pki) },
			frag:   "graph version 7, base version 0, but 6 declarations: want 7",
		},
		{
			name:   "proof missing",
			bundle: func() []byte { c := withCopies(good); c.Proofs = c.Proofs[:6]; return forge(t, c, f.pki) },
			frag:   "6 inclusion proofs for 7 declarations",
		},
		{
			name: "proof too long",
			bundle: func() []byte {
				c := withCopies(good)
				c.Proofs[2] = make([][]byte, MaxProofHashes+1)
				return forge(t, c, f.pki)
			},
			frag: "declaration 3: inclusion proof of 65 hashes, over the limit of 64",
		},
		{
			name:   "no deadline",
			bundle: func() []byte { c := good; c.NotAfter = 0; return forge(t, c, f.pki) },
			frag:   "not-after is 0: every bundle must have a deadline",
		},
		{
			name:   "deadline before the export",
			bundle: func() []byte { c := good; c.NotAfter = c.ExportedAt; return forge(t, c, f.pki) },
			frag:   "is not after exported-at",
		},
		{
			name:   "negative exported-at",
			bundle: func() []byte { c := good; c.ExportedAt = -1; return forge(t, c, f.pki) },
			frag:   "exported-at -1 is negative",
		},
		{
			name:   "no origin",
			bundle: func() []byte { c := good; c.Origin = ""; return forge(t, c, f.pki) },
			frag:   "origin must be 1 to 255 bytes, got 0",
		},
		{
			name:   "full bundle with a base root",
			bundle: func() []byte { c := good; c.BaseRoot = make([]byte, 32); return forge(t, c, f.pki) },
			frag:   "a full bundle (base version 0) carries no base root",
		},
		{
			name:   "delta given to Open",
			bundle: func() []byte { return f.delta },
			frag:   "a delta bundle from graph version 7: open it with OpenDelta",
		},
		{
			name:   "another log than the site's",
			bundle: func() []byte { return f.full },
			policy: Policy{Origin: "fednode/other"},
			frag:   `bundle of log "fednode/test-consortium", but this site follows "fednode/other"`,
		},
		// Signatures.
		{
			name: "signature envelope malformed",
			bundle: func() []byte {
				return assemble(t, canon, outerOf(t, forgePayload(t, canon, f.pki)).Signatures[0], []byte("junk"))
			},
			frag: "signature 2: authority: malformed declaration",
			is:   authority.ErrMalformed,
		},
		{
			name: "signature about something else",
			bundle: func() []byte {
				return assemble(t, canon, sealStatement(t, statement{Context: "fednode-receipt-v1", Digest: digest(canon), Signer: f.pki.id()}, f.pki.key))
			},
			frag: `signature 1: signed statement is about "fednode-receipt-v1", not "fednode-bundle-v2"`,
		},
		{
			name: "signature over another payload",
			bundle: func() []byte {
				other := outerOf(t, f.full).Signatures[0]
				return assemble(t, canon, other)
			},
			frag: "signature 1 (authority " + f.pki.id().Short() + ") is over another payload",
		},
		{
			name:   "the same signer twice",
			bundle: func() []byte { return forgePayload(t, canon, f.pki, f.aws, f.pki) },
			frag:   "signatures 1 and 3 are both by authority " + f.pki.id().Short(),
		},
		{
			name:   "fewer than k signatures",
			bundle: func() []byte { return forgePayload(t, canon, f.pki) },
			policy: Policy{Trust: []authority.ID{f.pki.id(), f.aws.id()}, MinSignatures: 2},
			frag:   "1 of its 1 signatures are by trusted authorities, need 2",
		},
		{
			name:   "signature of an untrusted authority not counted",
			bundle: func() []byte { return forgePayload(t, canon, f.pki, f.mallory) },
			policy: Policy{Trust: trustPKI, MinSignatures: 2},
			frag:   "1 of its 2 signatures are by trusted authorities, need 2",
		},
		{
			name:   "no trusted signer",
			bundle: func() []byte { return forgePayload(t, canon, f.pki) },
			policy: Policy{Trust: []authority.ID{f.aws.id()}},
			frag:   "0 of its 1 signatures are by trusted authorities, need 1",
		},
		{
			name:   "signer not in the graph",
			bundle: func() []byte { return forgePayload(t, canon, f.pki, f.stranger) },
			frag:   "signature 2 names authority " + f.stranger.id().Short() + ", whose genesis is not among the bundle's 7 declarations",
		},
		{
			name: "signer names a rule",
			bundle: func() []byte {
				return assemble(t, canon, outerOf(t, forgePayload(t, canon, f.pki)).Signatures[0],
					sealStatement(t, statement{Context: sigContext, Digest: digest(canon), Signer: f.rule1.ID}, f.pki.key))
			},
			frag: "signature 2 names declaration 5 (rule " + f.rule1.ID.Short() + "), not a genesis",
		},
		{
			name: "signature by a key the signer never declared",
			bundle: func() []byte {
				return assemble(t, canon, sealStatement(t, statement{Context: sigContext, Digest: digest(canon), Signer: f.pki.id()}, f.mallory.key))
			},
			policy: Policy{Trust: trustPKI},
			frag:   "signature 1 by pki (" + f.pki.id().Short() + ") does not verify with its genesis keys",
			is:     authority.ErrBadSignature,
		},
		{
			name:   "signature byte flipped",
			bundle: func() []byte { return flip(f.full, len(f.full)-1) },
			frag:   "signature 2 by aws (" + f.aws.id().Short() + ") does not verify with its genesis keys",
			is:     authority.ErrBadSignature,
		},
		{
			name: "signer revoked itself",
			bundle: func() []byte {
				decls := append(slices.Clone(g), selfRevoke.Raw)
				log := logOf(t, decls)
				return forge(t, contentsOf(t, decls, log, 0, uint64(len(decls)), f.pki), f.pki, f.aws)
			},
			policy: Policy{Trust: []authority.ID{f.pki.id(), f.aws.id()}, MinSignatures: 2},
			frag:   "1 valid signatures of trusted authorities that have not revoked themselves, need 2: aws revoked itself (revocation " + selfRevoke.ID.Short() + ")",
		},
		// Checkpoint.
		{
			name: "checkpoint not signed by the exporter",
			bundle: func() []byte {
				c := good
				c.Checkpoint = checkpoint(t, f.log, testOrigin, fullVersion, f.aws)
				return forge(t, c, f.pki, f.aws)
			},
			frag: "checkpoint, with the keys of the exporter pki (" + f.pki.id().Short() + "): tlog: open checkpoint: no signature from a known key",
			is:   tlog.ErrUnverified,
		},
		{
			name: "tampered checkpoint note",
			bundle: func() []byte {
				c := good
				other, err := tlog.RootAt(f.log, fullVersion-1)
				if err != nil {
					t.Fatal(err)
				}
				lines := strings.SplitN(string(c.Checkpoint), "\n", 4)
				lines[2] = base64.StdEncoding.EncodeToString(other)
				c.Checkpoint = []byte(strings.Join(lines, "\n"))
				return forge(t, c, f.pki)
			},
			frag: "checkpoint, with the keys of the exporter pki",
			is:   tlog.ErrBadSignature,
		},
		{
			name: "cosigner's checkpoint signature does not verify",
			bundle: func() []byte {
				c := good
				// Change one base64 character of aws's signature (the last
				// line, away from its padding): still a well-formed note,
				// with a known key whose signature fails.
				note := checkpoint(t, f.log, testOrigin, fullVersion, f.pki, f.aws)
				i := len(note) - 6
				note[i] = map[bool]byte{true: 'B', false: 'A'}[note[i] == 'A']
				c.Checkpoint = note
				return forge(t, c, f.pki, f.aws)
			},
			frag: "checkpoint, with the keys of cosigner aws (" + f.aws.id().Short() + "): tlog: open checkpoint: bad checkpoint signature",
			is:   tlog.ErrBadSignature,
		},
		{
			name: "checkpoint of the wrong size",
			bundle: func() []byte {
				c := good
				c.Checkpoint = checkpoint(t, f.log, testOrigin, fullVersion-1, f.pki)
				return forge(t, c, f.pki)
			},
			frag: "checkpoint is of tree size 6, but the bundle is at graph version 7",
		},
		{
			name: "checkpoint of another log",
			bundle: func() []byte {
				c := good
				c.Checkpoint = checkpoint(t, f.log, "fednode/other", fullVersion, f.pki)
				return forge(t, c, f.pki)
			},
			frag: `checkpoint is of log "fednode/other", but the bundle says "fednode/test-consortium"`,
		},
		// Inclusion proofs.
		{
			name:   "declaration swapped for another validly signed one",
			bundle: func() []byte { c := withCopies(good); c.Declarations[4] = f.fork.Raw; return forge(t, c, f.pki) },
			frag:   "declaration 5 (rule " + f.fork.ID.Short() + "): inclusion proof does not verify against the checkpoint root",
			is:     tlog.ErrInvalidProof,
		},
		{
			name: "inclusion proof altered",
			bundle: func() []byte {
				c := withCopies(good)
				c.Proofs[2][0] = flip(c.Proofs[2][0], 0)
				return forge(t, c, f.pki)
			},
			frag: "declaration 3 (genesis " + f.gcp.id().Short() + "): inclusion proof does not verify against the checkpoint root",
			is:   tlog.ErrInvalidProof,
		},
		{
			name: "inclusion proof of another leaf",
			bundle: func() []byte {
				c := withCopies(good)
				c.Proofs[5], c.Proofs[6] = c.Proofs[6], c.Proofs[5]
				return forge(t, c, f.pki)
			},
			frag: "declaration 6 (rule " + f.rule2.ID.Short() + "): inclusion proof does not verify",
			is:   tlog.ErrInvalidProof,
		},
		{
			name:   "inclusion proof hash truncated",
			bundle: func() []byte { c := withCopies(good); c.Proofs[0][1] = c.Proofs[0][1][:31]; return forge(t, c, f.pki) },
			frag:   "declaration 1 (genesis " + f.pki.id().Short() + "): inclusion proof does not verify",
			is:     tlog.ErrInvalidProof,
		},
		// The graph, from a log that holds the same bad sequence.
		{
			name:   "equivocation in the log",
			bundle: func() []byte { return inLog(g[0], g[1], g[2], g[3], f.fork.Raw, f.rule2.Raw) },
			frag:   "declaration 6 (rule " + f.rule2.ID.Short() + "): authority: rule",
			is:     authority.ErrConflict,
		},
		{
			name:   "rules in the wrong order",
			bundle: func() []byte { return inLog(g[0], g[1], f.rule2.Raw, f.rule1.Raw) },
			frag:   "declaration 3 (rule " + f.rule2.ID.Short() + ")",
			is:     authority.ErrGap,
		},
		{
			name:   "revocation before its issuer's genesis",
			bundle: func() []byte { return inLog(g[0], f.revocation.Raw, g[1]) },
			frag:   "declaration 2 (revocation " + f.revocation.ID.Short() + ")",
			is:     authority.ErrUnknownAuthority,
		},
		{
			name:   "declaration with a bad signature",
			bundle: func() []byte { return inLog(g[0], g[1], flip(f.rule1.Raw, len(f.rule1.Raw)-1)) },
			frag:   "declaration 3 (rule " + authority.IDOf(flip(f.rule1.Raw, len(f.rule1.Raw)-1)).Short() + "): authority: bad signature",
			is:     authority.ErrBadSignature,
		},
		{
			name:   "malformed declaration",
			bundle: func() []byte { return inLog(g[0], []byte("not a declaration")) },
			frag:   "declaration 2 (" + authority.IDOf([]byte("not a declaration")).Short() + "): authority: malformed declaration",
			is:     authority.ErrMalformed,
		},
		{
			name:   "duplicate declaration",
			bundle: func() []byte { return inLog(g[0], g[1], f.rule1.Raw, f.rule1.Raw) },
			frag:   "declaration 4 (rule " + f.rule1.ID.Short() + ")",
			is:     authority.ErrDuplicate,
		},
		{
			name:   "credential in the graph",
			bundle: func() []byte { return inLog(g[0], g[1], f.alice.Raw) },
			frag:   "declaration 3 (credential " + f.alice.ID.Short() + ")",
			is:     authority.ErrOffChain,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd, err := Open(tt.bundle(), tt.policy)
			if err == nil {
				t.Fatalf("Open accepted the bundle (graph version %d)", bd.GraphVersion)
			}
			t.Log(err)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "bundle: invalid bundle: ") {
				t.Errorf("error lacks the package prefix: %v", err)
			}
			if !strings.Contains(err.Error(), tt.frag) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.frag)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v: %v", tt.is, err)
			}
		})
	}
}

func TestDelta(t *testing.T) {
	f := newFixture(t)
	base := mustOpen(t, f.full, Policy{Trust: []authority.ID{f.pki.id()}})
	tests := []struct {
		name   string
		deltas [][]byte
	}{
		{"7 to 9", [][]byte{f.delta}},
		{"7 to 8 to 9", [][]byte{
			build(t, f.contents(t, 7, 8, f.pki), f.pki),
			build(t, f.contents(t, 8, 9, f.pki, f.gcp), f.gcp, f.pki), // exported by gcp
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd := base
			for i, d := range tt.deltas {
				next, err := OpenDelta(bd, d, Policy{Trust: []authority.ID{f.pki.id()}})
				if err != nil {
					t.Fatalf("delta %d: %v", i+1, err)
				}
				if next.BaseVersion != bd.GraphVersion {
					t.Errorf("delta %d: base version %d, want %d", i+1, next.BaseVersion, bd.GraphVersion)
				}
				bd = next
			}
			if bd.GraphVersion != 9 || bd.Graph.Version() != 9 || bd.Head.Size != 9 {
				t.Errorf("graph version %d, graph %d, head %v", bd.GraphVersion, bd.Graph.Version(), bd.Head)
			}
			for i, id := range bd.Graph.Order() {
				if id != authority.IDOf(f.all[i]) {
					t.Errorf("graph order[%d] = %s, want %s", i, id.Short(), authority.IDOf(f.all[i]).Short())
				}
			}
			if base.Graph.Version() != fullVersion || len(base.all) != fullVersion {
				t.Errorf("the base changed: graph version %d, %d declarations", base.Graph.Version(), len(base.all))
			}
			// The delta's rule decides; the base's graph does not have it.
			req := authority.Request{Credential: f.alice.Raw, Target: f.pki.id(), Resource: "web/index", Action: "read"}
			at := exportTime.Add(time.Hour)
			if d := bd.Verify(req, at, VerifyOptions{}); !d.Allow || d.GraphVersion != 9 {
				t.Errorf("after the delta: %s (%s), version %d", d.Reason, d.Message, d.GraphVersion)
			}
			if d := base.Verify(req, at, VerifyOptions{}); d.Allow {
				t.Errorf("the base allows a request only the delta's rule allows: %s", d.Message)
			}
		})
	}
}

func TestDeltaRefusals(t *testing.T) {
	f := newFixture(t)
	base := mustOpen(t, f.full, Policy{})
	// other is a graph of the same size as the base with another history.
	otherDecls := append(slices.Clone(f.all[:6]), f.gcpRule.Raw)
	otherLog := logOf(t, otherDecls)
	other := mustOpen(t, build(t, contentsOf(t, otherDecls, otherLog, 0, 7, f.pki), f.pki), Policy{})
	good := f.contents(t, fullVersion, 9, f.pki)
	tests := []struct {
		name  string
		base  *Bundle
		delta func() []byte
		frag  string
		is    error
	}{
		{name: "no base", delta: func() []byte { return f.delta }, frag: "bundle: open delta: no base bundle"},
		{name: "full bundle as a delta", base: base, delta: func() []byte { return f.full }, frag: "not a delta: a full bundle"},
		{
			name:  "wrong base version",
			base:  base,
			delta: func() []byte { return build(t, f.contents(t, 8, 9, f.pki), f.pki) },
			frag:  "delta from graph version 8, but the base bundle is at version 7",
		},
		{
			name:  "base of another history",
			base:  other,
			delta: func() []byte { return f.delta },
			frag:  "delta's base root",
		},
		{
			name: "bad consistency proof",
			base: base,
			delta: func() []byte {
				c := withCopies(good)
				c.Consistency[0] = flip(c.Consistency[0], 0)
				return forge(t, c, f.pki)
			},
			frag: "consistency proof from the base at size 7 to the checkpoint at size 9 does not verify",
			is:   tlog.ErrInvalidProof,
		},
		{
			name: "consistency proof missing",
			base: base,
			delta: func() []byte {
				c := withCopies(good)
				c.Consistency = nil
				return forge(t, c, f.pki)
			},
			frag: "delta from version 7: consistency proof of 0 hashes",
		},
		{
			name: "base root claimed to match, log forked",
			base: base,
			delta: func() []byte {
				// A log that forked after version 6 cannot prove
				// consistency with the base's root at 7.
				forked := append(slices.Clone(otherDecls), f.rule3.Raw)
				log := logOf(t, forked)
				c := contentsOf(t, forked, log, fullVersion, 8, f.pki)
				c.BaseRoot = base.Head.Root
				return forge(t, c, f.pki)
			},
			frag: "consistency proof from the base at size 7 to the checkpoint at size 8 does not verify",
			is:   tlog.ErrInvalidProof,
		},
		{
			name:  "delta's declaration swapped",
			base:  base,
			delta: func() []byte { c := withCopies(good); c.Declarations[0] = f.fork.Raw; return forge(t, c, f.pki) },
			frag:  "declaration 8 (rule " + f.fork.ID.Short() + "): inclusion proof does not verify",
			is:    tlog.ErrInvalidProof,
		},
		{
			name: "delta repeats a base declaration",
			base: base,
			delta: func() []byte {
				decls := append(slices.Clone(f.all[:7]), f.rule1.Raw)
				log := logOf(t, decls)
				return forge(t, contentsOf(t, decls, log, 7, 8, f.pki), f.pki)
			},
			frag: "declaration 8 (rule " + f.rule1.ID.Short() + ")",
			is:   authority.ErrDuplicate,
		},
		{
			name: "delta signer in neither graph",
			base: base,
			delta: func() []byte {
				return forge(t, f.contents(t, 7, 9, f.pki), f.pki, f.stranger)
			},
			frag: "whose genesis is not among the bundle's 2 declarations nor in the base graph at version 7",
		},
		{
			name: "delta of another log",
			base: base,
			delta: func() []byte {
				c := good
				c.Origin = "fednode/other"
				c.Checkpoint = checkpoint(t, f.log, "fednode/other", 9, f.pki)
				return forge(t, c, f.pki)
			},
			frag: `delta of log "fednode/other", but the base bundle is of "fednode/test-consortium"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd, err := OpenDelta(tt.base, tt.delta(), Policy{})
			if err == nil {
				t.Fatalf("OpenDelta accepted the delta (graph version %d)", bd.GraphVersion)
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "bundle: ") || !strings.Contains(err.Error(), tt.frag) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.frag)
			}
			if tt.base != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v: %v", tt.is, err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	bd := mustOpen(t, f.full, Policy{Trust: []authority.ID{f.pki.id()}})
	later := exportTime.Add(36 * time.Hour)
	ageAt := func(at time.Time) int64 { return max(at.Sub(exportTime), 0).Milliseconds() }
	tests := []struct {
		name     string
		cred     []byte
		resource string
		action   string
		at       time.Time
		opts     VerifyOptions
		reason   authority.Reason
		frags    []string // in the message
	}{
		{name: "allow read", resource: "db/orders", action: "read", at: later, reason: authority.ReasonOK},
		{name: "allow by second rule", resource: "db/scratch/tmp", action: "write", at: later, reason: authority.ReasonOK},
		{name: "revoked credential", cred: f.bob.Raw, resource: "db/orders", action: "read", at: later, reason: authority.ReasonRevoked},
		{name: "action not allowed", resource: "db/orders", action: "delete", at: later, reason: authority.ReasonActionNotAllowed},
		{name: "at the export", resource: "db/orders", action: "read", at: exportTime, reason: authority.ReasonOK},
		{name: "clock behind the exporter", resource: "db/orders", action: "read", at: exportTime.Add(-time.Hour), reason: authority.ReasonOK},
		{name: "just before the deadline", resource: "db/orders", action: "read", at: notAfter.Add(-time.Millisecond), reason: authority.ReasonOK},
		{
			name: "at the deadline", resource: "db/orders", action: "read", at: notAfter, reason: authority.ReasonStaleBundle,
			frags: []string{"the bundle expired at 2025-03-21T12:00:00Z, 0s before the decision time"},
		},
		{
			name: "stale", resource: "db/orders", action: "read", at: notAfter.Add(2 * time.Hour), reason: authority.ReasonStaleBundle,
			frags: []string{"expired at 2025-03-21T12:00:00Z, 2h0m0s before the decision time 2025-03-21T14:00:00Z; get a newer bundle"},
		},
		{
			name: "stale, even for a bad credential", cred: []byte("junk"), resource: "db/orders", action: "read",
			at: notAfter.Add(time.Hour), reason: authority.ReasonStaleBundle,
		},
		{
			name: "stale beyond what the operator allows", resource: "db/orders", action: "read", at: notAfter.Add(5 * time.Hour),
			opts: VerifyOptions{AllowStale: 4 * time.Hour}, reason: authority.ReasonStaleBundle,
			frags: []string{"5h0m0s before", "stale bundles are allowed up to 4h0m0s past their deadline"},
		},
		{
			name: "stale, allowed by the operator", resource: "db/orders", action: "read", at: notAfter.Add(3 * time.Hour),
			opts: VerifyOptions{AllowStale: 4 * time.Hour}, reason: authority.ReasonOK,
			frags: []string{"pki accepts", "[stale bundle: expired at 2025-03-21T12:00:00Z, 3h0m0s before the decision; allowed by the operator up to 4h0m0s]"},
		},
		{
			name: "stale, allowed, still judged", resource: "db/orders", action: "delete", at: notAfter.Add(time.Hour),
			opts: VerifyOptions{AllowStale: 4 * time.Hour}, reason: authority.ReasonActionNotAllowed,
			frags: []string{"allowed by the operator"},
		},
		{
			name: "rollback", resource: "db/orders", action: "read", at: later, opts: VerifyOptions{LastSeen: 8},
			reason: authority.ReasonRollback,
			frags:  []string{"the bundle is at graph version 7 of fednode/test-consortium, but this site has already seen version 8"},
		},
		{
			name: "rollback before staleness", resource: "db/orders", action: "read", at: notAfter.Add(time.Hour),
			opts: VerifyOptions{LastSeen: 9, AllowStale: time.Hour}, reason: authority.ReasonRollback,
		},
		{name: "last seen this version", resource: "db/orders", action: "read", at: later, opts: VerifyOptions{LastSeen: 7}, reason: authority.ReasonOK},
		{name: "last seen older", resource: "db/orders", action: "read", at: later, opts: VerifyOptions{LastSeen: 3}, reason: authority.ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := tt.cred
			if cred == nil {
				cred = f.alice.Raw
			}
			req := authority.Request{Credential: cred, Target: f.pki.id(), Resource: tt.resource, Action: tt.action}
			d := bd.Verify(req, tt.at, tt.opts)
			t.Logf("%s: %s", d.Reason, d.Message)
			allow := tt.reason == authority.ReasonOK
			if d.Allow != allow || d.Reason != tt.reason || d.Outcome != map[bool]string{true: "allow", false: "deny"}[allow] {
				t.Fatalf("decision %s/%s (%s), want reason %s", d.Outcome, d.Reason, d.Message, tt.reason)
			}
			for _, frag := range tt.frags {
				if !strings.Contains(d.Message, frag) {
					t.Errorf("message %q\ndoes not contain %q", d.Message, frag)
				}
			}
			if d.GraphVersion != fullVersion || d.GraphAgeMS != ageAt(tt.at) || bd.Age(tt.at).Milliseconds() != ageAt(tt.at) {
				t.Errorf("GraphVersion %d, GraphAgeMS %d, Age %v; want %d, %d", d.GraphVersion, d.GraphAgeMS, bd.Age(tt.at), fullVersion, ageAt(tt.at))
			}
			if d.Chain == nil || d.At != tt.at.UTC().Format(time.RFC3339) || d.Target != f.pki.id() || d.Resource != tt.resource || d.Action != tt.action {
				t.Errorf("decision does not echo the request: %+v", d)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	f := newFixture(t)
	good := f.contents(t, 0, fullVersion, f.pki, f.aws)
	tests := []struct {
		name    string
		change  func(c *Contents)
		signers []Signer
		frag    string // "" means success
	}{
		{name: "exporter and cosigner", signers: signers(f.pki, f.aws)},
		{name: "cosigner of the bundle only", signers: signers(f.pki, f.gcp)},
		{name: "no signer", frag: "bundle: build: no signer"},
		{name: "signer twice", signers: signers(f.pki, f.pki), frag: "authority pki (" + f.pki.id().Short() + ") is listed twice"},
		{name: "signer without a key", signers: []Signer{{Name: "pki", ID: f.pki.id()}}, frag: "signer 1 (pki) has no key"},
		{
			name: "too many signers", signers: make([]Signer, MaxSigners+1),
			frag: "33 signers, over the limit of 32",
		},
		{
			name:    "exporter did not sign the checkpoint",
			change:  func(c *Contents) { c.Checkpoint = checkpoint(t, f.log, testOrigin, fullVersion, f.aws) },
			signers: signers(f.pki, f.aws),
			frag:    "the checkpoint must be signed by the exporter pki",
		},
		{
			name:    "checkpoint of another size",
			change:  func(c *Contents) { c.Checkpoint = checkpoint(t, f.log, testOrigin, 6, f.pki) },
			signers: signers(f.pki),
			frag:    "checkpoint is fednode/test-consortium@6, want the checkpoint of fednode/test-consortium at size 7",
		},
		{
			name:    "name not the genesis's",
			signers: []Signer{{Name: "PKI", ID: f.pki.id(), Key: f.pki.key}},
			frag:    `signer PKI: authority ` + f.pki.id().Short() + ` is named "pki" in its genesis`,
		},
		{
			name:    "key not the signer's",
			signers: []Signer{{Name: "pki", ID: f.pki.id(), Key: f.aws.key}},
			frag:    "is not a root key of authority " + f.pki.id().Short(),
		},
		{name: "no deadline", change: func(c *Contents) { c.NotAfter = 0 }, signers: signers(f.pki), frag: "bundle: build: not-after is 0"},
		{name: "count mismatch", change: func(c *Contents) { c.GraphVersion = 6 }, signers: signers(f.pki), frag: "graph version 6, base version 0, but 7 declarations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			if tt.change != nil {
				tt.change(&c)
			}
			b, err := Build(c, tt.signers...)
			if tt.frag != "" {
				if err == nil || !strings.Contains(err.Error(), tt.frag) || !strings.HasPrefix(err.Error(), "bundle: build: ") {
					t.Fatalf("Build: err = %v, want %q", err, tt.frag)
				}
				return
			}
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			again, err := Build(c, tt.signers...)
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("Build is not deterministic (%v)", err)
			}
			bd := mustOpen(t, b, Policy{MinSignatures: len(tt.signers)})
			if len(bd.Signers) != len(tt.signers) {
				t.Errorf("%d signers, want %d", len(bd.Signers), len(tt.signers))
			}
		})
	}
}

func TestCosign(t *testing.T) {
	f := newFixture(t)
	b := build(t, f.contents(t, 0, fullVersion, f.pki), f.pki)
	members := Policy{Trust: []authority.ID{f.pki.id(), f.gcp.id()}, MinSignatures: 2}
	if _, err := Open(b, members); err == nil {
		t.Fatal("a bundle signed by one member opened with k=2")
	}
	b2, err := Cosign(b, f.gcp.signer())
	if err != nil {
		t.Fatalf("Cosign: %v", err)
	}
	bd := mustOpen(t, b2, members)
	if !slices.Equal(bd.Trusted, []authority.ID{f.pki.id(), f.gcp.id()}) || bd.Exporter().Name != "pki" {
		t.Errorf("Trusted = %v, exporter %s", bd.Trusted, bd.Exporter().Name)
	}
	// gcp did not sign the checkpoint: it cosigned the bundle only.
	if !slices.Equal(bd.CheckpointSigners, []authority.ID{f.pki.id()}) {
		t.Errorf("CheckpointSigners = %v", bd.CheckpointSigners)
	}
	if !bytes.Equal(outerOf(t, b2).Payload, outerOf(t, b).Payload) {
		t.Error("Cosign changed the payload")
	}
	tests := []struct {
		name   string
		bundle []byte
		s      Signer
		frag   string
	}{
		{"twice by one authority", b2, f.gcp.signer(), "authority gcp (" + f.gcp.id().Short() + ") already signed the bundle"},
		{"by the exporter again", b, f.pki.signer(), "already signed the bundle"},
		{"no key", b, Signer{Name: "gcp", ID: f.gcp.id()}, "signer gcp has no key"},
		{"not a bundle", []byte("junk"), f.gcp.signer(), "outer structure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Cosign(tt.bundle, tt.s)
			if err == nil || !strings.HasPrefix(err.Error(), "bundle: cosign: ") || !strings.Contains(err.Error(), tt.frag) {
				t.Fatalf("Cosign: err = %v, want %q", err, tt.frag)
			}
		})
	}
}

func TestProve(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		c    Contents
		frag string
	}{
		{name: "declarations not the log's", c: Contents{GraphVersion: 2, Declarations: [][]byte{f.all[1], f.all[0]}}, frag: "declaration 1 is not the log's leaf 0"},
		{name: "count mismatch", c: Contents{GraphVersion: 3, Declarations: f.all[:2]}, frag: "graph version 3, base version 0, 2 declarations"},
		{name: "beyond the log", c: Contents{GraphVersion: 10, BaseVersion: 9, Declarations: [][]byte{f.all[0]}}, frag: "node not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Prove(f.log)
			if err == nil || !strings.HasPrefix(err.Error(), "bundle: prove: ") || !strings.Contains(err.Error(), tt.frag) {
				t.Fatalf("Prove: err = %v, want %q", err, tt.frag)
			}
		})
	}
}

// TestGolden pins the wire format: the fixture's full bundle, from fixed
// keys and times, must be byte for byte the file in testdata, and that file
// must open. Run with -update after a deliberate format change (and bump
// FormatVersion).
func TestGolden(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join("testdata", "v2-valid.bundle")
	if *update {
		if err := os.WriteFile(path, f.full, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bd, err := Load(path, Policy{Trust: []authority.ID{f.pki.id(), f.aws.id()}, MinSignatures: 2})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if bd.GraphVersion != fullVersion || bd.Exporter().Name != "pki" {
		t.Errorf("golden bundle: graph version %d, exporter %q", bd.GraphVersion, bd.Exporter().Name)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.full, want) {
		t.Errorf("Build output differs from %s: the wire format changed (rerun with -update if deliberate)", path)
	}
}

func TestLoad(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := write("valid.bundle", f.full)
	corrupt := write("corrupt.bundle", flip(f.full, len(f.full)-1))
	big := filepath.Join(dir, "big.bundle")
	fh, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(MaxBundleSize + 1); err != nil { // sparse: nothing is written
		t.Fatal(err)
	}
	fh.Close()
	tests := []struct {
		name    string
		path    string
		invalid bool   // wraps ErrInvalid
		frag    string // "" means success
	}{
		{name: "valid", path: valid},
		{name: "corrupt", path: corrupt, invalid: true, frag: "does not verify"},
		{name: "oversized", path: big, invalid: true, frag: "over the 268435456-byte limit"},
		{name: "missing", path: filepath.Join(dir, "missing.bundle"), frag: "no such file"},
		{name: "a directory", path: dir, frag: "bundle: load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd, err := Load(tt.path, Policy{})
			if tt.frag == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if bd.GraphVersion != fullVersion {
					t.Errorf("GraphVersion = %d", bd.GraphVersion)
				}
				return
			}
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if errors.Is(err, ErrInvalid) != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalid) = %v, want %v: %v", !tt.invalid, tt.invalid, err)
			}
			if !strings.HasPrefix(err.Error(), "bundle: ") || !strings.Contains(err.Error(), tt.frag) {
				t.Errorf("error %q does not contain %q", err, tt.frag)
			}
		})
	}
}

func TestSite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site") // Record creates it
	s := Site{Dir: dir}
	const a, b = "fednode/a", "fednode/b"
	steps := []struct {
		name   string
		origin string
		record uint64 // 0: no Record, only LastSeen
		want   uint64
	}{
		{"nothing seen", a, 0, 0},
		{"first record", a, 5, 5},
		{"higher", a, 9, 9},
		{"lower does not lower", a, 3, 9},
		{"equal", a, 9, 9},
		{"another origin is separate", b, 2, 2},
		{"first origin kept", a, 0, 9},
	}
	for _, st := range steps {
		if st.record > 0 {
			if err := s.Record(st.origin, st.record); err != nil {
				t.Fatalf("%s: Record: %v", st.name, err)
			}
		}
		got, err := s.LastSeen(st.origin)
		if err != nil || got != st.want {
			t.Fatalf("%s: LastSeen(%s) = %d, %v; want %d", st.name, st.origin, got, err, st.want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("site directory holds %d files, want 2 (no temporary files left)", len(entries))
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}

	bad := []struct {
		name    string
		content string
		frag    string
	}{
		{"damaged", "{not json", "is damaged"},
		{"another origin's state", `{"origin":"fednode/b","graph_version":4}`, `records log "fednode/b", not "fednode/a"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(s.path(a), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := s.LastSeen(a); err == nil || !strings.Contains(err.Error(), tt.frag) {
				t.Errorf("LastSeen: err = %v, want %q", err, tt.frag)
			}
			if err := s.Record(a, 100); err == nil {
				t.Errorf("Record over a damaged state file succeeded")
			}
		})
	}
	if _, err := (Site{}).LastSeen(a); err == nil {
		t.Error("LastSeen of a site without a directory succeeded")
	}
}

// TestVerifyConcurrent backs Bundle's doc: an opened bundle may decide, and
// be the base of deltas, from many goroutines at once (run under -race).
func TestVerifyConcurrent(t *testing.T) {
	f := newFixture(t)
	bd := mustOpen(t, f.full, Policy{})
	req := authority.Request{Credential: f.alice.Raw, Target: f.pki.id(), Resource: "db/orders", Action: "read"}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%4 == 0 {
				if _, err := OpenDelta(bd, f.delta, Policy{}); err != nil {
					t.Errorf("OpenDelta: %v", err)
				}
				return
			}
			for range 20 {
				if d := bd.Verify(req, exportTime.Add(time.Hour), VerifyOptions{}); !d.Allow {
					t.Errorf("deny: %s", d.Message)
					return
				}
			}
		})
	}
	wg.Wait()
}
