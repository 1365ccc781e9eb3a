package authority

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the kind of a declaration. The numbers are part of the wire format.
type Kind uint8

const (
	// KindGenesis founds an authority: its name, kind and root keys. The
	// authority's ID is the ID of its genesis.
	KindGenesis Kind = 1
	// KindRule is a federation rule, declared by the target authority.
	KindRule Kind = 2
	// KindCredential is a credential for one of the issuer's principals. It is
	// not part of the issuer's chain: it is presented, not published.
	KindCredential Kind = 3
	// KindRevocation revokes one of the issuer's own declarations (a rule, a
	// credential, or its genesis, which revokes the whole authority).
	KindRevocation Kind = 4
	// KindDelegation delegates to an operational key, for a window and a
	// scope of kinds, so that the root keys can stay offline (opkeys.go).
	KindDelegation Kind = 5
	// KindRotation replaces the root key set and threshold (rotation.go).
	KindRotation Kind = 6
	// KindAnchors replaces the authority's external trust anchors
	// (anchors.go).
	KindAnchors Kind = 7
	// KindCharter founds the consortium: members, voters, admission
	// threshold (consortium.go).
	KindCharter Kind = 8
	// KindMembership is a member's act: ratify the charter, approve an
	// admission or a removal, leave (consortium.go).
	KindMembership Kind = 9
	// KindNodes replaces the authority's declared nodes (libp2p peers).
	KindNodes Kind = 10
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindGenesis:
		return "genesis"
	case KindRule:
		return "rule"
	case KindCredential:
		return "credential"
	case KindRevocation:
		return "revocation"
	case KindDelegation:
		return "delegation"
	case KindRotation:
		return "rotation"
	case KindAnchors:
		return "anchors"
	case KindCharter:
		return "charter"
	case KindMembership:
		return "membership"
	case KindNodes:
		return "nodes"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// OnChain reports whether declarations of this kind occupy a position in their
// authority's hash-linked chain (and so are stored in the agreed graph).
func (k Kind) OnChain() bool {
	switch k {
	case KindGenesis, KindRule, KindRevocation, KindDelegation, KindRotation, KindAnchors, KindCharter, KindMembership, KindNodes:
		return true
	}
	return false
}

// Bounds on the content of one declaration.
const (
	MaxNameLen    = 128
	MaxPatternLen = 512
	MaxActions    = 32
	MaxRootKeys   = 16
	MaxReasonLen  = 512
)

// Declaration is the signed payload of every envelope. Field numbers are the
// wire format: never renumber, only add.
type Declaration struct {
	Kind Kind `cbor:"1,keyasint"`
	// Authority is the issuing authority's ID; zero for a genesis (which is
	// the authority).
	Authority ID `cbor:"2,keyasint,omitzero"`
	// Seq is the position in the issuer's chain: 0 for the genesis, then
	// 1, 2, ... Invariant: zero for off-chain kinds (credentials).
	Seq uint64 `cbor:"3,keyasint,omitzero"`
	// Prev is the ID of the issuer's declaration at Seq-1. Invariant: zero
	// exactly when Seq is zero.
	Prev ID `cbor:"4,keyasint,omitzero"`
	// IssuedAt is when the declaration was signed (Unix seconds). It is
	// informative: validity is decided by each kind's own window.
	IssuedAt int64 `cbor:"5,keyasint,omitzero"`

	Genesis    *Genesis       `cbor:"16,keyasint,omitempty"`
	Rule       *Rule          `cbor:"17,keyasint,omitempty"`
	Credential *Credential    `cbor:"18,keyasint,omitempty"`
	Revocation *Revocation    `cbor:"19,keyasint,omitempty"`
	Delegation *KeyDelegation `cbor:"20,keyasint,omitempty"`
	Rotation   *Rotation      `cbor:"21,keyasint,omitempty"`
	Anchors    *Anchors       `cbor:"22,keyasint,omitempty"`
	Charter    *Charter       `cbor:"23,keyasint,omitempty"`
	Membership *Membership    `cbor:"24,keyasint,omitempty"`
	Nodes      *Nodes         `cbor:"25,keyasint,omitempty"`
}

// Genesis founds an authority.
type Genesis struct {
	Name string `cbor:"1,keyasint"`
	// Kind is the kind of identity authority (aws, azure, gcp, ad, pki,
	// oidc, sovereign, ...): informative, for people and audit.
	Kind     string      `cbor:"2,keyasint,omitempty"`
	RootKeys []PublicKey `cbor:"3,keyasint"`
	// Threshold is how many distinct root keys must sign a root
	// declaration (threshold.go). Invariant: 1 <= Threshold <= len(RootKeys).
	Threshold uint8 `cbor:"4,keyasint"`
	// OIDC, X509Roots and SPIFFE are external trust anchors: credentials
	// of other systems (JWTs, X.509 chains) that the authority vouches for
	// as its own principals (external.go). All optional.
	OIDC      *OIDCAnchor   `cbor:"5,keyasint,omitempty"`
	X509Roots [][]byte      `cbor:"6,keyasint,omitempty"`
	SPIFFE    *SPIFFEAnchor `cbor:"7,keyasint,omitempty"`
	// Nodes are the libp2p peers that run the authority's nodes
	// (consortium.go); a later Nodes declaration replaces them.
	Nodes []NodeRef `cbor:"8,keyasint,omitempty"`
}

// Rule is a federation rule: the declaring (target) authority accepts
// principals of Source whose subject matches Subjects, for resources matching
// Resources and the listed actions, within [NotBefore, NotAfter).
type Rule struct {
	Source    ID       `cbor:"1,keyasint"`
	Subjects  string   `cbor:"2,keyasint"`
	Resources string   `cbor:"3,keyasint"`
	Actions   []string `cbor:"4,keyasint"`
	NotBefore int64    `cbor:"5,keyasint,omitzero"`
	NotAfter  int64    `cbor:"6,keyasint,omitzero"`
	// Hops is how many further federation hops may be composed through
	// this rule: 0 accepts only principals whose home is Source; h accepts
	// principals that reached Source over at most h other rules (like
	// x509's pathLenConstraint and OpenID Federation's max_path_length;
	// see path.go for the exact definition).
	Hops uint8 `cbor:"7,keyasint,omitzero"`
	// Require lists attributes the credential must carry exactly.
	// Invariant: sorted by Key, keys unique (see validAttrs).
	Require []Attr `cbor:"8,keyasint,omitempty"`
}

// Credential names one principal of the issuing authority.
type Credential struct {
	Subject   string `cbor:"1,keyasint"`
	NotBefore int64  `cbor:"2,keyasint,omitzero"`
	NotAfter  int64  `cbor:"3,keyasint,omitzero"`
	// Serial tells apart credentials that are otherwise identical (same
	// subject and window): Ed25519 is deterministic, so without it two
	// workloads given credentials in the same second would share one ID,
	// and revoking one would revoke both. Issuers fill it with random bytes.
	Serial []byte `cbor:"4,keyasint,omitempty"`
	// Attributes are facts the issuer states about the principal, matched
	// by rules' Require. Invariant: sorted by Key, keys unique.
	Attributes []Attr `cbor:"5,keyasint,omitempty"`
	// Resources, when set, narrows what the credential may be used for
	// (a glob, as a rule's); empty means whatever the rules allow.
	Resources string `cbor:"6,keyasint,omitempty"`
	// Actions, when set, narrows the actions; empty means any.
	// Invariant: no action listed twice.
	Actions []string `cbor:"7,keyasint,omitempty"`
	// HolderKey, when set, is the key of the credential's holder: a request
	// must prove possession of it (Request.PoP), and it is the key that
	// signs credentials delegated from this one.
	HolderKey *PublicKey `cbor:"8,keyasint,omitempty"`
	// Parent, when set, makes this a delegated credential: it is signed by
	// the parent credential's HolderKey, not by the authority, and may only
	// narrow the parent (see delegation.go).
	Parent ID `cbor:"9,keyasint,omitzero"`
}

// MaxSerialLen bounds a credential's serial.
const MaxSerialLen = 32

// Revocation revokes Target, a declaration of the same issuer.
type Revocation struct {
	Target ID     `cbor:"1,keyasint"`
	Reason string `cbor:"2,keyasint,omitempty"`
}

// validate checks the declaration's own fields (no signatures, no graph).
func (d *Declaration) validate() error {
	bodies := 0
	for _, set := range []bool{d.Genesis != nil, d.Rule != nil, d.Credential != nil, d.Revocation != nil, d.Delegation != nil, d.Rotation != nil, d.Anchors != nil, d.Charter != nil, d.Membership != nil, d.Nodes != nil} {
		if set {
			bodies++
		}
	}
	if bodies != 1 {
		return fmt.Errorf("want exactly one body, got %d", bodies)
	}
	if d.IssuedAt < 0 {
		return errors.New("issued-at is negative")
	}
	switch d.Kind {
	case KindGenesis:
		if d.Genesis == nil {
			return errors.New("genesis declaration without genesis body")
		}
		if !d.Authority.IsZero() || d.Seq != 0 || !d.Prev.IsZero() {
			return errors.New("genesis must have no authority, seq 0 and no previous declaration")
		}
		return d.Genesis.validate()
	case KindRule:
		if d.Rule == nil {
			return errors.New("rule declaration without rule body")
		}
		if err := d.chained(); err != nil {
			return err
		}
		return d.Rule.validate()
	case KindRevocation:
		if d.Revocation == nil {
			return errors.New("revocation declaration without revocation body")
		}
		if err := d.chained(); err != nil {
			return err
		}
		if d.Revocation.Target.IsZero() {
			return errors.New("revocation of the zero id")
		}
		if len(d.Revocation.Reason) > MaxReasonLen || !utf8.ValidString(d.Revocation.Reason) {
			return fmt.Errorf("revocation reason longer than %d bytes or not UTF-8", MaxReasonLen)
		}
		return nil
	case KindCredential:
		if d.Credential == nil {
			return errors.New("credential declaration without credential body")
		}
		if d.Authority.IsZero() {
			return errors.New("credential without issuing authority")
		}
		if d.Seq != 0 || !d.Prev.IsZero() {
			return errors.New("a credential is off-chain: seq and previous must be empty")
		}
		return d.Credential.validate()
	case KindDelegation:
		if d.Delegation == nil {
			return errors.New("delegation declaration without delegation body")
		}
		if err := d.chained(); err != nil {
			return err
		}
		return d.Delegation.validate()
	case KindRotation:
		if d.Rotation == nil {
			return errors.New("rotation declaration without rotation body")
		}
		if err := d.chained(); err != nil {
			return err
		}
		return d.Rotation.validate()
	case KindAnchors:
		if d.Anchors == nil {
			return errors.New("anchors declaration without anchors body")
		}
		if err := d.chained(); err != nil {
			return err
		}
		return d.Anchors.validate()
	case KindCharter:
		if d.Charter == nil {
			return errors.New("charter declaration without charter body")
		}
		if err := d.chained(); err != nil {
			return err
		}
		return d.Charter.validate()
	case KindMembership:
		if d.Membership == nil {
			return errors.New("membership declaration without membership body")
		}
		if err := d.chained(); err != nil {
			return err
		}
		return d.Membership.validate()
	case KindNodes:
		if d.Nodes == nil {
			return errors.New("nodes declaration without nodes body")
		}
		if err := d.chained(); err != nil {
			return err
		}
		return validNodes(d.Nodes.Peers)
	}
	return fmt.Errorf("unknown declaration kind %d", uint8(d.Kind))
}

func (d *Declaration) chained() error {
	if d.Authority.IsZero() {
		return fmt.Errorf("%v without issuing authority", d.Kind)
	}
	if d.Seq == 0 || d.Prev.IsZero() {
		return fmt.Errorf("%v must have seq >= 1 and the previous declaration's id", d.Kind)
	}
	return nil
}

func (g *Genesis) validate() error {
	if err := validName("authority name", g.Name); err != nil {
		return err
	}
	if len(g.Kind) > MaxNameLen || !utf8.ValidString(g.Kind) {
		return fmt.Errorf("authority kind longer than %d bytes or not UTF-8", MaxNameLen)
	}
	if err := validRootSet(g.RootKeys, g.Threshold); err != nil {
		return err
	}
	if err := validNodes(g.Nodes); err != nil {
		return err
	}
	return g.validateAnchors()
}

func (r *Rule) validate() error {
	if r.Source.IsZero() {
		return errors.New("rule without source authority")
	}
	if err := validPattern("subjects", r.Subjects); err != nil {
		return err
	}
	if err := validPattern("resources", r.Resources); err != nil {
		return err
	}
	if len(r.Actions) == 0 || len(r.Actions) > MaxActions {
		return fmt.Errorf("rule must list 1 to %d actions, got %d", MaxActions, len(r.Actions))
	}
	for _, a := range r.Actions {
		if err := validName("action", a); err != nil {
			return err
		}
	}
	if err := validAttrs("rule requirement", r.Require); err != nil {
		return err
	}
	return validWindow(r.NotBefore, r.NotAfter)
}

func (c *Credential) validate() error {
	if c.Subject == "" || len(c.Subject) > MaxPatternLen || !utf8.ValidString(c.Subject) {
		return fmt.Errorf("credential subject must be 1 to %d bytes of UTF-8", MaxPatternLen)
	}
	if len(c.Serial) > MaxSerialLen {
		return fmt.Errorf("credential serial is %d bytes, over %d", len(c.Serial), MaxSerialLen)
	}
	if err := c.validateScope(); err != nil {
		return err
	}
	return validWindow(c.NotBefore, c.NotAfter)
}

func validWindow(nbf, naf int64) error {
	if nbf < 0 || naf < 0 {
		return errors.New("validity window has a negative time")
	}
	if naf != 0 && naf <= nbf {
		return fmt.Errorf("validity window is empty: not-after %s is not after not-before %s",
			time.Unix(naf, 0).UTC().Format(time.RFC3339), time.Unix(nbf, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func validName(what, s string) error {
	if s == "" || len(s) > MaxNameLen || !utf8.ValidString(s) || strings.ContainsAny(s, " \t\r\n,") {
		return fmt.Errorf("%s %q: want 1 to %d bytes of UTF-8 without spaces or commas", what, abbrev(s), MaxNameLen)
	}
	return nil
}

func validPattern(what, s string) error {
	if s == "" || len(s) > MaxPatternLen || !utf8.ValidString(s) {
		return fmt.Errorf("%s pattern: want 1 to %d bytes of UTF-8", what, MaxPatternLen)
	}
	return nil
}
