package main

// fednode audit: the auditor's commands. checkpoint, prove, consistency and
// export ask a running node and check what it answers with tlog's pure
// verifiers; verify checks an export offline, with no node at all.

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
	"github.com/fednode/fednode/tlog"
)

// maxExportLine bounds one line of an export: an entry is at most a 64 KiB
// envelope in base64 plus a few hundred bytes of fields, and the checkpoint
// line at most a tlog.MaxNoteSize note, JSON-escaped.
const maxExportLine = 1 << 20

func auditCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Audit the transparency log of the agreed graph: checkpoints, proofs, exports",
		Long: "Every accepted declaration is the next leaf of an RFC 9162 Merkle tree (leaf i = the declaration at graph version i+1). " +
			"These commands fetch a node's signed checkpoint, inclusion and consistency proofs, and check each one before printing it; " +
			"export writes the whole log as JSON lines and verify checks such a file offline; check-receipt checks a decision receipt (verify --receipt) against the log.",
	}
	c.AddCommand(auditCheckpointCmd(), auditProveCmd(), auditConsistencyCmd(), auditExportCmd(), auditVerifyCmd(), auditCheckReceiptCmd())
	return c
}

// nodeClient is the client of the one node named by --api or --home, for
// the command named what; h is nil with --api.
func nodeClient(what, api, home string) (*node.Client, *node.Home, error) {
	if (api == "") == (home == "") {
		return nil, nil, usage("%s: pass one of --api or --home", what)
	}
	if api != "" {
		return node.NewClient(api, ""), nil, nil
	}
	h, cl, err := homeClient(home)
	if err != nil {
		return nil, nil, err
	}
	return cl, h, nil
}

func nodeFlags(c *cobra.Command, api, home *string, asJSON *bool) {
	c.Flags().StringVar(api, "api", "", "a running node's API address")
	c.Flags().StringVar(home, "home", "", "a home whose running node to ask")
	if asJSON != nil {
		c.Flags().BoolVar(asJSON, "json", false, "print one JSON object")
	}
}

func printJSON(cmd *cobra.Command, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(cmd.OutOrStdout(), string(b))
}

// noteCheckpoint parses the body of a signed note without checking any
// signature: the text before the note's last blank line.
func noteCheckpoint(noteText string) (tlog.Checkpoint, error) {
	i := strings.LastIndex(noteText, "\n\n")
	if i < 0 {
		return tlog.Checkpoint{}, errors.New("the note has no signature block")
	}
	return tlog.ParseCheckpoint([]byte(noteText[:i+1]))
}

// sameCheckpoint reports how a note's body differs from the JSON beside it.
func sameCheckpoint(c tlog.Checkpoint, cp node.CheckpointJSON) error {
	if c.Origin != cp.Origin || c.Size != cp.Size || !bytes.Equal(c.Root, cp.Root) {
		return fmt.Errorf("the signed note says %s@%d:%x but its fields say %s@%d:%x", c.Origin, c.Size, c.Root, cp.Origin, cp.Size, []byte(cp.Root))
	}
	return nil
}

func auditCheckpointCmd() *cobra.Command {
	var api, home string
	var asJSON bool
	c := &cobra.Command{
		Use:   "checkpoint (--api HOST:PORT | --home DIR) [--json]",
		Short: "Print the node's signed checkpoint (size, root, C2SP signed note) of its log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, h, err := nodeClient("audit checkpoint", api, home)
			if err != nil {
				return err
			}
			cp, err := cl.AuditCheckpoint(cmd.Context())
			if err != nil {
				return fmt.Errorf("audit checkpoint: %w", err)
			}
			body, err := noteCheckpoint(cp.Note)
			if err == nil {
				err = sameCheckpoint(body, cp)
			}
			if err != nil {
				return fmt.Errorf("audit checkpoint: the node sent a bad checkpoint: %w", err)
			}
			// With the home we know the key the node signs with; with only
			// an address we do not, and say so.
			var signedBy []string
			if h != nil {
				_, signedBy, err = tlog.OpenCheckpoint([]byte(cp.Note), []tlog.Witness{{Name: h.Config.Name, Key: h.Root.Public()}})
				if err != nil {
					return fmt.Errorf("audit checkpoint: the note is not signed by this home's authority %s: %w", h.Config.Name, err)
				}
			}
			if asJSON {
				printJSON(cmd, struct {
					node.CheckpointJSON
					SignedBy []string `json:"signed_by,omitempty"`
				}{cp, signedBy})
				return nil
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "log    %s\nsize   %d\nroot   %x\n", cp.Origin, cp.Size, []byte(cp.Root))
			if h != nil {
				fmt.Fprintf(out, "signature verified: signed by %s with the home's authority key\n", strings.Join(signedBy, ", "))
			} else {
				fmt.Fprintln(out, "signature not checked here (no --home); `fednode audit verify` checks it against the export's geneses")
			}
			fmt.Fprintf(out, "\n%s", cp.Note)
			return nil
		},
	}
	nodeFlags(c, &api, &home, &asJSON)
	return c
}

func auditProveCmd() *cobra.Command {
	var api, home string
	var size uint64
	var asJSON bool
	c := &cobra.Command{
		Use:   "prove DECLARATION_ID (--api HOST:PORT | --home DIR) [--size N] [--json]",
		Short: "Fetch and verify the inclusion proof of an agreed declaration in the log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := authority.ParseID(args[0])
			if err != nil {
				return usage("audit prove: %v", err)
			}
			if cmd.Flags().Changed("size") && size == 0 {
				return usage("audit prove: --size must be at least 1: the empty tree holds no declaration")
			}
			cl, _, err := nodeClient("audit prove", api, home)
			if err != nil {
				return err
			}
			p, err := cl.AuditProve(cmd.Context(), id, size)
			if err != nil {
				return fmt.Errorf("audit prove: %w", err)
			}
			if err := checkInclusion(p, id, size); err != nil {
				return fmt.Errorf("audit prove: the node's proof does not verify: %w", err)
			}
			if asJSON {
				printJSON(cmd, struct {
					node.InclusionJSON
					Verified bool `json:"verified"`
				}{p, true})
				return nil
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "declaration %s is leaf %d of the log of %d leaves\n", p.ID, p.Index, p.TreeSize)
			fmt.Fprintf(out, "leaf hash  %x\nroot       %x\nproof      %d hashes\n", []byte(p.LeafHash), []byte(p.Root), len(p.Proof))
			for _, h := range p.Proof {
				fmt.Fprintf(out, "  %x\n", []byte(h))
			}
			fmt.Fprintln(out, "verified: the RFC 9162 audit path leads from SHA-256(0x00 || envelope) to the root")
			return nil
		},
	}
	nodeFlags(c, &api, &home, &asJSON)
	c.Flags().Uint64Var(&size, "size", 0, "prove against the tree of this many leaves (default: the node's current size)")
	return c
}

// checkInclusion checks a node's answer to prove id at size (0: any).
func checkInclusion(p node.InclusionJSON, id authority.ID, size uint64) error {
	if p.ID != id {
		return fmt.Errorf("asked for %s, got a proof of %s", id, p.ID)
	}
	if got := authority.IDOf(p.Envelope); got != id {
		return fmt.Errorf("the envelope's ID is %s, not %s", got, id)
	}
	if size != 0 && p.TreeSize != size {
		return fmt.Errorf("asked for the tree of %d leaves, got %d", size, p.TreeSize)
	}
	if leaf := tlog.LeafHash(p.Envelope); !bytes.Equal(leaf, p.LeafHash) {
		return fmt.Errorf("leaf hash %x, but SHA-256(0x00 || envelope) is %x", []byte(p.LeafHash), leaf)
	}
	return tlog.VerifyInclusion(p.Envelope, p.Index, p.TreeSize, hashes(p.Proof), p.Root)
}

func hashes(hs []node.HexBytes) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

func parseSize(what, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usage("audit consistency: %s %q: want a decimal tree size", what, s)
	}
	return v, nil
}

func auditConsistencyCmd() *cobra.Command {
	var api, home string
	var asJSON bool
	c := &cobra.Command{
		Use:   "consistency OLD_SIZE NEW_SIZE (--api HOST:PORT | --home DIR) [--json]",
		Short: "Fetch and verify the proof that the log at OLD_SIZE is a prefix of the log at NEW_SIZE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			oldSize, err := parseSize("OLD_SIZE", args[0])
			if err != nil {
				return err
			}
			newSize, err := parseSize("NEW_SIZE", args[1])
			if err != nil {
				return err
			}
			if oldSize > newSize {
				return usage("audit consistency: OLD_SIZE %d is above NEW_SIZE %d", oldSize, newSize)
			}
			cl, _, err := nodeClient("audit consistency", api, home)
			if err != nil {
				return err
			}
			p, err := cl.AuditConsistency(cmd.Context(), oldSize, newSize)
			if err != nil {
				return fmt.Errorf("audit consistency: %w", err)
			}
			if p.OldSize != oldSize || p.NewSize != newSize {
				return fmt.Errorf("audit consistency: asked for %d -> %d, the node answered %d -> %d", oldSize, newSize, p.OldSize, p.NewSize)
			}
			if err := tlog.VerifyConsistency(p.OldSize, p.NewSize, p.OldRoot, p.NewRoot, hashes(p.Proof)); err != nil {
				return fmt.Errorf("audit consistency: the node's proof does not verify: %w", err)
			}
			if asJSON {
				printJSON(cmd, struct {
					node.ConsistencyJSON
					Verified bool `json:"verified"`
				}{p, true})
				return nil
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "old  size %d root %x\nnew  size %d root %x\nproof %d hashes\n", p.OldSize, []byte(p.OldRoot), p.NewSize, []byte(p.NewRoot), len(p.Proof))
			for _, h := range p.Proof {
				fmt.Fprintf(out, "  %x\n", []byte(h))
			}
			fmt.Fprintln(out, "verified: the log of the new size extends the log of the old size (RFC 9162 consistency proof)")
			return nil
		},
	}
	nodeFlags(c, &api, &home, &asJSON)
	return c
}

func auditExportCmd() *cobra.Command {
	var api, home, out string
	c := &cobra.Command{
		Use:   "export (--api HOST:PORT | --home DIR) --out FILE",
		Short: "Write the whole log as JSON lines, ending with its signed checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usage("audit export: --out FILE is required")
			}
			cl, _, err := nodeClient("audit export", api, home)
			if err != nil {
				return err
			}
			// Write beside the target and rename, so FILE is never a
			// half-written export.
			f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
			if err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			defer os.Remove(f.Name())
			tail := &lastLine{}
			bw := bufio.NewWriter(f)
			err = cl.AuditExport(cmd.Context(), io.MultiWriter(bw, tail))
			if err == nil {
				err = bw.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			var tr node.ExportTrailer
			if err := json.Unmarshal(tail.last(), &tr); err != nil || tr.Checkpoint.Size == 0 {
				return fmt.Errorf("audit export: the node's export does not end with a checkpoint line (truncated?)")
			}
			if tail.lines != tr.Checkpoint.Size+1 {
				return fmt.Errorf("audit export: the node sent %d entries for a checkpoint of size %d", tail.lines-1, tr.Checkpoint.Size)
			}
			if err := os.Rename(f.Name(), out); err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %d entries of log %s, root %x, to %s (check it with: fednode audit verify %s)\n",
				tr.Checkpoint.Size, tr.Checkpoint.Origin, []byte(tr.Checkpoint.Root), out, out)
			return nil
		},
	}
	nodeFlags(c, &api, &home, nil)
	c.Flags().StringVar(&out, "out", "", "file to write the export to")
	return c
}

// lastLine counts the lines written through it and keeps the last one.
type lastLine struct {
	lines uint64
	cur   []byte // the line being written
	prev  []byte // the last complete line
}

func (l *lastLine) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			l.lines++
			l.prev, l.cur = l.cur, l.prev[:0]
			continue
		}
		if len(l.cur) < maxExportLine {
			l.cur = append(l.cur, b)
		}
	}
	return len(p), nil
}

func (l *lastLine) last() []byte {
	if len(l.cur) > 0 {
		return l.cur // an unterminated last line
	}
	return l.prev
}

// exportLine is one line of an export: an entry or, last, the checkpoint.
// Pointers tell a missing field from a zero one.
type exportLine struct {
	Index      *uint64              `json:"index"`
	ID         *authority.ID        `json:"id"`
	Kind       *string              `json:"kind"`
	Authority  *authority.ID        `json:"authority"`
	Seq        *uint64              `json:"seq"`
	LeafHash   node.HexBytes        `json:"leaf_hash"`
	Envelope   []byte               `json:"envelope"`
	Checkpoint *node.CheckpointJSON `json:"checkpoint"`
}

func (l *exportLine) isEntry() bool {
	return l.Index != nil || l.ID != nil || l.Kind != nil || l.Authority != nil || l.Seq != nil || l.LeafHash != nil || l.Envelope != nil
}

// exportFault is the first thing wrong with an export: which line, which
// entry (index and id, when known), and why.
type exportFault struct {
	Line  int    `json:"line"`
	Index *int64 `json:"index,omitempty"` // nil: the checkpoint or the file as a whole
	ID    string `json:"id,omitempty"`
	Err   error  `json:"-"`
}

func (f *exportFault) Error() string {
	var where string
	switch {
	case f.Index != nil && f.ID != "":
		where = fmt.Sprintf("entry %d (id %s, line %d)", *f.Index, f.ID, f.Line)
	case f.Index != nil:
		where = fmt.Sprintf("entry %d (line %d)", *f.Index, f.Line)
	case f.Line > 0:
		where = fmt.Sprintf("checkpoint (line %d)", f.Line)
	default:
		where = "export"
	}
	return where + ": " + f.Err.Error()
}

func (f *exportFault) Unwrap() error { return f.Err }

// signer is a checkpoint signer that verified, with its key.
type signer struct {
	Name string `json:"name"`
	Key  string `json:"key"` // hex of the Ed25519 public key
}

// exportReport is what verify found; the JSON of `audit verify --json`.
type exportReport struct {
	OK      bool         `json:"ok"`
	Entries uint64       `json:"entries"`
	Size    uint64       `json:"size"`
	Origin  string       `json:"origin,omitempty"`
	Root    string       `json:"root,omitempty"`
	Signers []signer     `json:"signers,omitempty"`
	Error   string       `json:"error,omitempty"`
	Bad     *exportFault `json:"bad,omitempty"`
}

// verifyExport checks an export from r, offline. trust, if not empty, is
// the only set of keys the checkpoint may be signed with; else every
// current root key of every authority in the export is a known signer. It
// returns at the first fault.
func verifyExport(r io.Reader, trust []tlog.Witness) (exportReport, error) {
	var rep exportReport
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxExportLine)
	g := authority.NewGraph()
	app, err := tlog.NewAppender(0, nil)
	if err != nil {
		return rep, err
	}
	var first authority.ID
	var trailer *node.CheckpointJSON
	trailerLine := 0
	line := 0
	next := uint64(0)
	bad := func(id string, format string, args ...any) error {
		i := int64(next)
		return &exportFault{Line: line, Index: &i, ID: id, Err: fmt.Errorf(format, args...)}
	}
	for sc.Scan() {
		line++
		if trailer != nil {
			return rep, &exportFault{Line: line, Err: fmt.Errorf("a line follows the checkpoint line (%d): the checkpoint must be last", trailerLine)}
		}
		var l exportLine
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return rep, bad("", "not an export line: %v", err)
		}
		if dec.More() {
			return rep, bad("", "more than one JSON value on the line")
		}
		if l.Checkpoint != nil {
			if l.isEntry() {
				return rep, &exportFault{Line: line, Err: errors.New("the checkpoint line has entry fields too")}
			}
			trailer, trailerLine = l.Checkpoint, line
			continue
		}
		id := ""
		if l.ID != nil {
			id = l.ID.String()
		}
		if l.Index == nil || l.ID == nil || l.Kind == nil || l.Authority == nil || l.Seq == nil || l.LeafHash == nil || l.Envelope == nil {
			return rep, bad(id, "an entry needs index, id, kind, authority, seq, leaf_hash and envelope")
		}
		if *l.Index != next {
			return rep, bad(id, "the line says index %d: entries are missing, repeated or out of order", *l.Index)
		}
		sd, err := authority.Parse(l.Envelope)
		if err != nil {
			return rep, bad(id, "the envelope does not parse: %v", err)
		}
		if sd.ID != *l.ID {
			return rep, bad(id, "the envelope's ID is %s, not the line's", sd.ID)
		}
		if leaf := tlog.LeafHash(l.Envelope); !bytes.Equal(leaf, l.LeafHash) {
			return rep, bad(id, "leaf_hash %x, but SHA-256(0x00 || envelope) is %x", []byte(l.LeafHash), leaf)
		}
		owner := sd.Decl.Authority
		if sd.Decl.Kind == authority.KindGenesis {
			owner = sd.ID
		}
		if *l.Kind != sd.Decl.Kind.String() || *l.Authority != owner || *l.Seq != sd.Decl.Seq {
			return rep, bad(id, "the line says %s of %s at seq %d, the envelope %v of %s at seq %d", *l.Kind, l.Authority.Short(), *l.Seq, sd.Decl.Kind, owner.Short(), sd.Decl.Seq)
		}
		if err := g.Apply(sd); err != nil {
			return rep, bad(id, "the graph refuses it after the entries before it: %v", err)
		}
		if err := app.Append(l.Envelope, nil); err != nil {
			return rep, bad(id, "%v", err)
		}
		if next == 0 {
			first = sd.ID
		}
		next++
		rep.Entries = next
	}
	if err := sc.Err(); err != nil {
		line++
		if errors.Is(err, bufio.ErrTooLong) {
			return rep, bad("", "line longer than %d bytes", maxExportLine)
		}
		return rep, &exportFault{Line: line, Err: fmt.Errorf("reading: %w", err)}
	}
	if trailer == nil {
		return rep, &exportFault{Err: fmt.Errorf("no checkpoint line after the %d entries: the export is truncated", next)}
	}
	line = trailerLine
	fault := func(format string, args ...any) error {
		return &exportFault{Line: trailerLine, Err: fmt.Errorf(format, args...)}
	}
	if next == 0 {
		return rep, fault("the export has no entries")
	}
	if trailer.Size != next {
		return rep, fault("size %d, but the export has %d entries", trailer.Size, next)
	}
	root, err := app.Root()
	if err != nil {
		return rep, fault("%v", err)
	}
	if !bytes.Equal(trailer.Root, root) {
		return rep, fault("root %x, but the entries give root %x", []byte(trailer.Root), root)
	}
	if want := tlog.Origin(hex.EncodeToString(first[:8])); trailer.Origin != want {
		return rep, fault("origin %q, but this log (founded by %s) is %q", trailer.Origin, first.Short(), want)
	}
	known := trust
	if len(known) == 0 {
		// Every authority's CURRENT root keys, as the replayed chain leaves
		// them: a key a rotation retired signs no checkpoint.
		for _, a := range g.Authorities() {
			for _, k := range a.RootKeys {
				known = append(known, tlog.Witness{Name: a.Name, Key: k})
			}
		}
	}
	c, signers, err := openNote(trailer.Note, known)
	if err != nil {
		return rep, fault("the signed note: %v", err)
	}
	if err := sameCheckpoint(c, *trailer); err != nil {
		return rep, fault("%v", err)
	}
	rep.Signers = signers
	rep.OK, rep.Size, rep.Origin, rep.Root = true, trailer.Size, trailer.Origin, hex.EncodeToString(root)
	return rep, nil
}

// openNote opens a checkpoint note against each known signer on its own,
// rather than all at once, so that one authority cannot make every export
// unverifiable by declaring a genesis whose name and 4-byte note key ID
// collide with another's (tlog.OpenCheckpoint refuses such a key set). A
// signature that fails under a known key refuses the note unless another
// known key of the same name and key ID verified it; a note with no verified
// signature is refused.
func openNote(noteText string, known []tlog.Witness) (tlog.Checkpoint, []signer, error) {
	type keyRef struct {
		name string
		hash uint32
	}
	var c tlog.Checkpoint
	var signers []signer
	verified := map[keyRef]bool{}
	var failed []keyRef
	var failedErr []error
	for _, w := range known {
		v, err := tlog.Verifier(w)
		if err != nil {
			continue // a key that cannot sign notes signed nothing
		}
		ref := keyRef{v.Name(), v.KeyHash()}
		got, _, err := tlog.OpenCheckpoint([]byte(noteText), []tlog.Witness{w})
		switch {
		case err == nil:
			c, verified[ref] = got, true
			s := signer{Name: w.Name, Key: hex.EncodeToString(w.Key.Key)}
			if !slices.Contains(signers, s) {
				signers = append(signers, s)
			}
		case errors.Is(err, tlog.ErrBadSignature):
			failed, failedErr = append(failed, ref), append(failedErr, err)
		case errors.Is(err, tlog.ErrUnverified):
		default:
			return tlog.Checkpoint{}, nil, err
		}
	}
	for i, ref := range failed {
		if !verified[ref] {
			return tlog.Checkpoint{}, nil, failedErr[i]
		}
	}
	if len(signers) == 0 {
		return tlog.Checkpoint{}, nil, fmt.Errorf("no signature by any of the %d known keys", len(known))
	}
	return c, signers, nil
}

// parseTrust reads --trust NAME=PUBKEY (an Ed25519 public key in hex or
// standard base64).
func parseTrust(specs []string) ([]tlog.Witness, error) {
	var out []tlog.Witness
	for _, s := range specs {
		name, key, ok := strings.Cut(s, "=")
		if !ok || name == "" || key == "" {
			return nil, usage("audit verify: --trust %q: want NAME=PUBKEY", s)
		}
		b, err := hex.DecodeString(key)
		if err != nil {
			b, err = base64.StdEncoding.DecodeString(key)
		}
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, usage("audit verify: --trust %s: PUBKEY must be a %d-byte Ed25519 public key in hex or base64", name, ed25519.PublicKeySize)
		}
		out = append(out, tlog.Witness{Name: name, Key: authority.PublicKey{Alg: authority.AlgEd25519, Key: b}})
	}
	return out, nil
}

func auditVerifyCmd() *cobra.Command {
	var trust []string
	var fromExport, asJSON bool
	c := &cobra.Command{
		Use:   "verify FILE [--trust NAME=PUBKEY ... | --checkpoint-signer-from-export] [--json]",
		Short: "Check an export offline: every entry, the chain of declarations, the root and the signed checkpoint; exit 0 good, 1 bad, 2 usage",
		Long: "verify needs no node. It checks that every line parses, indexes run 0..n-1, each envelope parses and matches its id and leaf hash, " +
			"the declarations applied in order to a fresh graph are all accepted (chains link, signatures hold), the root recomputed from the leaves " +
			"equals the checkpoint's, and the checkpoint note is signed by a known key: by default (--checkpoint-signer-from-export) the root keys " +
			"of the geneses in the export itself; with --trust only the keys given.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(trust) > 0 && fromExport {
				return usage("audit verify: pass --trust or --checkpoint-signer-from-export, not both")
			}
			known, err := parseTrust(trust)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return usage("audit verify: %v", err)
			}
			defer f.Close()
			rep, err := verifyExport(f, known)
			if err != nil {
				rep.OK, rep.Error = false, err.Error()
				var fault *exportFault
				if errors.As(err, &fault) {
					rep.Bad = fault
				}
				if asJSON {
					printJSON(cmd, rep)
				}
				return &exitError{code: 1, err: fmt.Errorf("audit verify: %s: %w", args[0], err)}
			}
			if asJSON {
				printJSON(cmd, rep)
				return nil
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "export verified: %d entries, every declaration accepted in order\n", rep.Entries)
			fmt.Fprintf(out, "log     %s\nsize    %d\nroot    %s\n", rep.Origin, rep.Size, rep.Root)
			for _, s := range rep.Signers {
				fmt.Fprintf(out, "signed  by %s (key %s)\n", s.Name, s.Key)
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&trust, "trust", nil, "accept a checkpoint signed by this key only: NAME=PUBKEY (Ed25519, hex or base64; repeatable)")
	c.Flags().BoolVar(&fromExport, "checkpoint-signer-from-export", false, "accept a checkpoint signed by any current root key of an authority in the export (the default without --trust)")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object (also on failure)")
	return c
}
