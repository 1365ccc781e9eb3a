package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fxamacker/cbor/v2"
)

// FormatVersion is the version of the wire format described in the package
// doc; Export writes it and Open accepts nothing else.
const FormatVersion = 1

// Bounds on untrusted input.
const (
	// MaxBundleSize bounds an encoded bundle, seal included.
	MaxBundleSize = 256 << 20
	// MaxDeclarations bounds the number of declarations in one bundle (a
	// little over a million, so a graph of 1e6 declarations fits).
	MaxDeclarations = 1 << 20
)

// ErrInvalid is returned, wrapped with what was wrong and where, by every
// refusal of Open (and by Load for an oversized file). Use errors.Is.
var ErrInvalid = errors.New("bundle: invalid bundle")

// Contents is the signed payload of a bundle. Field numbers are the wire
// format (see the package doc): never renumber, only add.
type Contents struct {
	// Format is FormatVersion; Export sets it.
	Format uint8 `cbor:"1,keyasint"`
	// GraphVersion is the agreed graph's version: its number of declarations.
	// Invariant: GraphVersion == len(Declarations), 1 <= GraphVersion <= MaxDeclarations.
	GraphVersion uint64 `cbor:"2,keyasint"`
	// ExportedAt is when the graph was exported, in Unix milliseconds: an
	// offline decision reports its graph age from it. Invariant: >= 0.
	ExportedAt int64 `cbor:"3,keyasint"`
	// Exporter is the exporting node's authority; the bundle is sealed with
	// one of its root keys. Invariant: its genesis is among Declarations.
	Exporter authority.ID `cbor:"4,keyasint"`
	// Declarations are the encoded envelopes of every declaration of the
	// graph, versions 1..GraphVersion in acceptance order.
	Declarations [][]byte `cbor:"5,keyasint"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	// Strict, and bounded by what a valid bundle can hold: one flat map of
	// five keys whose deepest value is an array of byte strings.
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   4,  // the minimum fxamacker allows; a bundle needs 2
		MaxMapPairs:       16, // the minimum fxamacker allows; a bundle needs 5
		MaxArrayElements:  MaxDeclarations,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// check verifies the invariants of c that need no signature and no parsing
// of declarations. Its errors carry no package prefix: callers add one.
func (c *Contents) check() error {
	if c.Format != FormatVersion {
		if c.Format > FormatVersion {
			return fmt.Errorf("format %d is newer than this reader, which knows only format %d: upgrade the verifier", c.Format, FormatVersion)
		}
		return fmt.Errorf("format %d: this reader knows only format %d", c.Format, FormatVersion)
	}
	if c.GraphVersion == 0 {
		return errors.New("graph version 0: a bundle holds at least its exporter's genesis")
	}
	if c.GraphVersion > MaxDeclarations {
		return fmt.Errorf("graph version %d is over the limit of %d declarations (MaxDeclarations)", c.GraphVersion, MaxDeclarations)
	}
	if uint64(len(c.Declarations)) != c.GraphVersion {
		return fmt.Errorf("graph version %d but %d declarations: a bundle carries every declaration of its graph", c.GraphVersion, len(c.Declarations))
	}
	if c.ExportedAt < 0 {
		return fmt.Errorf("exported-at %d is negative", c.ExportedAt)
	}
	if c.Exporter.IsZero() {
		return errors.New("no exporter authority")
	}
	return nil
}

// exporterGenesis finds and parses the exporter's genesis among the
// declarations, without checking any signature. It hashes every
// declaration but parses only one, so that Open can check the seal before
// it spends a signature check on each declaration.
func (c *Contents) exporterGenesis() (int, *authority.Signed, error) {
	for i, raw := range c.Declarations {
		if authority.IDOf(raw) != c.Exporter {
			continue
		}
		s, err := authority.Parse(raw)
		if err != nil {
			return i, nil, fmt.Errorf("%s: %w", declName(i, len(c.Declarations), c.Exporter, nil), err)
		}
		if s.Decl.Kind != authority.KindGenesis {
			return i, nil, fmt.Errorf("exporter %s is %s, not a genesis", c.Exporter.Short(), declName(i, len(c.Declarations), s.ID, s))
		}
		return i, s, nil
	}
	return -1, nil, fmt.Errorf("exporter %s is not an authority in the bundle's graph: none of its %d declarations is that genesis", c.Exporter.Short(), len(c.Declarations))
}

// declName names declaration i (0-based) as error messages do: by its
// 1-based graph version, its kind when known, and its short ID.
func declName(i, n int, id authority.ID, s *authority.Signed) string {
	if s == nil {
		return fmt.Sprintf("declaration %d of %d (%s)", i+1, n, id.Short())
	}
	return fmt.Sprintf("declaration %d of %d (%v %s)", i+1, n, s.Decl.Kind, id.Short())
}

// Export seals c with k, a root key of c.Exporter, and returns the bundle's
// bytes. It sets c.Format to FormatVersion.
//
// It refuses contents that break an invariant of Contents (in particular
// len(Declarations) != GraphVersion), whose exporter genesis is missing from
// the declarations, or whose exporter did not declare k; it does not verify
// the declarations themselves: the exporting node passes its agreed graph,
// which it verified when it accepted each declaration, and Open checks
// everything again. Export does not retain c.Declarations.
func Export(c Contents, k *authority.PrivateKey) ([]byte, error) {
	c.Format = FormatVersion
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("bundle: export: %w", err)
	}
	_, gen, err := c.exporterGenesis()
	if err != nil {
		return nil, fmt.Errorf("bundle: export: %w", err)
	}
	kid := k.Public().KeyID()
	if !slices.ContainsFunc(gen.Decl.Genesis.RootKeys, func(p authority.PublicKey) bool { return bytes.Equal(p.KeyID(), kid) }) {
		return nil, fmt.Errorf("bundle: export: key %x is not a root key of exporter %s (%s): seal with one of its root keys", kid, gen.Decl.Genesis.Name, c.Exporter.Short())
	}
	payload, err := encMode.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("bundle: export: encode: %w", err)
	}
	b, err := authority.Seal(payload, k)
	if err != nil {
		return nil, fmt.Errorf("bundle: export: %w", err)
	}
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("bundle: export: bundle is %d bytes, over the %d-byte limit (MaxBundleSize)", len(b), MaxBundleSize)
	}
	return b, nil
}

// Bundle is an opened bundle: its contents and the graph rebuilt from them.
//
// A Bundle is immutable once Open returns it, so Verify and Age may be
// called from any number of goroutines at once. Callers must not modify
// Graph (nor Apply to it) or the contents.
type Bundle struct {
	Contents
	// Graph is rebuilt by applying every declaration in order, each
	// verified. Invariant: Graph.Version() == GraphVersion.
	Graph *authority.Graph
	// Exporter is the exporting authority as the graph knows it. It shadows
	// Contents.Exporter, the exporter's ID (also Exporter.ID).
	Exporter *authority.AuthorityInfo
}

// OpenOptions configures Open.
type OpenOptions struct {
	// Trust, if non-empty, lists the authorities whose bundles this site
	// accepts; the exporter must be one of them. Empty means any exporter
	// whose seal verifies: the graph is still checked end to end, but then
	// anyone can make a bundle that opens.
	Trust []authority.ID
}

// Open parses and checks a bundle, and rebuilds its graph. It checks
// everything before trusting anything, cheapest first, so that a forged or
// damaged bundle costs little: the seal parses (at most MaxBundleSize
// bytes); the payload decodes strictly and is canonical; Format is
// FormatVersion and len(Declarations) == GraphVersion; if opts.Trust is
// set, the exporter named is in it; the exporter's genesis is among the
// declarations and the seal verifies with its root keys; then every
// declaration is parsed and applied to a fresh graph with Graph.Apply, so
// every signature and chain link is checked, and the first failure is
// reported with its 1-based index (its graph version) and ID.
//
// Every refusal wraps ErrInvalid with what was wrong and where, e.g.
// "bundle: invalid bundle: declaration 17 of 40 (rule 3fa2b1c4d5e6):
// authority: bad signature: ...". Errors of authority are wrapped too, so
// errors.Is(err, authority.ErrConflict) and the like work.
//
// Open does not retain b: the declarations in the result are copies. Its
// cost is one signature check per declaration (about 55 µs each for
// Ed25519), plus decoding.
func Open(b []byte, opts OpenOptions) (*Bundle, error) {
	sealed, err := authority.ParseSealed(b, MaxBundleSize)
	if err != nil {
		return nil, fmt.Errorf("%w: seal: %w", ErrInvalid, err)
	}
	var c Contents
	if err := decMode.Unmarshal(sealed.Payload, &c); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrInvalid, err)
	}
	again, err := encMode.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: re-encode: %w", ErrInvalid, err)
	}
	if !bytes.Equal(again, sealed.Payload) {
		return nil, fmt.Errorf("%w: payload is not in Core Deterministic CBOR encoding", ErrInvalid)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// The exporter named is only a claim until the seal verifies, but a
	// claim outside Trust can be refused at once: no seal would help it.
	if len(opts.Trust) > 0 && !slices.Contains(opts.Trust, c.Exporter) {
		return nil, fmt.Errorf("%w: exporter %s is not one of the %d authorities this site trusts", ErrInvalid, c.Exporter.Short(), len(opts.Trust))
	}
	// Check the seal before the declarations: the genesis binds the
	// exporter's ID to its root keys (the ID is the genesis's hash), so one
	// signature check here spares a forged bundle GraphVersion of them.
	_, gen, err := c.exporterGenesis()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := sealed.VerifyWith(gen.Decl.Genesis.RootKeys); err != nil {
		return nil, fmt.Errorf("%w: seal does not verify with the root keys of exporter %s (%s): %w", ErrInvalid, gen.Decl.Genesis.Name, c.Exporter.Short(), err)
	}
	g := authority.NewGraph()
	n := len(c.Declarations)
	for i, raw := range c.Declarations {
		s, err := authority.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, declName(i, n, authority.IDOf(raw), nil), err)
		}
		if err := g.Apply(s); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, declName(i, n, s.ID, s), err)
		}
	}
	// Apply adds exactly one declaration per success and the exporter's
	// genesis was among them, so these hold; checked because a bundle whose
	// graph disagreed with its own header must never open.
	if g.Version() != c.GraphVersion {
		return nil, fmt.Errorf("%w: rebuilt graph has version %d, the bundle says %d", ErrInvalid, g.Version(), c.GraphVersion)
	}
	ex, ok := g.Authority(c.Exporter)
	if !ok {
		return nil, fmt.Errorf("%w: exporter %s is not an authority in the rebuilt graph", ErrInvalid, c.Exporter.Short())
	}
	return &Bundle{Contents: c, Graph: g, Exporter: ex}, nil
}

// exportedAt is ExportedAt as a time.
func (b *Bundle) exportedAt() time.Time { return time.UnixMilli(b.ExportedAt) }

// Verify decides req offline, judged at time at, against the bundle's graph.
// The decision's GraphVersion is the bundle's and its GraphAgeMS is how long
// after the export at is (zero if at is before it).
func (b *Bundle) Verify(req authority.Request, at time.Time) authority.Decision {
	return authority.Verify(b.Graph, req, authority.WithTime(at), authority.WithGraphAsOf(b.exportedAt()))
}

// Age returns how old the bundle's graph is at time at: the time since the
// export, or zero if at is before it (a clock behind the exporter's), as the
// decision's GraphAgeMS reports it.
func (b *Bundle) Age(at time.Time) time.Duration {
	d := at.Sub(b.exportedAt())
	if d < 0 {
		return 0
	}
	return d
}
