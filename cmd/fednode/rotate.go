package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

func init() { moreCommands = append(moreCommands, rotateCmd, delegateCmd, trustCmd) }

// offlineHead is where an offline signer puts its declaration: the position
// after the head the operator names (as sign --offline does).
type offlineHead struct {
	offline bool
	seq     uint64
	id      string
	out     string
}

func (o *offlineHead) flags(c *cobra.Command) {
	c.Flags().BoolVar(&o.offline, "offline", false, "sign without a node (an air-gapped root): write the signed declaration to --out for fednode submit")
	c.Flags().Uint64Var(&o.seq, "head-seq", 0, "with --offline: the authority's current chain head position (0: only the genesis)")
	c.Flags().StringVar(&o.id, "head-id", "", "with --offline: the id of the declaration at the head (the authority id when --head-seq is 0)")
	c.Flags().StringVar(&o.out, "out", "", "with --offline: file to write the signed declaration to")
}

// decl is the declaration skeleton at the position after the named head.
func (o *offlineHead) decl(cmd *cobra.Command, name string, h *node.Home, now time.Time) (authority.Declaration, error) {
	if o.out == "" || !cmd.Flags().Changed("head-seq") || o.id == "" {
		return authority.Declaration{}, usage("%s: --offline needs --head-seq, --head-id and --out (the head is what `fednode status` or GET /v1/authorities/NAME shows)", name)
	}
	prev, err := authority.ParseID(o.id)
	if err != nil {
		return authority.Declaration{}, usage("%s: --head-id: %v", name, err)
	}
	return authority.Declaration{Authority: h.Authority, Seq: o.seq + 1, Prev: prev, IssuedAt: now.Unix()}, nil
}

// check refuses offline-only flags without --offline.
func (o *offlineHead) check(cmd *cobra.Command, name string) error {
	if o.offline {
		return nil
	}
	for _, f := range []string{"head-seq", "head-id", "out"} {
		if cmd.Flags().Changed(f) {
			return usage("%s: --%s is for --offline signing", name, f)
		}
	}
	return nil
}

// write writes an offline-signed declaration for fednode submit.
func (o *offlineHead) write(cmd *cobra.Command, name string, sd *authority.Signed) error {
	if err := node.WriteFileAtomic(o.out, sd.Raw, 0o644); err != nil {
		return fmt.Errorf("%s: write %s: %w", name, o.out, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s at seq %d (prev %s), %d signatures, written to %s (publish it with: fednode submit %s --home DIR)\n",
		sd.Decl.Kind, sd.ID, sd.Decl.Seq, sd.Decl.Prev.Short(), len(sd.Signatures), o.out, o.out)
	return nil
}

// signingErr maps a signing error to an exit code: a declaration the
// authority package refuses, or a home below its threshold, is bad input.
func signingErr(name string, err error) error {
	if errors.Is(err, authority.ErrMalformed) || errors.Is(err, authority.ErrBadAnchor) || errors.Is(err, node.ErrBelowThreshold) {
		return usage("%s: %v", name, err)
	}
	var ae *node.APIError
	if errors.As(err, &ae) {
		if why, ok := refusals[ae.Status]; ok {
			return &exitError{code: 2, err: fmt.Errorf("%s: the node refused it as %s: %s (HTTP %d)", name, why, ae.Message, ae.Status)}
		}
	}
	return fmt.Errorf("%s: %w", name, err)
}

func rotateCmd() *cobra.Command {
	var home, alg string
	var keys, threshold int
	var commit, install, force bool
	var wait time.Duration
	var off offlineHead
	c := &cobra.Command{
		Use:   "rotate --home DIR [--keys N] [--threshold K] [--alg ed25519|mldsa65|hybrid] | --home DIR --offline --head-seq N --head-id ID --out FILE [--install] | --home DIR --commit",
		Short: "Replace the authority's root key set: new keys, declared by the current threshold, installed as root.key, root-2.key, ... once accepted (the old ones kept in retired/)",
		Long: "rotate generates a fresh root key set into DIR/rotate-pending, signs a Rotation with the home's CURRENT root threshold, " +
			"records it beside the new keys, submits it to the home's running node and, once it is agreed, installs the new keys as " +
			"root.key, root-2.key, ... (0600) and moves the old ones to DIR/retired (0700). A crash between steps leaves both key sets " +
			"on disk: finish with `fednode rotate --home DIR --commit`. With --offline the signed rotation is written to --out for " +
			"`fednode submit`; the keys are installed with --install, or later with --commit once the rotation is accepted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" {
				return usage("rotate: --home is required")
			}
			if err := off.check(cmd, "rotate"); err != nil {
				return err
			}
			if commit {
				for _, f := range []string{"keys", "threshold", "alg", "offline", "install"} {
					if cmd.Flags().Changed(f) {
						return usage("rotate: --commit installs the staged rotation's keys; --%s is for staging one", f)
					}
				}
				return commitRotation(cmd, home, force)
			}
			if install && !off.offline {
				return usage("rotate: --install is for --offline (online, rotate installs the keys once the node accepted the rotation)")
			}
			a, err := authority.ParseAlg(alg)
			if err != nil {
				return usage("rotate: --alg: %v", err)
			}
			if keys < 1 || keys > authority.MaxRootKeys {
				return usage("rotate: --keys %d: want 1 to %d root keys", keys, authority.MaxRootKeys)
			}
			if threshold < 1 || threshold > keys {
				return usage("rotate: --threshold %d: want 1 to %d (the number of new root keys)", threshold, keys)
			}
			h, err := node.LoadHome(home)
			if err != nil {
				return usage("%v", err)
			}
			if _, err := h.Signers(); err != nil {
				return usage("rotate: %v: the current threshold must sign the rotation", err)
			}
			if st, err := h.Staged(); err != nil {
				return fmt.Errorf("rotate: %w", err)
			} else if st != nil && st.Signed != nil {
				return rotateStageErr(fmt.Errorf("%w in %s: commit it first (fednode rotate --home %s --commit)", node.ErrRotationStaged, filepath.Join(home, "rotate-pending"), home))
			}
			s, err := node.NewRotation(a, keys, threshold)
			if err != nil {
				return usage("%v", err)
			}
			now := time.Now()
			if off.offline {
				d, err := off.decl(cmd, "rotate", h, now)
				if err != nil {
					return err
				}
				unlock, err := h.LockSigning()
				if err != nil {
					return err
				}
				defer unlock()
				d.Kind, d.Rotation = authority.KindRotation, s.Rotation()
				sd, err := h.Sign(d)
				if err != nil {
					return signingErr("rotate", err)
				}
				if err := h.StageSigned(s, sd); err != nil {
					return rotateStageErr(err)
				}
				if err := off.write(cmd, "rotate", sd); err != nil {
					return err
				}
				if !install {
					fmt.Fprintf(cmd.OutOrStdout(), "new keys staged in %s; once the rotation is accepted, install them with: fednode rotate --home %s --commit\n", filepath.Join(home, "rotate-pending"), home)
					return nil
				}
				if _, err := h.CommitRotation(); err != nil {
					return fmt.Errorf("rotate: %w (the keys stay staged: rerun with --commit)", err)
				}
				printInstalled(cmd, home, sd)
				return nil
			}
			cl, err := node.ClientForHome(h)
			if err != nil {
				return err
			}
			sd, err := node.SignNextWith(cmd.Context(), h, cl, now, func(d *authority.Declaration) {
				d.Kind, d.Rotation = authority.KindRotation, s.Rotation()
			}, node.SignOptions{Before: func(sd *authority.Signed) error { return h.StageSigned(s, sd) }})
			if err != nil {
				if errors.Is(err, node.ErrRotationStaged) {
					return rotateStageErr(err)
				}
				if s.Signed == nil {
					return signingErr("rotate", err)
				}
				return signingErr("rotate", fmt.Errorf("%w (the signed rotation and the new keys stay staged in %s: submit %s with fednode submit, then run fednode rotate --home %s --commit)",
					err, filepath.Join(home, "rotate-pending"), filepath.Join(home, "rotate-pending", "rotation.cose"), home))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rotation %s of %s: %d %s root keys, %d must sign\n", sd.ID, h.Config.Name, keys, a, threshold)
			if wait <= 0 {
				wait = 20 * time.Second
			}
			if err := waitAgreed(cmd, cl, sd.ID, wait); err != nil {
				return fmt.Errorf("rotate: %w; the new keys stay staged: run fednode rotate --home %s --commit once it is agreed", err, home)
			}
			unlock, err := h.LockSigning()
			if err != nil {
				return err
			}
			_, err = h.CommitRotation()
			unlock()
			if err != nil {
				return fmt.Errorf("rotate: %w (the keys stay staged: rerun with --commit)", err)
			}
			printInstalled(cmd, home, sd)
			reload(cmd, cl)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&home, "home", "", "home directory holding the authority's current root keys")
	f.StringVar(&alg, "alg", "ed25519", "new root key algorithm: ed25519, mldsa65 (post-quantum) or hybrid (both)")
	f.IntVar(&keys, "keys", 1, "how many new root keys to generate")
	f.IntVar(&threshold, "threshold", 1, "how many distinct new root keys must sign each root declaration")
	f.BoolVar(&commit, "commit", false, "install a staged, signed rotation's keys (after an interruption, or once an offline rotation was accepted)")
	f.BoolVar(&install, "install", false, "with --offline: install the new keys at once, before the rotation is accepted (the old keys stay in retired/)")
	f.BoolVar(&force, "force", false, "with --commit: install even though the home's running node does not hold the rotation")
	f.DurationVar(&wait, "wait", 20*time.Second, "wait this long for the rotation to be agreed before installing the keys")
	off.flags(c)
	return c
}

func rotateStageErr(err error) error {
	if errors.Is(err, node.ErrRotationStaged) {
		return &exitError{code: 1, err: fmt.Errorf("rotate: %w", err)}
	}
	return fmt.Errorf("rotate: %w", err)
}

// commitRotation installs the staged rotation, after checking with the
// home's node, if it runs, that the rotation is agreed.
func commitRotation(cmd *cobra.Command, home string, force bool) error {
	if !force {
		if h, err := node.LoadHome(home); err == nil {
			if s, err := h.Staged(); err == nil && s != nil && s.Signed != nil {
				if cl, err := node.ClientForHome(h); err == nil {
					ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
					_, err := cl.Declaration(ctx, s.Signed.ID)
					cancel()
					var ae *node.APIError
					if errors.As(err, &ae) {
						return &exitError{code: 1, err: fmt.Errorf("rotate: --commit: the node of %s does not hold the staged rotation %s (%s): submit it first (fednode submit %s --home %s), or pass --force",
							home, s.Signed.ID.Short(), ae.Message, filepath.Join(home, "rotate-pending", "rotation.cose"), home)}
					}
				}
			}
		}
	}
	sd, err := node.CommitRotationIn(home)
	if err != nil {
		if errors.Is(err, node.ErrNoRotationStaged) {
			return usage("rotate: --commit: %v", err)
		}
		return fmt.Errorf("rotate: %w", err)
	}
	printInstalled(cmd, home, sd)
	if h, err := node.LoadHome(home); err == nil {
		if cl, err := node.ClientForHome(h); err == nil {
			reload(cmd, cl)
		}
	}
	return nil
}

func printInstalled(cmd *cobra.Command, home string, sd *authority.Signed) {
	n := len(sd.Decl.Rotation.RootKeys)
	files := "root.key"
	if n > 1 {
		files = fmt.Sprintf("root.key ... root-%d.key", n)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "installed %d new root keys as %s in %s; the old ones are in %s\n", n, files, home, filepath.Join(home, "retired"))
}

// reload tells the running node to sign with the new keys now (it would
// also reload by itself on its next signature).
func reload(cmd *cobra.Command, cl *node.Client) {
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	if err := cl.ReloadKeys(ctx); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: the node did not reload its keys now (%v); it reloads them before it next signs\n", strings.TrimPrefix(err.Error(), "node: "))
		return
	}
	fmt.Fprintln(cmd.OutOrStdout(), "the node signs with the new keys")
}
