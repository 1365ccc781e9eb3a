package main

// Decision receipts: `verify --receipt FILE` writes the node's sealed record
// of a decision (node.Receipt), and `audit check-receipt FILE` checks it
// later against a node's transparency log: who sealed it, that its
// checkpoint is of this log and signed by the same authority, that the log
// still extends that checkpoint, and that every on-chain element of the
// chain is in the log at the checkpoint's size.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
	"github.com/fednode/fednode/tlog"
)

// writeReceipt checks that the node's receipt records the decision it sent
// beside it, then writes it to file.
func writeReceipt(file string, raw []byte, d authority.Decision) error {
	r, _, err := node.ParseReceipt(raw)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("verify: --receipt: the node sent a receipt that does not parse: %w", err)}
	}
	if r.Outcome != d.Outcome || r.Reason != string(d.Reason) || r.GraphVersion != d.GraphVersion || !slices.Equal(r.Chain, d.Chain) {
		return &exitError{code: 2, err: fmt.Errorf("verify: --receipt: the node's receipt says %s (%s) at graph version %d, its decision %s (%s) at %d",
			r.Outcome, r.Reason, r.GraphVersion, d.Outcome, d.Reason, d.GraphVersion)}
	}
	if err := writeFileAtomic(file, raw); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("verify: --receipt: %w", err)}
	}
	return nil
}

// Checks of check-receipt, in the order they run; a receiptFault names one.
const (
	checkSeal        = "seal"
	checkAuthority   = "authority"
	checkCheckpoint  = "checkpoint"
	checkConsistency = "consistency"
	checkChain       = "chain"
)

// receiptFault is the first check of a receipt that failed, and why.
type receiptFault struct {
	Check string `json:"check"`
	// Index is the chain element, for a chain check.
	Index *int  `json:"index,omitempty"`
	Err   error `json:"-"`
}

func (f *receiptFault) Error() string {
	if f.Index != nil {
		return fmt.Sprintf("%s[%d]: %v", f.Check, *f.Index, f.Err)
	}
	return f.Check + ": " + f.Err.Error()
}

func (f *receiptFault) Unwrap() error { return f.Err }

func fault(check string, format string, args ...any) error {
	return &receiptFault{Check: check, Err: fmt.Errorf(format, args...)}
}

// Statuses of a chain element in a receipt report.
const (
	elemIncluded  = "included"
	elemPresented = "presented, not logged"
	// elemLater: a revocation the node denied on when gossip brought it,
	// before Raft ordered it; it is in the log, after the graph judged at.
	elemLater = "logged after the decision"
)

// receiptElement is one chain element and what the check found of it.
type receiptElement struct {
	Index  int          `json:"index"`
	ID     authority.ID `json:"id"`
	Kind   string       `json:"kind,omitempty"`
	Status string       `json:"status,omitempty"`
	Leaf   *uint64      `json:"leaf,omitempty"`
	// TreeSize is the size of the tree the inclusion proof verified in.
	TreeSize uint64 `json:"tree_size,omitempty"`
}

// receiptLog is a checkpoint in a report.
type receiptLog struct {
	Origin  string        `json:"origin"`
	Size    uint64        `json:"size"`
	Root    node.HexBytes `json:"root"`
	Signers []string      `json:"signers,omitempty"`
}

// receiptReport is what check-receipt found; the JSON of --json (also on
// failure, with what was checked up to the fault).
type receiptReport struct {
	OK            bool                 `json:"ok"`
	Decision      string               `json:"decision,omitempty"`
	Reason        string               `json:"reason,omitempty"`
	Message       string               `json:"message,omitempty"`
	Authority     *authority.ID        `json:"authority,omitempty"`
	AuthorityName string               `json:"authority_name,omitempty"`
	Request       *node.ReceiptRequest `json:"request,omitempty"`
	GraphVersion  uint64               `json:"graph_version,omitempty"`
	GraphAgeMS    int64                `json:"graph_age_ms,omitempty"`
	IssuedAt      string               `json:"issued_at,omitempty"`
	Checkpoint    *receiptLog          `json:"checkpoint,omitempty"`
	Current       *receiptLog          `json:"current,omitempty"`
	Chain         []receiptElement     `json:"chain,omitempty"`
	Error         string               `json:"error,omitempty"`
	Bad           *receiptFault        `json:"bad,omitempty"`
}

// rootSetOf fetches an agreed authority's genesis and rotations from the
// node and follows them (node.FollowRotations): its name and CURRENT root
// keys. The genesis is pinned by the ID and each rotation is checked against
// the set before it, so the node cannot make up keys; it could only withhold
// a rotation.
func rootSetOf(ctx context.Context, cl *node.Client, id authority.ID) (node.RootSet, error) {
	head, err := cl.Head(ctx, id.String())
	if err != nil {
		return node.RootSet{}, fmt.Errorf("the node does not know authority %s: %w", id, err)
	}
	if head.ID != id {
		return node.RootSet{}, fmt.Errorf("asked the node for authority %s, it answered with %s", id, head.ID)
	}
	fetch := func(want authority.ID, what string) (*authority.Signed, error) {
		env, err := cl.Declaration(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("fetch the %s %s of %s: %w", what, want.Short(), head.Name, err)
		}
		sd, err := authority.Parse(env)
		if err != nil {
			return nil, fmt.Errorf("the %s %s of %s does not parse: %w", what, want.Short(), head.Name, err)
		}
		if sd.ID != want {
			return nil, fmt.Errorf("asked for the %s %s, got %s", what, want, sd.ID)
		}
		return sd, nil
	}
	gen, err := fetch(id, "genesis")
	if err != nil {
		return node.RootSet{}, err
	}
	var rots []*authority.Signed
	for _, rid := range head.Rotations {
		r, err := fetch(rid, "rotation")
		if err != nil {
			return node.RootSet{}, err
		}
		rots = append(rots, r)
	}
	return node.FollowRotations(gen, rots)
}

// noteSigners are the checkpoint signers of an authority: its name and its
// current root keys.
func noteSigners(set node.RootSet) []tlog.Witness {
	out := make([]tlog.Witness, 0, len(set.Keys))
	for _, k := range set.Keys {
		out = append(out, tlog.Witness{Name: set.Name, Key: k})
	}
	return out
}

// checkReceipt checks a sealed receipt against the log of the node cl
// talks to, filling rep as it goes, and returns the first failed check as
// a *receiptFault.
func checkReceipt(ctx context.Context, cl *node.Client, raw []byte, rep *receiptReport) error {
	// The seal: parse, then fetch the deciding authority's keys and verify.
	r, seal, err := node.ParseReceipt(raw)
	if err != nil {
		return fault(checkSeal, "%v", err)
	}
	rep.Decision, rep.Reason, rep.Message = r.Outcome, r.Reason, r.Message
	rep.Authority, rep.Request = &r.Authority, &r.Request
	rep.GraphVersion, rep.GraphAgeMS = r.GraphVersion, r.GraphAgeMS
	rep.IssuedAt = time.UnixMilli(r.IssuedAt).UTC().Format(time.RFC3339Nano)
	set, err := rootSetOf(ctx, cl, r.Authority)
	if err != nil {
		return fault(checkAuthority, "the deciding authority: %v", err)
	}
	rep.AuthorityName = set.Name
	if err := seal.VerifyWith(set.Keys); err != nil {
		return fault(checkSeal, "not sealed by a current root key of %s (%s): %v", set.Name, r.Authority.Short(), err)
	}

	// The checkpoint: signed by the same authority, of the node's log, and
	// covering the graph version judged at.
	c, signers, err := tlog.OpenCheckpoint(r.Checkpoint, noteSigners(set))
	if err != nil {
		return fault(checkCheckpoint, "not signed by %s, who sealed the receipt: %v", set.Name, err)
	}
	rep.Checkpoint = &receiptLog{Origin: c.Origin, Size: c.Size, Root: c.Root, Signers: signers}
	if c.Size < r.GraphVersion {
		return fault(checkCheckpoint, "size %d is below the graph version %d the request was judged at: the checkpoint does not cover the graph", c.Size, r.GraphVersion)
	}
	cur, err := currentCheckpoint(ctx, cl)
	if err != nil {
		return fault(checkCheckpoint, "%v", err)
	}
	if c.Origin != cur.Origin {
		return fault(checkCheckpoint, "of log %q, but the node keeps log %q: the receipt is about another consortium's log", c.Origin, cur.Origin)
	}

	// Consistency: the node's log now extends the receipt's checkpoint.
	rep.Current = &cur
	if cur.Size < c.Size {
		return fault(checkConsistency, "the node's log has %d leaves, fewer than the receipt's checkpoint (%d): ask a node that is up to date (or this one has rolled back)", cur.Size, c.Size)
	}
	p, err := cl.AuditConsistency(ctx, c.Size, cur.Size)
	if err != nil {
		return fault(checkConsistency, "%v", err)
	}
	if p.OldSize != c.Size || p.NewSize != cur.Size {
		return fault(checkConsistency, "asked for %d -> %d, the node answered %d -> %d", c.Size, cur.Size, p.OldSize, p.NewSize)
	}
	if err := tlog.VerifyConsistency(c.Size, cur.Size, c.Root, cur.Root, hashes(p.Proof)); err != nil {
		return fault(checkConsistency, "the receipt's checkpoint (size %d, root %x) is not a prefix of the node's log (size %d, root %x): %v", c.Size, c.Root, cur.Size, []byte(cur.Root), err)
	}

	// The chain: every element but the presented credential is in the log
	// at the checkpoint's size, and was in the graph judged at.
	for i, id := range r.Chain {
		e := receiptElement{Index: i, ID: id}
		if err := checkElement(ctx, cl, r, c, cur, &e); err != nil {
			rep.Chain = append(rep.Chain, e)
			return &receiptFault{Check: checkChain, Index: &i, Err: fmt.Errorf("%s: %w", id, err)}
		}
		rep.Chain = append(rep.Chain, e)
	}
	return nil
}

// currentCheckpoint is the node's checkpoint now, its note checked against
// its fields and signed by the node's own authority (which need not be the
// one that decided: any node of the consortium keeps the same log).
func currentCheckpoint(ctx context.Context, cl *node.Client) (receiptLog, error) {
	cp, err := cl.AuditCheckpoint(ctx)
	if err != nil {
		return receiptLog{}, fmt.Errorf("the node's current checkpoint: %w", err)
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return receiptLog{}, fmt.Errorf("the node's status: %w", err)
	}
	set, err := rootSetOf(ctx, cl, st.Authority.ID)
	if err != nil {
		return receiptLog{}, fmt.Errorf("the node's own authority: %w", err)
	}
	c, signers, err := tlog.OpenCheckpoint([]byte(cp.Note), noteSigners(set))
	if err == nil {
		err = sameCheckpoint(c, cp)
	}
	if err != nil {
		return receiptLog{}, fmt.Errorf("the node's current checkpoint is not good (signed by its authority %s?): %w", set.Name, err)
	}
	return receiptLog{Origin: c.Origin, Size: c.Size, Root: c.Root, Signers: signers}, nil
}

// checkElement checks one chain element of r against the log: an inclusion
// proof at the receipt's checkpoint c (or, for a revocation the node had
// from gossip before it was ordered, at the current checkpoint cur).
func checkElement(ctx context.Context, cl *node.Client, r *node.Receipt, c tlog.Checkpoint, cur receiptLog, e *receiptElement) error {
	if e.ID == r.Request.CredentialID {
		e.Kind, e.Status = "credential", elemPresented
		return nil
	}
	// Only a deny's revocation, the last element, may be newer than the
	// graph judged at: the node denies on a revocation as soon as gossip
	// brings it, before Raft orders it (revocation fails safe).
	provisional := r.Outcome == "deny" && r.Reason == string(authority.ReasonRevoked) && e.Index == len(r.Chain)-1
	p, err := cl.AuditProve(ctx, e.ID, c.Size)
	var ae *node.APIError
	later := errors.As(err, &ae) && ae.Status == http.StatusBadRequest // a leaf beyond size c.Size
	switch {
	case err == nil:
		if err := includedAt(p, e.ID, c.Size, c.Root, e); err != nil {
			return err
		}
		if *e.Leaf < r.GraphVersion {
			e.Status = elemIncluded
			return nil
		}
		if !provisional || e.Kind != authority.KindRevocation.String() {
			return fmt.Errorf("%s at leaf %d, which is beyond the graph version %d the request was judged at: the node could not have used it", e.Kind, *e.Leaf, r.GraphVersion)
		}
		e.Status = elemLater
		return nil
	case later && provisional:
		p, err := cl.AuditProve(ctx, e.ID, cur.Size)
		if err != nil {
			return fmt.Errorf("the node's log does not prove it at its current size %d: %w", cur.Size, err)
		}
		if err := includedAt(p, e.ID, cur.Size, cur.Root, e); err != nil {
			return err
		}
		if e.Kind != authority.KindRevocation.String() {
			return fmt.Errorf("a %s at leaf %d, beyond the receipt's checkpoint (size %d): only a revocation may be newer than the decision", e.Kind, *e.Leaf, c.Size)
		}
		e.Status = elemLater
		return nil
	case later:
		return fmt.Errorf("at a leaf beyond the receipt's checkpoint (size %d), so newer than the graph judged at; only the revocation a deny names last may be: %w", c.Size, err)
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound && provisional:
		return fmt.Errorf("the revocation the node denied on is not in its log: it had it from gossip, and it was not agreed (yet); check again later: %w", err)
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return fmt.Errorf("not in the node's log: the chain names a declaration the log does not hold: %w", err)
	default:
		return fmt.Errorf("no inclusion proof at size %d: %w", c.Size, err)
	}
}

// includedAt checks the node's answer to prove id at size against root (the
// root the auditor trusts, not the one the node sent beside the proof), and
// records the element's kind and leaf.
func includedAt(p node.InclusionJSON, id authority.ID, size uint64, root []byte, e *receiptElement) error {
	if p.ID != id || authority.IDOf(p.Envelope) != id {
		return fmt.Errorf("asked for a proof of %s, got one of %s with an envelope of %s", id.Short(), p.ID.Short(), authority.IDOf(p.Envelope).Short())
	}
	if p.TreeSize != size {
		return fmt.Errorf("asked for the tree of %d leaves, got %d", size, p.TreeSize)
	}
	sd, err := authority.Parse(p.Envelope)
	if err != nil {
		return fmt.Errorf("the logged envelope does not parse: %w", err)
	}
	if err := tlog.VerifyInclusion(p.Envelope, p.Index, size, hashes(p.Proof), root); err != nil {
		return fmt.Errorf("not included at leaf %d in the log of size %d with root %x: %w", p.Index, size, root, err)
	}
	leaf := p.Index
	e.Kind, e.Leaf, e.TreeSize = sd.Decl.Kind.String(), &leaf, size
	return nil
}

func auditCheckReceiptCmd() *cobra.Command {
	var api, home string
	var asJSON bool
	c := &cobra.Command{
		Use:   "check-receipt FILE (--api HOST:PORT | --home DIR) [--json]",
		Short: "Check a decision receipt (from verify --receipt) against a node's log; exit 0 good, 1 bad, 2 usage",
		Long: "check-receipt confirms what a node decided and on what evidence. It checks, stopping at the first failure: " +
			"seal (the receipt parses and is sealed by a current root key of the deciding authority, whose genesis and rotations it fetches from the node); " +
			"checkpoint (the receipt's checkpoint is signed by that authority, covers the graph version judged at, and is of the node's log); " +
			"consistency (the node's current log extends the receipt's checkpoint: RFC 9162 consistency proof); " +
			"chain (every element of the decision's chain but the presented credential is in the log at the checkpoint's size, and was in the graph judged at). " +
			"The node asked may be any up-to-date node of the consortium.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usage("audit check-receipt: FILE is required (a receipt written by verify --receipt)")
			}
			cl, _, err := nodeClient("audit check-receipt", api, home)
			if err != nil {
				return err
			}
			raw, err := readReceipt(args[0])
			if err != nil {
				return err
			}
			var rep receiptReport
			if err := checkReceipt(cmd.Context(), cl, raw, &rep); err != nil {
				rep.Error = err.Error()
				var f *receiptFault
				if errors.As(err, &f) {
					rep.Bad = f
				}
				if asJSON {
					printJSON(cmd, rep)
				}
				return &exitError{code: 1, err: fmt.Errorf("audit check-receipt: %s: %w", args[0], err)}
			}
			rep.OK = true
			if asJSON {
				printJSON(cmd, rep)
				return nil
			}
			printReceiptReport(cmd, rep)
			return nil
		},
	}
	nodeFlags(c, &api, &home, &asJSON)
	return c
}

// readReceipt reads a receipt file, reading no more than one byte past the
// largest receipt (ParseReceipt then refuses it).
func readReceipt(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, usage("audit check-receipt: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, node.MaxReceiptSize+1))
	if err != nil {
		return nil, usage("audit check-receipt: %s: %v", file, err)
	}
	return b, nil
}

func printReceiptReport(cmd *cobra.Command, rep receiptReport) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "receipt verified: %s decided %s (%s)\n", rep.AuthorityName, rep.Decision, rep.Reason)
	fmt.Fprintf(out, "  message     %s\n", rep.Message)
	q := rep.Request
	fmt.Fprintf(out, "  request     credential %s at %q, resource %q, action %q, judged at %s\n", q.CredentialID, q.Target, q.Resource, q.Action, q.At)
	fmt.Fprintf(out, "  decided by  %s (%s), receipt issued at %s\n", rep.AuthorityName, rep.Authority, rep.IssuedAt)
	fmt.Fprintf(out, "  graph       version %d, age %s\n", rep.GraphVersion, time.Duration(rep.GraphAgeMS)*time.Millisecond)
	cp := rep.Checkpoint
	fmt.Fprintf(out, "  checkpoint  %s size %d root %x, signed by %s\n", cp.Origin, cp.Size, []byte(cp.Root), joinNames(cp.Signers))
	cur := rep.Current
	fmt.Fprintf(out, "  log now     size %d root %x (signed by %s): consistent with the receipt's checkpoint\n", cur.Size, []byte(cur.Root), joinNames(cur.Signers))
	for _, e := range rep.Chain {
		switch e.Status {
		case elemPresented:
			fmt.Fprintf(out, "  chain[%d]    %s %s: %s\n", e.Index, e.ID, e.Kind, e.Status)
		default:
			fmt.Fprintf(out, "  chain[%d]    %s %s: %s, leaf %d of the log of %d leaves\n", e.Index, e.ID, e.Kind, e.Status, *e.Leaf, e.TreeSize)
		}
	}
	if len(rep.Chain) == 0 {
		fmt.Fprintln(out, "  chain       empty (the decision rested on no declaration)")
	}
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "nobody known"
	}
	return strings.Join(names, ", ")
}
