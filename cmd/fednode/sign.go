package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// maxSubmitFile bounds the file submit reads: no envelope is larger.
const maxSubmitFile = authority.MaxDeclarationSize

// refusals names the statuses with which a node refuses a declaration
// itself (rather than failing to take it): submit exits 2 on them.
var refusals = map[int]string{
	http.StatusBadRequest:          "invalid",
	http.StatusConflict:            "a conflict",
	http.StatusUnprocessableEntity: "of an unknown issuer",
}

// signCmd signs a root declaration with no node at hand: the root keys may
// live on an air-gapped machine, told the chain head by the operator.
func signCmd() *cobra.Command {
	var home, headID, kind, source, subjects, resources, actions, until, from, id, reason, out string
	var headSeq uint64
	var offline bool
	c := &cobra.Command{
		Use:   "sign --offline --home DIR --head-seq N --head-id ID (--kind rule --accept SOURCE_ID --subjects G --resources G --actions A,B [--until T] | --kind revocation --id ID) --out FILE",
		Short: "Sign a rule or revocation at chain position N+1 without a node (an air-gapped root); submit it later with fednode submit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !offline {
				return usage("sign: only --offline signing is supported here (online, federate and revoke find the chain head themselves)")
			}
			if home == "" || out == "" || !cmd.Flags().Changed("head-seq") || headID == "" {
				return usage("sign: --home, --head-seq, --head-id and --out are required (the head is what `fednode status` or GET /v1/authorities/NAME shows)")
			}
			prev, err := authority.ParseID(headID)
			if err != nil {
				return usage("sign: --head-id: %v", err)
			}
			now := time.Now()
			d := authority.Declaration{Seq: headSeq + 1, Prev: prev, IssuedAt: now.Unix()}
			switch kind {
			case "rule":
				if source == "" || subjects == "" || resources == "" || actions == "" || id != "" {
					return usage("sign: --kind rule needs --accept, --subjects, --resources and --actions (and no --id)")
				}
				// No node to resolve a name: the source must be an ID.
				src, err := authority.ParseID(source)
				if err != nil {
					return usage("sign: --accept: offline, the source must be an authority id, not a name: %v", err)
				}
				r, err := ruleFromFlags("sign", subjects, resources, actions, until, from, now)
				if err != nil {
					return err
				}
				r.Source = src
				d.Kind, d.Rule = authority.KindRule, &r
			case "revocation":
				if id == "" || source != "" {
					return usage("sign: --kind revocation needs --id (and no --accept)")
				}
				target, err := authority.ParseID(id)
				if err != nil {
					return usage("sign: --id: %v", err)
				}
				d.Kind, d.Revocation = authority.KindRevocation, &authority.Revocation{Target: target, Reason: reason}
			default:
				return usage("sign: --kind %q: want rule or revocation", kind)
			}
			h, err := node.LoadHome(home)
			if err != nil {
				return usage("%v", err)
			}
			d.Authority = h.Authority
			// The lock keeps two signers on this machine from racing; it
			// cannot know the chain: the operator vouches for the head.
			unlock, err := h.LockSigning()
			if err != nil {
				return err
			}
			defer unlock()
			sd, err := h.Sign(d)
			if err != nil {
				return usage("sign: %v", err)
			}
			if err := node.WriteFileAtomic(out, sd.Raw, 0o644); err != nil {
				return fmt.Errorf("sign: write %s: %w", out, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s of %s at seq %d (prev %s), %d signatures, written to %s\n", d.Kind, sd.ID, h.Config.Name, d.Seq, prev.Short(), len(sd.Signatures), out)
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&offline, "offline", false, "sign without a node (required)")
	f.StringVar(&home, "home", "", "home directory holding the authority's root keys")
	f.Uint64Var(&headSeq, "head-seq", 0, "the authority's current chain head position (0: only the genesis)")
	f.StringVar(&headID, "head-id", "", "the id of the declaration at the head (the authority id when --head-seq is 0)")
	f.StringVar(&kind, "kind", "", "what to sign: rule or revocation")
	f.StringVar(&source, "accept", "", "rule: the source authority's id whose principals are accepted")
	f.StringVar(&subjects, "subjects", "", "rule: glob of accepted subjects")
	f.StringVar(&resources, "resources", "", "rule: glob of resources the rule covers")
	f.StringVar(&actions, "actions", "", "rule: comma-separated actions")
	f.StringVar(&until, "until", "", "rule: end of validity: RFC3339 or a duration from now (e.g. 720h, 30d)")
	f.StringVar(&from, "from", "", "rule: start of validity: RFC3339 or a duration from now")
	f.StringVar(&id, "id", "", "revocation: id of the declaration to revoke")
	f.StringVar(&reason, "reason", "", "revocation: why")
	f.StringVar(&out, "out", "", "file to write the signed envelope to")
	return c
}

// submitCmd posts a signed envelope (from sign --offline, or anyone) to a node.
func submitCmd() *cobra.Command {
	var api, tokenFile, home string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "submit FILE (--api HOST:PORT --token-file F | --home DIR)",
		Short: "Submit a signed declaration to a node; exit 2 if the node refuses it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (api == "") == (home == "") || (home != "" && tokenFile != "") {
				return usage("submit: pass --api HOST:PORT (with --token-file) or --home DIR")
			}
			env, err := readBounded(args[0], maxSubmitFile)
			if err != nil {
				return usage("submit: %v", err)
			}
			var cl *node.Client
			if home != "" {
				if _, cl, err = homeClient(home); err != nil {
					return err
				}
			} else {
				if tokenFile == "" {
					return usage("submit: --api needs --token-file (the node's API token)")
				}
				tok, err := os.ReadFile(tokenFile)
				if err != nil {
					return usage("submit: --token-file: %v", err)
				}
				cl = node.NewClient(api, strings.TrimSpace(string(tok)))
			}
			r, err := cl.Submit(cmd.Context(), env)
			if err != nil {
				var ae *node.APIError
				if errors.As(err, &ae) {
					if why, ok := refusals[ae.Status]; ok {
						return &exitError{code: 2, err: fmt.Errorf("submit: %s refused %s as %s: %s (HTTP %d)", cl.Addr, args[0], why, ae.Message, ae.Status)}
					}
				}
				return fmt.Errorf("submit: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s\n", r.Kind, r.ID, r.Status)
			return waitAgreed(cmd, cl, r.ID, wait)
		},
	}
	c.Flags().StringVar(&api, "api", "", "a running node's API address")
	c.Flags().StringVar(&tokenFile, "token-file", "", "with --api: file holding the node's API token")
	c.Flags().StringVar(&home, "home", "", "a home whose running node to submit to, with its token")
	c.Flags().DurationVar(&wait, "wait", 20*time.Second, "wait this long for the declaration to be agreed (0: return once submitted)")
	return c
}

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("%s is over the %d-byte limit of a declaration", path, max)
	}
	return b, nil
}
