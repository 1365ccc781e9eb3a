package bundle

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/fxamacker/cbor/v2"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// FormatVersion is the version of the wire format described in the package
// doc; Build writes it and Open accepts nothing else.
const FormatVersion = 2

// sigContext is the first field of every signed statement: it says what the
// signature is about, so that no other signed CBOR can pass for a bundle
// signature, nor a bundle signature for anything else.
const sigContext = "fednode-bundle-v2"

// Bounds on untrusted input.
const (
	// MaxBundleSize bounds an encoded bundle, signatures included. At about
	// 900 bytes per declaration (envelope plus inclusion proof) a full
	// bundle of some 290,000 declarations fits; larger graphs travel as a
	// full bundle plus deltas.
	MaxBundleSize = 256 << 20
	// MaxDeclarations bounds the graph version of a bundle (and so the
	// declarations one bundle or a chain of deltas can hold).
	MaxDeclarations = 1 << 20
	// MaxSigners bounds the signatures on one bundle: a consortium's
	// members fit.
	MaxSigners = 32
	// MaxSignatureSize bounds one signature envelope (an Ed25519 one is
	// about 150 bytes; room is left for post-quantum signatures).
	MaxSignatureSize = 16 << 10
	// MaxProofHashes bounds the hashes of one inclusion or consistency
	// proof: trees of MaxDeclarations leaves need at most 40.
	MaxProofHashes = 64
)

// ErrInvalid is returned, wrapped with what was wrong and where, by every
// refusal of Open and OpenDelta (and by Load for an oversized file). Errors
// of authority and tlog are wrapped too, so errors.Is(err,
// authority.ErrConflict) or errors.Is(err, tlog.ErrInvalidProof) work.
var ErrInvalid = errors.New("bundle: invalid bundle")

// Contents is the signed payload of a bundle: the graph at GraphVersion, or
// for a delta the declarations since BaseVersion, with the log's proofs.
// Field numbers are the wire format (see the package doc): never renumber.
type Contents struct {
	// GraphVersion N is the agreed graph's version: the tree size of the log.
	// Invariant: 1 <= N <= MaxDeclarations.
	GraphVersion uint64 `cbor:"2,keyasint"`
	// ExportedAt is when the graph was exported, in Unix milliseconds: an
	// offline decision reports its graph age from it. Invariant: >= 0.
	ExportedAt int64 `cbor:"3,keyasint"`
	// NotAfter is the deadline in Unix milliseconds from which the bundle is
	// stale (Verify denies with stale-bundle). Invariant: NotAfter >
	// ExportedAt (so never 0: every bundle expires).
	NotAfter int64 `cbor:"4,keyasint"`
	// Origin is the log's checkpoint origin (tlog.Origin of the consortium's
	// log name). Invariant: equals the checkpoint's origin.
	Origin string `cbor:"5,keyasint"`
	// Checkpoint is the signed note of the log's checkpoint at size N, as
	// tlog.SignCheckpoint and tlog.Cosign write it: signed by the exporter
	// (the bundle's first signer), perhaps cosigned by others.
	Checkpoint []byte `cbor:"6,keyasint"`
	// Declarations are the encoded envelopes of versions BaseVersion+1..N,
	// in acceptance order: declaration i is leaf BaseVersion+i of the log.
	// Invariant: len(Declarations) == N - BaseVersion.
	Declarations [][]byte `cbor:"7,keyasint"`
	// Proofs[i] is the inclusion proof of Declarations[i] at leaf index
	// BaseVersion+i in the tree of size N. Invariant: len(Proofs) ==
	// len(Declarations), each at most MaxProofHashes hashes.
	Proofs [][][]byte `cbor:"8,keyasint"`
	// BaseVersion M is 0 for a full bundle; M > 0 makes a delta bundle, which
	// opens only on top of a bundle at version M (OpenDelta).
	// Invariant: M < N.
	BaseVersion uint64 `cbor:"9,keyasint,omitempty"`
	// BaseRoot is the root of the log at size M (delta only).
	// Invariant: tlog.HashSize bytes iff M > 0, else empty.
	BaseRoot []byte `cbor:"10,keyasint,omitempty"`
	// Consistency is the consistency proof from size M to N (delta only).
	// Invariant: 1 to MaxProofHashes hashes iff M > 0, else empty.
	Consistency [][]byte `cbor:"11,keyasint,omitempty"`
}

// payload is what is encoded: the format, then the contents' fields.
type payload struct {
	Format uint64 `cbor:"1,keyasint"`
	Contents
}

// outer is the whole bundle: the payload's bytes once, and the signatures,
// each over the payload's hash.
type outer struct {
	Payload    []byte   `cbor:"1,keyasint"`
	Signatures [][]byte `cbor:"2,keyasint"`
}

// statement is what each signer seals: "authority Signer signs the bundle
// payload whose SHA-256 is Digest".
type statement struct {
	Context string       `cbor:"1,keyasint"`
	Digest  [32]byte     `cbor:"2,keyasint"`
	Signer  authority.ID `cbor:"3,keyasint"`
}

// formatOnly reads the format of a payload of any version.
type formatOnly struct {
	Format uint64 `cbor:"1,keyasint"`
}

var (
	encMode    cbor.EncMode
	decMode    cbor.DecMode // strict: the one canonical form of format 2
	peekMode   cbor.DecMode // reads the format of any payload, ignoring the rest
	errNoCanon = errors.New("not in Core Deterministic CBOR encoding")
)

func init() {
	// Core Deterministic, and nil slices as empty arrays, so that each value
	// has one encoding (an empty proof is [], never null).
	eo := cbor.CoreDetEncOptions()
	eo.NilContainers = cbor.NilContainerAsEmpty
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	// Strict, and bounded by what a valid bundle can hold: maps of at most
	// 11 keys, whose deepest value is an array of arrays of byte strings.
	do := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   4,  // the minimum fxamacker allows; a bundle needs 3
		MaxMapPairs:       16, // the minimum fxamacker allows; a bundle needs 11
		MaxArrayElements:  MaxDeclarations,
		UTF8:              cbor.UTF8RejectInvalid,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic(err)
	}
	// Another format may add keys and nest deeper: read key 1 and skip the
	// rest, within the same array bound.
	do.ExtraReturnErrors = cbor.ExtraDecErrorNone
	do.DupMapKey = cbor.DupMapKeyQuiet
	do.MaxNestedLevels = 32
	do.MaxMapPairs = 1 << 10
	if peekMode, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// decodeCanonical decodes b strictly into v and requires b to be the
// canonical encoding of v: a signed claim has one encoding, so no relay can
// change its bytes (and any hash of them) without the signers.
func decodeCanonical(b []byte, v any) error {
	if err := decMode.Unmarshal(b, v); err != nil {
		return err
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return fmt.Errorf("re-encode: %w", err)
	}
	if !bytes.Equal(again, b) {
		return errNoCanon
	}
	return nil
}

// check verifies the invariants of c that need no signature, no proof and
// no parsing of declarations. Its errors carry no package prefix.
func (c *Contents) check() error {
	if c.GraphVersion == 0 {
		return errors.New("graph version 0: a bundle holds at least one declaration")
	}
	if c.GraphVersion > MaxDeclarations {
		return fmt.Errorf("graph version %d is over the limit of %d declarations (MaxDeclarations)", c.GraphVersion, MaxDeclarations)
	}
	if c.BaseVersion >= c.GraphVersion {
		return fmt.Errorf("base version %d is not below graph version %d: a delta carries at least one declaration", c.BaseVersion, c.GraphVersion)
	}
	if n := c.GraphVersion - c.BaseVersion; uint64(len(c.Declarations)) != n {
		return fmt.Errorf("graph version %d, base version %d, but %d declarations: want %d (versions %d..%d)", c.GraphVersion, c.BaseVersion, len(c.Declarations), n, c.BaseVersion+1, c.GraphVersion)
	}
	if len(c.Proofs) != len(c.Declarations) {
		return fmt.Errorf("%d inclusion proofs for %d declarations: want one each", len(c.Proofs), len(c.Declarations))
	}
	for i, p := range c.Proofs {
		if len(p) > MaxProofHashes {
			return fmt.Errorf("declaration %d: inclusion proof of %d hashes, over the limit of %d (MaxProofHashes)", c.BaseVersion+uint64(i)+1, len(p), MaxProofHashes)
		}
	}
	if c.ExportedAt < 0 {
		return fmt.Errorf("exported-at %d is negative", c.ExportedAt)
	}
	if c.NotAfter == 0 {
		return errors.New("not-after is 0: every bundle must have a deadline")
	}
	if c.NotAfter <= c.ExportedAt {
		return fmt.Errorf("not-after %d is not after exported-at %d", c.NotAfter, c.ExportedAt)
	}
	if c.Origin == "" || len(c.Origin) > tlog.MaxOriginLen {
		return fmt.Errorf("origin must be 1 to %d bytes, got %d", tlog.MaxOriginLen, len(c.Origin))
	}
	if len(c.Checkpoint) == 0 || len(c.Checkpoint) > tlog.MaxNoteSize {
		return fmt.Errorf("checkpoint note must be 1 to %d bytes, got %d", tlog.MaxNoteSize, len(c.Checkpoint))
	}
	if c.BaseVersion == 0 {
		if len(c.BaseRoot) != 0 || len(c.Consistency) != 0 {
			return errors.New("a full bundle (base version 0) carries no base root and no consistency proof")
		}
		return nil
	}
	if len(c.BaseRoot) != tlog.HashSize {
		return fmt.Errorf("delta from version %d: base root is %d bytes, want %d", c.BaseVersion, len(c.BaseRoot), tlog.HashSize)
	}
	if len(c.Consistency) == 0 || len(c.Consistency) > MaxProofHashes {
		return fmt.Errorf("delta from version %d: consistency proof of %d hashes, want 1 to %d", c.BaseVersion, len(c.Consistency), MaxProofHashes)
	}
	return nil
}

// Prove fills in c's proofs from ns, the log's node store (chainstore's tree,
// or a tlog.MemStore): Proofs, one per declaration at size GraphVersion,
// and for a delta (BaseVersion > 0) BaseRoot and Consistency. It checks
// every inclusion proof it makes against the root at GraphVersion, so that a
// node whose declarations and log disagree cannot export them. Set
// GraphVersion, BaseVersion and Declarations first.
func (c *Contents) Prove(ns tlog.NodeStore) error {
	n, m := c.GraphVersion, c.BaseVersion
	if m >= n || uint64(len(c.Declarations)) != n-m {
		return fmt.Errorf("bundle: prove: graph version %d, base version %d, %d declarations: want %d", n, m, len(c.Declarations), n-m)
	}
	root, err := tlog.RootAt(ns, n)
	if err != nil {
		return fmt.Errorf("bundle: prove: %w", err)
	}
	proofs := make([][][]byte, len(c.Declarations))
	for i, d := range c.Declarations {
		idx := m + uint64(i)
		if proofs[i], err = tlog.InclusionProof(ns, idx, n); err != nil {
			return fmt.Errorf("bundle: prove: %w", err)
		}
		if err := tlog.VerifyInclusion(d, idx, n, proofs[i], root); err != nil {
			return fmt.Errorf("bundle: prove: declaration %d is not the log's leaf %d: %w", idx+1, idx, err)
		}
	}
	c.Proofs, c.BaseRoot, c.Consistency = proofs, nil, nil
	if m > 0 {
		if c.BaseRoot, err = tlog.RootAt(ns, m); err != nil {
			return fmt.Errorf("bundle: prove: %w", err)
		}
		if c.Consistency, err = tlog.ConsistencyProof(ns, m, n); err != nil {
			return fmt.Errorf("bundle: prove: %w", err)
		}
	}
	return nil
}

// Signer is an authority signing a bundle, with one of its root keys.
type Signer struct {
	// Name is the authority's name, as in its genesis: the key name of its
	// checkpoint signatures.
	Name string
	ID   authority.ID
	Key  *authority.PrivateKey
	// Roots is the signer's current root set, as the exporter's graph
	// knows it; nil means its genesis's. After a rotation the key is in
	// the rotation's set, not the genesis's: Build checks it against Roots
	// when set (Open checks it against the rebuilt graph in any case).
	Roots []authority.PublicKey
}

// witness is s as a checkpoint signer.
func (s Signer) witness() tlog.Witness { return tlog.Witness{Name: s.Name, Key: s.Key.Public()} }

// Build encodes c and signs it with each signer; the first is the exporter,
// who must have signed c.Checkpoint. It returns the bundle's bytes.
//
// It refuses contents that break an invariant of Contents, a checkpoint
// that is not the exporter's checkpoint of c.Origin at size GraphVersion,
// duplicate signers, and a signer whose genesis is among c.Declarations but
// does not declare its name and key. It does not verify the declarations
// nor the proofs (the exporting node made them from its agreed graph, see
// Prove; Open checks everything again). Build does not retain c.
func Build(c Contents, signers ...Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, errors.New("bundle: build: no signer: a bundle is signed by at least its exporter")
	}
	if len(signers) > MaxSigners {
		return nil, fmt.Errorf("bundle: build: %d signers, over the limit of %d (MaxSigners)", len(signers), MaxSigners)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("bundle: build: %w", err)
	}
	for i, s := range signers {
		if s.Key == nil {
			return nil, fmt.Errorf("bundle: build: signer %d (%s) has no key", i+1, s.Name)
		}
		if slices.ContainsFunc(signers[:i], func(o Signer) bool { return o.ID == s.ID }) {
			return nil, fmt.Errorf("bundle: build: authority %s (%s) is listed twice: signers must be distinct", s.Name, s.ID.Short())
		}
		if err := checkSignerGenesis(c.Declarations, s); err != nil {
			return nil, fmt.Errorf("bundle: build: %w", err)
		}
	}
	ex := signers[0]
	cp, _, err := tlog.OpenCheckpoint(c.Checkpoint, []tlog.Witness{ex.witness()})
	if err != nil {
		return nil, fmt.Errorf("bundle: build: the checkpoint must be signed by the exporter %s: %w", ex.Name, err)
	}
	if cp.Size != c.GraphVersion || cp.Origin != c.Origin {
		return nil, fmt.Errorf("bundle: build: checkpoint is %s@%d, want the checkpoint of %s at size %d (the graph version)", cp.Origin, cp.Size, c.Origin, c.GraphVersion)
	}
	p, err := encMode.Marshal(&payload{Format: FormatVersion, Contents: c})
	if err != nil {
		return nil, fmt.Errorf("bundle: build: encode: %w", err)
	}
	o := outer{Payload: p}
	for _, s := range signers {
		sig, err := sign(p, s)
		if err != nil {
			return nil, fmt.Errorf("bundle: build: %w", err)
		}
		o.Signatures = append(o.Signatures, sig)
	}
	return encodeOuter(&o)
}

// checkSignerGenesis checks s against its genesis if it is among decls: its
// name, and its key against its current root set (Roots, else the
// genesis's).
func checkSignerGenesis(decls [][]byte, s Signer) error {
	for _, raw := range decls {
		if authority.IDOf(raw) != s.ID {
			continue
		}
		g, err := authority.Parse(raw)
		if err != nil || g.Decl.Kind != authority.KindGenesis {
			return fmt.Errorf("signer %s: declaration %s is not a genesis", s.Name, s.ID.Short())
		}
		if g.Decl.Genesis.Name != s.Name {
			return fmt.Errorf("signer %s: authority %s is named %q in its genesis", s.Name, s.ID.Short(), g.Decl.Genesis.Name)
		}
		kid := s.Key.Public().KeyID()
		roots := g.Decl.Genesis.RootKeys
		if s.Roots != nil {
			roots = s.Roots
		}
		if !slices.ContainsFunc(roots, func(k authority.PublicKey) bool { return bytes.Equal(k.KeyID(), kid) }) {
			return fmt.Errorf("signer %s: key %x is not a root key of authority %s", s.Name, kid, s.ID.Short())
		}
		return nil
	}
	return nil // a delta's signer may be in its base: Open checks
}

// sign makes s's signature envelope over payload p.
func sign(p []byte, s Signer) ([]byte, error) {
	st, err := encMode.Marshal(&statement{Context: sigContext, Digest: sha256.Sum256(p), Signer: s.ID})
	if err != nil {
		return nil, fmt.Errorf("encode signed statement: %w", err)
	}
	sig, err := authority.Seal(st, s.Key)
	if err != nil {
		return nil, fmt.Errorf("signer %s: %w", s.Name, err)
	}
	return sig, nil
}

func encodeOuter(o *outer) ([]byte, error) {
	b, err := encMode.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("bundle: encode: %w", err)
	}
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("bundle: bundle is %d bytes, over the %d-byte limit (MaxBundleSize): export a delta instead", len(b), MaxBundleSize)
	}
	return b, nil
}

// Cosign adds s's signature to a bundle, keeping the others: another member
// authority vouches for the same payload. Its checkpoint signatures cannot
// be added this way (they are inside the payload); sign them before Build.
//
// WARNING: Cosign checks the structure only, not the existing signatures
// nor the contents: a cosigner first opens the bundle with Open, then
// cosigns what it verified.
func Cosign(b []byte, s Signer) ([]byte, error) {
	if s.Key == nil {
		return nil, fmt.Errorf("bundle: cosign: signer %s has no key", s.Name)
	}
	o, err := decodeOuter(b)
	if err != nil {
		return nil, fmt.Errorf("bundle: cosign: %w", err)
	}
	if len(o.Signatures) >= MaxSigners {
		return nil, fmt.Errorf("bundle: cosign: the bundle already has %d signatures, the most it may carry (MaxSigners)", len(o.Signatures))
	}
	if _, err := decodePayload(o.Payload); err != nil {
		return nil, fmt.Errorf("bundle: cosign: %w", err)
	}
	for i, raw := range o.Signatures {
		st, _, err := parseSignature(raw)
		if err != nil {
			return nil, fmt.Errorf("bundle: cosign: signature %d: %w", i+1, err)
		}
		if st.Signer == s.ID {
			return nil, fmt.Errorf("bundle: cosign: authority %s (%s) already signed the bundle", s.Name, s.ID.Short())
		}
	}
	sig, err := sign(o.Payload, s)
	if err != nil {
		return nil, fmt.Errorf("bundle: cosign: %w", err)
	}
	o.Signatures = append(o.Signatures, sig)
	return encodeOuter(o)
}

// decodeOuter parses the outer structure strictly. Errors are unprefixed.
func decodeOuter(b []byte) (*outer, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("%d bytes, over the %d-byte limit (MaxBundleSize)", len(b), MaxBundleSize)
	}
	// Format 1 was one COSE_Sign1 envelope (CBOR tag 18), like a
	// declaration: say which, rather than that a map was expected.
	if len(b) > 0 && b[0] == 0xd2 {
		if s, err := authority.Parse(b); err == nil {
			return nil, fmt.Errorf("this is a %v declaration envelope, not a bundle", s.Decl.Kind)
		}
		return nil, fmt.Errorf("this is a format 1 bundle (a single COSE_Sign1 envelope); this reader knows only format %d: export it again with a current node", FormatVersion)
	}
	keys, err := checkCanonical(b)
	if err != nil {
		return nil, fmt.Errorf("outer structure {1: payload, 2: [signatures]}: %w", err)
	}
	if !slices.Equal(keys, []uint64{1, 2}) {
		return nil, fmt.Errorf("outer structure {1: payload, 2: [signatures]}: map has keys %v", keys)
	}
	var o outer
	if err := decMode.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("outer structure {1: payload, 2: [signatures]}: %w", err)
	}
	if len(o.Signatures) == 0 {
		return nil, errors.New("no signature")
	}
	if len(o.Signatures) > MaxSigners {
		return nil, fmt.Errorf("%d signatures, over the limit of %d (MaxSigners)", len(o.Signatures), MaxSigners)
	}
	return &o, nil
}

// Keys of a full bundle's payload, and of a delta's.
var (
	fullKeys  = []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	deltaKeys = []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
)

// decodePayload decodes a payload strictly: the format first, read
// leniently (a payload of another format is named as such, not as a
// decoding error of this one), then the canonical form, the fields, the
// invariants of Contents and which keys are present. Errors are unprefixed.
func decodePayload(p []byte) (*Contents, error) {
	var f formatOnly
	if err := peekMode.Unmarshal(p, &f); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if f.Format != FormatVersion {
		if f.Format > FormatVersion {
			return nil, fmt.Errorf("format %d is newer than this reader, which knows only format %d: upgrade the verifier", f.Format, FormatVersion)
		}
		return nil, fmt.Errorf("format %d: this reader knows only format %d", f.Format, FormatVersion)
	}
	keys, err := checkCanonical(p)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	var pl payload
	if err := decMode.Unmarshal(p, &pl); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if err := pl.check(); err != nil {
		return nil, err
	}
	// Canonical form omits the delta fields of a full bundle (and check
	// makes sure a delta's are not empty): any other set of keys is another
	// encoding, or a missing field that decoded as zero.
	want := fullKeys
	if pl.BaseVersion > 0 {
		want = deltaKeys
	}
	if !slices.Equal(keys, want) {
		return nil, fmt.Errorf("payload: has keys %v, want %v", keys, want)
	}
	return &pl.Contents, nil
}

// parseSignature parses a signature envelope and its statement, without
// checking the signature. Errors are unprefixed.
func parseSignature(raw []byte) (*statement, *authority.Sealed, error) {
	sealed, err := authority.ParseSealed(raw, MaxSignatureSize)
	if err != nil {
		return nil, nil, err
	}
	var st statement
	if err := decodeCanonical(sealed.Payload, &st); err != nil {
		return nil, nil, fmt.Errorf("signed statement: %w", err)
	}
	if st.Context != sigContext {
		return nil, nil, fmt.Errorf("signed statement is about %q, not %q", abbrev(st.Context), sigContext)
	}
	if st.Signer.IsZero() {
		return nil, nil, errors.New("signed statement names no authority")
	}
	return &st, sealed, nil
}

// abbrev shortens untrusted text quoted in an error.
func abbrev(s string) string {
	if len(s) > 48 {
		return s[:45] + "..."
	}
	return s
}
