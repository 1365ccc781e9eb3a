package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// maxKeyFile bounds a key file read from a flag.
const maxKeyFile = 4 << 10

// delegableKinds are the names --kinds takes.
var delegableKinds = map[string]authority.Kind{
	"rule":       authority.KindRule,
	"credential": authority.KindCredential,
	"revocation": authority.KindRevocation,
	"anchors":    authority.KindAnchors,
}

// parseKinds reads --kinds: names of delegable kinds, in any order, each
// once; the scope is sorted as the wire format wants.
func parseKinds(s string) ([]authority.Kind, error) {
	var out []authority.Kind
	for _, n := range splitList(s) {
		k, ok := delegableKinds[n]
		if !ok {
			return nil, usage("delegate: --kinds: %q is not a kind an operational key may sign: want credential, rule, revocation or anchors", n)
		}
		if slices.Contains(out, k) {
			return nil, usage("delegate: --kinds: %s is listed twice", n)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, usage("delegate: --kinds is required: the kinds the key may sign (e.g. credential or credential,rule)")
	}
	slices.Sort(out)
	return out, nil
}

// loadOpKey reads an operational key file given by flag (--op-key).
func loadOpKey(cmd, flag, path string) (*authority.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, usage("%s: --%s: %v", cmd, flag, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, usage("%s: --%s %s has mode %v: a key file must be readable by its owner only (chmod 600 %s)", cmd, flag, path, fi.Mode().Perm(), path)
	}
	b, err := readBounded(path, maxKeyFile)
	if err != nil {
		return nil, usage("%s: --%s: %v", cmd, flag, err)
	}
	k, err := authority.ParsePrivateKey(b)
	if err != nil {
		return nil, usage("%s: --%s %s is not a key file: %v", cmd, flag, path, err)
	}
	return k, nil
}

func delegateCmd() *cobra.Command {
	var home, keyOut, opKey, kinds, notAfter, notBefore, alg string
	var wait time.Duration
	var off offlineHead
	c := &cobra.Command{
		Use:   "delegate --home DIR (--key-out FILE [--alg A] | --op-key FILE) --kinds credential[,rule,revocation,anchors] --not-after DUR|TIME [--not-before DUR|TIME]",
		Short: "Delegate day-to-day signing to an operational key: the root threshold lets it sign the given kinds within a window",
		Long: "delegate creates an operational key (--key-out, written 0600 before anything is submitted) or takes one (--op-key), " +
			"signs a KeyDelegation with the home's root threshold and submits it to the home's running node (or, with --offline, " +
			"writes it to --out for fednode submit). issue and federate then sign with --op-key FILE, so the root keys can stay offline. " +
			"A later delegation of the same key replaces the earlier one (to extend its window or change its kinds); revoke the " +
			"delegation's id to disable the key.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" {
				return usage("delegate: --home is required")
			}
			if err := off.check(cmd, "delegate"); err != nil {
				return err
			}
			if (keyOut == "") == (opKey == "") {
				return usage("delegate: pass --key-out FILE (a new key) or --op-key FILE (an existing one), not both")
			}
			if opKey != "" && cmd.Flags().Changed("alg") {
				return usage("delegate: --alg is for a new key (--key-out); --op-key's key has its own")
			}
			scope, err := parseKinds(kinds)
			if err != nil {
				return err
			}
			if notAfter == "" {
				return usage("delegate: --not-after is required: an operational key is online, so it expires (e.g. 720h, 30d or an RFC3339 time)")
			}
			now := time.Now()
			del := authority.KeyDelegation{Kinds: scope}
			naf, err := parseUntil(notAfter, now)
			if err != nil {
				return usage("delegate: --not-after: %v", err)
			}
			del.NotAfter = naf.Unix()
			if notBefore != "" {
				nbf, err := parseUntil(notBefore, now)
				if err != nil {
					return usage("delegate: --not-before: %v", err)
				}
				del.NotBefore = nbf.Unix()
			}
			if del.NotAfter <= now.Unix() || del.NotAfter <= del.NotBefore {
				return usage("delegate: --not-after %s is not after now and --not-before", naf.UTC().Format(time.RFC3339))
			}
			h, err := node.LoadHome(home)
			if err != nil {
				return usage("%v", err)
			}
			var k *authority.PrivateKey
			if opKey != "" {
				if k, err = loadOpKey("delegate", "op-key", opKey); err != nil {
					return err
				}
			} else {
				a, err := authority.ParseAlg(alg)
				if err != nil {
					return usage("delegate: --alg: %v", err)
				}
				if _, err := os.Stat(keyOut); err == nil {
					return usage("delegate: --key-out %s exists: refusing to overwrite a key (pass it as --op-key to delegate it again)", keyOut)
				} else if !errors.Is(err, os.ErrNotExist) {
					return usage("delegate: --key-out: %v", err)
				}
				if k, err = authority.GenerateKey(a, rand.Reader); err != nil {
					return err
				}
				b, err := authority.MarshalPrivateKey(k)
				if err != nil {
					return err
				}
				// Before anything is signed: a delegated key must never be lost.
				if err := node.WriteFileAtomic(keyOut, b, 0o600); err != nil {
					return usage("delegate: --key-out %s: %v", keyOut, err)
				}
			}
			del.Key = k.Public()
			var sd *authority.Signed
			if off.offline {
				d, err := off.decl(cmd, "delegate", h, now)
				if err != nil {
					return err
				}
				d.Kind, d.Delegation = authority.KindDelegation, &del
				unlock, err := h.LockSigning()
				if err != nil {
					return err
				}
				defer unlock()
				if sd, err = h.Sign(d); err != nil {
					return signingErr("delegate", err)
				}
				if err := off.write(cmd, "delegate", sd); err != nil {
					return err
				}
			} else {
				cl, err := node.ClientForHome(h)
				if err != nil {
					return err
				}
				sd, err = node.SignNext(cmd.Context(), h, cl, now, func(d *authority.Declaration) {
					d.Kind, d.Delegation = authority.KindDelegation, &del
				})
				if err != nil {
					return signingErr("delegate", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "delegation %s: %s key %x of %s may sign %v until %s\n", sd.ID, k.Alg(), del.Key.KeyID(), h.Config.Name, scope, naf.UTC().Format(time.RFC3339))
				if err := waitAgreed(cmd, cl, sd.ID, wait); err != nil {
					return err
				}
			}
			if keyOut != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "operational key written to %s (0600); sign with it: fednode issue|federate --op-key %s\n", keyOut, keyOut)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&home, "home", "", "home directory holding the authority's root keys")
	f.StringVar(&keyOut, "key-out", "", "create a new operational key and write it to this file (0600; must not exist)")
	f.StringVar(&opKey, "op-key", "", "delegate this existing operational key file instead")
	f.StringVar(&alg, "alg", "ed25519", "with --key-out: the new key's algorithm: ed25519, mldsa65 or hybrid")
	f.StringVar(&kinds, "kinds", "", "comma-separated kinds the key may sign: credential, rule, revocation, anchors")
	f.StringVar(&notAfter, "not-after", "", "end of the key's window: a duration from now (720h, 30d) or an RFC3339 time (required)")
	f.StringVar(&notBefore, "not-before", "", "start of the key's window: a duration from now or an RFC3339 time (default: open)")
	f.DurationVar(&wait, "wait", 20*time.Second, "wait this long for the delegation to be agreed (0: return once submitted)")
	off.flags(c)
	return c
}

// opKeyOptions are the signing options of --op-key on issue and federate:
// sign with that operational key alone, or (empty path) with the root.
func opKeyOptions(cmd, path string) (node.SignOptions, error) {
	if path == "" {
		return node.SignOptions{}, nil
	}
	k, err := loadOpKey(cmd, "op-key", path)
	if err != nil {
		return node.SignOptions{}, err
	}
	return node.SignOptions{Keys: []*authority.PrivateKey{k}}, nil
}

// signWith signs d with o's keys, else the home's root threshold.
func signWith(h *node.Home, o node.SignOptions, d authority.Declaration) (*authority.Signed, error) {
	if len(o.Keys) > 0 {
		return authority.SignMulti(d, o.Keys...)
	}
	return h.Sign(d)
}
