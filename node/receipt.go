package node

// Decision receipts: a signed record of one decision this node made — the
// request, the outcome, the chain it rested on, the graph version judged at
// and a signed checkpoint of the log that holds that graph — so that an
// auditor can later confirm what the node decided and on what evidence
// (`fednode audit check-receipt`). The receipt is sealed with the home's
// authority root key; its checkpoint is signed with the same key (and
// perhaps cosigned by peers), and every on-chain element of its chain is a
// leaf of the log at the checkpoint's size.

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// ReceiptFormat is key 1 of every receipt payload: the format and its
// version. It is also the receipt's domain separator: a bundle's signature
// statement carries its own context string at key 1 ("fednode-bundle-v2"),
// and a declaration's payload an integer kind, so no seal of one kind of
// payload ever decodes as another.
const ReceiptFormat = "fednode-receipt-v1"

// Bounds on receipts, which are read from files and relayed by people.
const (
	// MaxReceiptSize bounds a sealed receipt: a checkpoint note of at most
	// tlog.MaxNoteSize plus a request, message and chain.
	MaxReceiptSize = tlog.MaxNoteSize + 256<<10
	// MaxReceiptChain bounds the chain of a receipt. A decision's chain is
	// at most the issuer's genesis, MaxDelegationDepth credentials, a
	// revocation, and a genesis and a rule per rule of a path (MaxPathLength)
	// plus the target's genesis and revocation: about 20.
	MaxReceiptChain = 64
	// MaxReceiptMessage bounds a receipt's message (a decision's sentence:
	// names, globs and short IDs).
	MaxReceiptMessage = 16 << 10
)

// Errors of receipts. Each is returned wrapped; use errors.Is.
var (
	// ErrBadReceipt: the bytes are not a well-formed, canonical receipt of
	// this format, or its seal does not verify with the keys given.
	ErrBadReceipt = errors.New("node: invalid receipt")
	// ErrReceiptTooLarge: the decision's receipt would exceed MaxReceiptSize
	// (a request with very long strings, or a checkpoint with very many
	// cosignatures); the node does not issue it.
	ErrReceiptTooLarge = errors.New("node: receipt too large")
)

// Receipt is the signed record of one decision. Field numbers are the wire
// format (ARCHITECTURE.md, wire formats): never renumber.
type Receipt struct {
	// Format is ReceiptFormat.
	Format string `cbor:"1,keyasint"`
	// Authority is the ID of the deciding node's authority, whose root key
	// sealed the receipt and signed its checkpoint.
	Authority authority.ID `cbor:"2,keyasint"`
	// Request is what was asked.
	Request ReceiptRequest `cbor:"3,keyasint"`
	// Outcome is "allow" or "deny". Invariant: "allow" iff Reason is "ok".
	Outcome string `cbor:"4,keyasint"`
	// Reason is the decision's stable reason code (authority.Reason).
	Reason string `cbor:"5,keyasint"`
	// Message is the decision's sentence.
	Message string `cbor:"6,keyasint"`
	// Chain is the decision's chain (authority.Decision.Chain): the
	// declarations it used, on-chain ones and the presented credential.
	// Invariant: at most MaxReceiptChain IDs; never nil on the wire ([]).
	Chain []authority.ID `cbor:"7,keyasint"`
	// GraphVersion is the version of the graph the request was judged at.
	GraphVersion uint64 `cbor:"8,keyasint"`
	// GraphAgeMS is how old that graph was (authority.Decision.GraphAgeMS).
	// Invariant: >= 0.
	GraphAgeMS int64 `cbor:"9,keyasint"`
	// Checkpoint is the C2SP signed note of the node's log at a size >=
	// GraphVersion, taken right after deciding: signed by the deciding
	// authority, perhaps cosigned by peers that witnessed the same root.
	// Normally its size equals GraphVersion; it is larger when declarations
	// were agreed between the decision and the checkpoint.
	Checkpoint []byte `cbor:"10,keyasint"`
	// IssuedAt is when the node made the receipt, in Unix milliseconds (the
	// node's Config.Clock). Invariant: >= 0.
	IssuedAt int64 `cbor:"11,keyasint"`
}

// ReceiptRequest is the request a receipt records. The credential itself is
// not in it (it is the principal's, and off-chain): only its ID, which is
// the ID the chain names it by.
type ReceiptRequest struct {
	// CredentialID is the SHA-256 of the presented credential's bytes.
	CredentialID authority.ID `cbor:"1,keyasint"`
	// Target is the target authority as the requester named it (a name or
	// an ID).
	Target   string `cbor:"2,keyasint"`
	Resource string `cbor:"3,keyasint"`
	Action   string `cbor:"4,keyasint"`
	// At is the RFC3339 time the request was judged at.
	At string `cbor:"5,keyasint"`
}

var (
	receiptEnc  cbor.EncMode
	receiptDec  cbor.DecMode // strict: the one canonical form
	receiptPeek cbor.DecMode // reads key 1 of any payload, to name another format
)

func init() {
	// Core Deterministic, and a nil chain as an empty array, so that each
	// receipt has one encoding and no relay can change its bytes.
	eo := cbor.CoreDetEncOptions()
	eo.NilContainers = cbor.NilContainerAsEmpty
	var err error
	if receiptEnc, err = eo.EncMode(); err != nil {
		panic(err)
	}
	do := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   4,  // the minimum fxamacker allows; a receipt needs 2
		MaxMapPairs:       16, // the minimum fxamacker allows; a receipt needs 11
		MaxArrayElements:  MaxReceiptChain,
		UTF8:              cbor.UTF8RejectInvalid,
	}
	if receiptDec, err = do.DecMode(); err != nil {
		panic(err)
	}
	do.ExtraReturnErrors = cbor.ExtraDecErrorNone
	do.DupMapKey = cbor.DupMapKeyQuiet
	do.MaxNestedLevels = 32
	do.MaxMapPairs = 1 << 10
	do.MaxArrayElements = 1 << 16
	if receiptPeek, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// check verifies what a receipt must be whoever signed it. Its errors carry
// no package prefix.
func (r *Receipt) check() error {
	if r.Format != ReceiptFormat {
		return fmt.Errorf("the sealed payload is %q, not a %q receipt", r.Format, ReceiptFormat)
	}
	switch r.Outcome {
	case "allow":
		if r.Reason != string(authority.ReasonOK) {
			return fmt.Errorf("outcome allow with reason %q: an allow's reason is %q", r.Reason, authority.ReasonOK)
		}
	case "deny":
		if r.Reason == "" || r.Reason == string(authority.ReasonOK) {
			return fmt.Errorf("outcome deny with reason %q: a deny names why", r.Reason)
		}
	default:
		return fmt.Errorf("outcome %q, want allow or deny", r.Outcome)
	}
	if len(r.Message) > MaxReceiptMessage {
		return fmt.Errorf("message of %d bytes, over the %d-byte limit", len(r.Message), MaxReceiptMessage)
	}
	if len(r.Chain) > MaxReceiptChain {
		return fmt.Errorf("chain of %d IDs, over the limit of %d", len(r.Chain), MaxReceiptChain)
	}
	if r.GraphAgeMS < 0 {
		return fmt.Errorf("graph age %d ms is negative", r.GraphAgeMS)
	}
	if r.IssuedAt < 0 {
		return fmt.Errorf("issued-at %d ms is negative", r.IssuedAt)
	}
	if _, err := time.Parse(time.RFC3339, r.Request.At); err != nil {
		return fmt.Errorf("request time %q is not RFC3339", r.Request.At)
	}
	if len(r.Checkpoint) == 0 || len(r.Checkpoint) > tlog.MaxNoteSize {
		return fmt.Errorf("checkpoint note of %d bytes: want 1 to %d", len(r.Checkpoint), tlog.MaxNoteSize)
	}
	return nil
}

// CheckpointBody parses the receipt's checkpoint note without checking any
// signature: the body before the note's signature block. Use
// tlog.OpenCheckpoint, with the deciding authority's key, to trust it.
func (r *Receipt) CheckpointBody() (tlog.Checkpoint, error) {
	i := bytes.LastIndex(r.Checkpoint, []byte("\n\n"))
	if i < 0 {
		return tlog.Checkpoint{}, fmt.Errorf("%w: the checkpoint note has no signature block", ErrBadReceipt)
	}
	c, err := tlog.ParseCheckpoint(r.Checkpoint[:i+1])
	if err != nil {
		return tlog.Checkpoint{}, fmt.Errorf("%w: checkpoint: %w", ErrBadReceipt, err)
	}
	return c, nil
}

// Seal encodes r canonically and seals it with k, the deciding authority's
// root key (authority.Seal).
func (r *Receipt) Seal(k *authority.PrivateKey) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("node: seal receipt: %w", err)
	}
	payload, err := receiptEnc.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("node: encode receipt: %w", err)
	}
	raw, err := authority.Seal(payload, k)
	if err != nil {
		return nil, fmt.Errorf("node: seal receipt: %w", err)
	}
	if len(raw) > MaxReceiptSize {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit (MaxReceiptSize)", ErrReceiptTooLarge, len(raw), MaxReceiptSize)
	}
	return raw, nil
}

// ParseReceipt decodes a sealed receipt WITHOUT checking its seal: it
// returns the receipt, so the caller can learn which authority to ask for
// keys, and the seal, which the caller must verify (Sealed.VerifyWith with
// that authority's root keys) before trusting any field. It refuses
// anything but the one canonical encoding of a well-formed receipt
// (ErrBadReceipt).
func ParseReceipt(b []byte) (*Receipt, *authority.Sealed, error) {
	if len(b) > MaxReceiptSize {
		return nil, nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrBadReceipt, len(b), MaxReceiptSize)
	}
	s, err := authority.ParseSealed(b, MaxReceiptSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: seal: %w", ErrBadReceipt, err)
	}
	var r Receipt
	if err := receiptDec.Unmarshal(s.Payload, &r); err != nil {
		var peek struct {
			Format any `cbor:"1,keyasint"`
		}
		if receiptPeek.Unmarshal(s.Payload, &peek) == nil {
			if f, ok := peek.Format.(string); ok && f != ReceiptFormat {
				return nil, nil, fmt.Errorf("%w: the sealed payload is %q, not a %q receipt", ErrBadReceipt, f, ReceiptFormat)
			}
		}
		return nil, nil, fmt.Errorf("%w: payload: %w", ErrBadReceipt, err)
	}
	again, err := receiptEnc.Marshal(&r)
	if err != nil || !bytes.Equal(again, s.Payload) {
		return nil, nil, fmt.Errorf("%w: payload is not in Core Deterministic CBOR encoding", ErrBadReceipt)
	}
	if err := r.check(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadReceipt, err)
	}
	return &r, s, nil
}

// OpenReceipt is ParseReceipt plus the seal's check against keys (the
// deciding authority's root keys, from its genesis).
func OpenReceipt(b []byte, keys []authority.PublicKey) (*Receipt, error) {
	r, s, err := ParseReceipt(b)
	if err != nil {
		return nil, err
	}
	if err := s.VerifyWith(keys); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadReceipt, err)
	}
	return r, nil
}

// VerifyWithReceipt is Verify plus a sealed receipt of the decision: target
// is recorded as given, the checkpoint is this replica's witnessed
// checkpoint taken right after deciding (so its size is at least the
// decision's graph version), and issued-at is the node's clock. The
// decision stands even when the receipt fails (ErrEmptyLog before the node
// has joined; ErrReceiptTooLarge).
func (n *Node) VerifyWithReceipt(cred []byte, target, resource, action string, at time.Time) (authority.Decision, []byte, error) {
	d := n.Verify(cred, target, resource, action, at)
	raw, err := n.receipt(cred, target, d)
	return d, raw, err
}

func (n *Node) receipt(cred []byte, target string, d authority.Decision) ([]byte, error) {
	cp, _, err := n.WitnessedCheckpoint()
	if err != nil {
		return nil, fmt.Errorf("node: receipt: %w", err)
	}
	if cp.Size < d.GraphVersion {
		// The log only grows and its size is the graph version: a checkpoint
		// taken after the decision cannot be smaller.
		return nil, fmt.Errorf("node: receipt: checkpoint of size %d is older than the graph version %d judged at", cp.Size, d.GraphVersion)
	}
	r := Receipt{
		Format:    ReceiptFormat,
		Authority: n.home.Authority,
		Request: ReceiptRequest{CredentialID: authority.IDOf(cred), Target: target,
			Resource: d.Resource, Action: d.Action, At: d.At},
		Outcome:      d.Outcome,
		Reason:       string(d.Reason),
		Message:      d.Message,
		Chain:        d.Chain,
		GraphVersion: d.GraphVersion,
		GraphAgeMS:   d.GraphAgeMS,
		Checkpoint:   []byte(cp.Note),
		IssuedAt:     n.now().UnixMilli(),
	}
	if len(r.Chain) > MaxReceiptChain || len(r.Message) > MaxReceiptMessage {
		return nil, fmt.Errorf("%w: a chain of %d IDs and a message of %d bytes (limits %d and %d)", ErrReceiptTooLarge, len(r.Chain), len(r.Message), MaxReceiptChain, MaxReceiptMessage)
	}
	key, err := n.signingKey()
	if err != nil {
		return nil, fmt.Errorf("node: receipt: %w", err)
	}
	return r.Seal(key)
}
