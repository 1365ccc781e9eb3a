package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/bundle"
	"github.com/fednode/fednode/node"
)

func initCmd() *cobra.Command {
	var home, name, kind, api, alg string
	var listen []string
	var keys, threshold int
	c := &cobra.Command{
		Use:   "init --home DIR --name NAME [--kind KIND] [--alg ed25519|mldsa65|hybrid] [--keys N] [--threshold K]",
		Short: "Create a home: the authority's root key and genesis, the node identity, the API token and config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" || name == "" {
				return usage("init: --home and --name are required")
			}
			a, err := authority.ParseAlg(alg)
			if err != nil {
				return usage("init: --alg: %v", err)
			}
			if keys < 1 || keys > authority.MaxRootKeys {
				return usage("init: --keys %d: want 1 to %d root keys", keys, authority.MaxRootKeys)
			}
			if threshold < 1 || threshold > keys {
				return usage("init: --threshold %d: want 1 to %d (the number of root keys)", threshold, keys)
			}
			if len(listen) == 0 || api == "" {
				tcp, udp, err := freePorts(2)
				if err != nil {
					return err
				}
				if len(listen) == 0 {
					listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", tcp[0]), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", udp)}
				}
				if api == "" {
					api = fmt.Sprintf("127.0.0.1:%d", tcp[1])
				}
			}
			h, err := node.Init(home, node.InitOptions{Name: name, Kind: kind, Listen: listen, API: api, Alg: a, Keys: keys, Threshold: threshold})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "authority %s (%s)\n", h.Authority, h.Config.Name)
			if keys > 1 {
				fmt.Fprintf(cmd.OutOrStdout(), "root keys %d %s keys, %d must sign (root.key, root-2.key, ...)\n", keys, a, threshold)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "peer      %s\n", h.Config.PeerID)
			for _, l := range h.Config.Listen {
				fmt.Fprintf(cmd.OutOrStdout(), "address   %s/p2p/%s\n", l, h.Config.PeerID)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "api       %s\n", h.Config.API)
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory to create")
	c.Flags().StringVar(&name, "name", "", "the authority's name (e.g. aws-prod)")
	c.Flags().StringVar(&kind, "kind", "", "the kind of authority (aws, azure, gcp, ad, pki, oidc, sovereign, ...)")
	c.Flags().StringSliceVar(&listen, "listen", nil, "libp2p listen multiaddrs (default: TCP and QUIC on 127.0.0.1, ports chosen now)")
	c.Flags().StringVar(&api, "api", "", "HTTP API address, loopback only (default: 127.0.0.1 and a port chosen now)")
	c.Flags().StringVar(&alg, "alg", "ed25519", "root key algorithm: ed25519, mldsa65 (post-quantum) or hybrid (both)")
	c.Flags().IntVar(&keys, "keys", 1, "how many root keys to generate (root.key, root-2.key, ...)")
	c.Flags().IntVar(&threshold, "threshold", 1, "how many distinct root keys must sign each root declaration")
	return c
}

// freePorts finds n distinct free TCP ports and a free UDP port on
// loopback, so that a home keeps stable addresses across restarts. All the
// sockets are held open until every port is chosen, so no two coincide.
func freePorts(n int) ([]int, int, error) {
	var tcp []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, 0, fmt.Errorf("init: find a free TCP port: %w", err)
		}
		defer l.Close()
		tcp = append(tcp, l.Addr().(*net.TCPAddr).Port)
	}
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, fmt.Errorf("init: find a free UDP port: %w", err)
	}
	defer u.Close()
	return tcp, u.LocalAddr().(*net.UDPAddr).Port, nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usage("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, usage("--log-format %q: want text or json", format)
}

// runNode runs a node of cfg until SIGINT or SIGTERM: it declares the
// node's addresses when they changed, prints the first of banner's lines
// (naming what runs), the authority, addresses and API, then the rest of
// banner's lines, and waits.
func runNode(cmd *cobra.Command, cfg node.Config, banner func(*node.Node) []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.New(ctx, cfg)
	if err != nil {
		return err
	}
	declareNodes(ctx, n, cfg.Logger) // join.go
	out := cmd.OutOrStdout()
	lines := banner(n)
	fmt.Fprintln(out, lines[0])
	fmt.Fprintf(out, "authority %s\n", n.Authority())
	for _, a := range n.Addrs() {
		fmt.Fprintf(out, "address   %s\n", a)
	}
	fmt.Fprintf(out, "api       %s\n", n.APIAddr())
	for _, l := range lines[1:] {
		fmt.Fprintln(out, l)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return n.Close()
}

func runCmd() *cobra.Command {
	var home, api, logLevel, logFormat string
	var listen, join, peers []string
	var bootstrap, mdns bool
	c := &cobra.Command{
		Use:   "run --home DIR [--listen MULTIADDR] [--api HOST:PORT] [--bootstrap | --join MULTIADDR] [--mdns]",
		Short: "Run the node until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" {
				return usage("run: --home is required")
			}
			if bootstrap && len(join) > 0 {
				return usage("run: --bootstrap founds a consortium and --join joins one: pass one of them")
			}
			logger, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			return runNode(cmd, node.Config{Home: home, Listen: listen, API: api, Bootstrap: bootstrap, Join: join, Peers: peers, Logger: logger, MDNS: mdns},
				func(n *node.Node) []string { return []string{fmt.Sprintf("fednode %s running", n.Home().Config.Name)} })
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory (from fednode init)")
	c.Flags().StringSliceVar(&listen, "listen", nil, "libp2p listen multiaddrs (default: the home's config)")
	c.Flags().StringVar(&api, "api", "", "HTTP API address, loopback only (default: the home's config)")
	c.Flags().BoolVar(&bootstrap, "bootstrap", false, "found a new consortium with this node as its first Raft voter")
	c.Flags().StringSliceVar(&join, "join", nil, "multiaddr of a running member to join through (repeatable)")
	c.Flags().StringSliceVar(&peers, "peer", nil, "multiaddr of a peer to connect to at start (repeatable)")
	c.Flags().BoolVar(&mdns, "mdns", false, "discover peers on the local network by mDNS (off by default)")
	c.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	c.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return c
}

// homeClient loads a home and a client for its running node.
func homeClient(home string) (*node.Home, *node.Client, error) {
	h, err := node.LoadHome(home)
	if err != nil {
		return nil, nil, usage("%v", err)
	}
	c, err := node.ClientForHome(h)
	if err != nil {
		return nil, nil, err
	}
	return h, c, nil
}

// parseUntil reads an RFC3339 time or a duration from now.
func parseUntil(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := parseDuration(s); err == nil {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC3339 time nor a duration (like 720h or 30d)", s)
}

// parseDuration is time.ParseDuration plus a "d" suffix for days.
func parseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		var days int
		if _, err := fmt.Sscanf(strings.TrimSuffix(s, "d"), "%d", &days); err == nil && days >= 0 && fmt.Sprint(days)+"d" == s {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	return time.ParseDuration(s)
}

func federateCmd() *cobra.Command {
	var home, source, subjects, resources, actions, until, from, opKey string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "federate --home DIR --accept SOURCE --subjects GLOB --resources GLOB --actions A,B [--until TIME]",
		Short: "Declare a federation rule: this authority accepts principals of SOURCE",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" || source == "" || subjects == "" || resources == "" || actions == "" {
				return usage("federate: --home, --accept, --subjects, --resources and --actions are required")
			}
			now := time.Now()
			rule, err := ruleFromFlags("federate", subjects, resources, actions, until, from, now)
			if err != nil {
				return err
			}
			h, cl, err := homeClient(home)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			src, err := cl.Head(ctx, source)
			if err != nil {
				return fmt.Errorf("federate: source %q: %w", source, err)
			}
			rule.Source = src.ID
			opts, err := opKeyOptions("federate", opKey)
			if err != nil {
				return err
			}
			sd, err := node.SignNextWith(ctx, h, cl, now, func(d *authority.Declaration) {
				d.Kind = authority.KindRule
				d.Rule = &rule
			}, opts)
			if err != nil {
				return fmt.Errorf("federate: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rule %s: %s accepts %s subjects=%q resources=%q actions=%s\n", sd.ID, h.Config.Name, src.Name, subjects, resources, actions)
			return waitAgreed(cmd, cl, sd.ID, wait)
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory of the running node that declares (the target authority)")
	c.Flags().StringVar(&source, "accept", "", "source authority (name or id) whose principals are accepted")
	c.Flags().StringVar(&subjects, "subjects", "", "glob of accepted subjects (* any run, ? one character)")
	c.Flags().StringVar(&resources, "resources", "", "glob of resources the rule covers")
	c.Flags().StringVar(&actions, "actions", "", "comma-separated actions")
	c.Flags().StringVar(&until, "until", "", "end of validity: RFC3339 or a duration from now (e.g. 720h, 30d)")
	c.Flags().StringVar(&from, "from", "", "start of validity: RFC3339 or a duration from now")
	c.Flags().DurationVar(&wait, "wait", 20*time.Second, "wait this long for the rule to be agreed (0: return once submitted)")
	c.Flags().StringVar(&opKey, "op-key", "", "sign with this operational key (delegated for rules: fednode delegate) instead of the root threshold")
	return c
}

// waitAgreed waits until the node that took a declaration holds it in its
// agreed graph, so that the command's effect is visible when it returns.
func waitAgreed(cmd *cobra.Command, cl *node.Client, id authority.ID, wait time.Duration) error {
	if wait <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), wait)
	defer cancel()
	if err := cl.WaitAgreed(ctx, id); err != nil {
		return fmt.Errorf("submitted, but %w (is the consortium's Raft cluster short of a quorum?)", err)
	}
	return nil
}

// ruleFromFlags builds a rule's scope and window from the flags federate
// and sign share (its source is set by the caller).
func ruleFromFlags(cmd, subjects, resources, actions, until, from string, now time.Time) (authority.Rule, error) {
	r := authority.Rule{Subjects: subjects, Resources: resources, Actions: splitList(actions)}
	if until != "" {
		t, err := parseUntil(until, now)
		if err != nil {
			return r, usage("%s: --until: %v", cmd, err)
		}
		r.NotAfter = t.Unix()
	}
	if from != "" {
		t, err := parseUntil(from, now)
		if err != nil {
			return r, usage("%s: --from: %v", cmd, err)
		}
		r.NotBefore = t.Unix()
	}
	return r, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func issueCmd() *cobra.Command {
	var home, subject, out, opKey string
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "issue --home DIR --subject S [--ttl DUR] --out FILE",
		Short: "Issue a credential for one of this authority's principals (offline: no node needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" || subject == "" || out == "" {
				return usage("issue: --home, --subject and --out are required")
			}
			if ttl <= 0 {
				return usage("issue: --ttl must be positive")
			}
			h, err := node.LoadHome(home)
			if err != nil {
				return usage("%v", err)
			}
			opts, err := opKeyOptions("issue", opKey)
			if err != nil {
				return err
			}
			now := time.Now().Truncate(time.Second)
			serial, err := authority.NewSerial(rand.Reader)
			if err != nil {
				return err
			}
			sd, err := signWith(h, opts, authority.Declaration{
				Kind:       authority.KindCredential,
				Authority:  h.Authority,
				IssuedAt:   now.Unix(),
				Credential: &authority.Credential{Subject: subject, NotBefore: now.Unix(), NotAfter: now.Add(ttl).Unix(), Serial: serial},
			})
			if err != nil {
				return usage("issue: %v", err)
			}
			if err := os.WriteFile(out, sd.Raw, 0o600); err != nil {
				return fmt.Errorf("issue: write %s: %w", out, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "credential %s for %q of %s, valid until %s, written to %s\n", sd.ID, subject, h.Config.Name, now.Add(ttl).UTC().Format(time.RFC3339), out)
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory of the issuing authority")
	c.Flags().StringVar(&subject, "subject", "", "the principal's subject (e.g. arn:aws:iam::111122223333:role/etl-nightly)")
	c.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "validity from now")
	c.Flags().StringVar(&out, "out", "", "file to write the credential to")
	c.Flags().StringVar(&opKey, "op-key", "", "sign with this operational key (delegated for credentials: fednode delegate) instead of the root threshold")
	return c
}

func revokeCmd() *cobra.Command {
	var home, id, reason, opKey string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "revoke --home DIR --id DECLARATION_ID",
		Short: "Revoke one of this authority's declarations (a credential or a rule)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" || id == "" {
				return usage("revoke: --home and --id are required")
			}
			target, err := authority.ParseID(id)
			if err != nil {
				return usage("revoke: --id: %v", err)
			}
			h, cl, err := homeClient(home)
			if err != nil {
				return err
			}
			opts, err := opKeyOptions("revoke", opKey)
			if err != nil {
				return err
			}
			sd, err := node.SignNextWith(cmd.Context(), h, cl, time.Now(), func(d *authority.Declaration) {
				d.Kind = authority.KindRevocation
				d.Revocation = &authority.Revocation{Target: target, Reason: reason}
			}, opts)
			if err != nil {
				return fmt.Errorf("revoke: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revocation %s of %s by %s\n", sd.ID, target, h.Config.Name)
			return waitAgreed(cmd, cl, sd.ID, wait)
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory of the running node of the revoking authority")
	c.Flags().StringVar(&id, "id", "", "id of the declaration to revoke")
	c.Flags().StringVar(&reason, "reason", "", "why (recorded in the revocation)")
	c.Flags().DurationVar(&wait, "wait", 20*time.Second, "wait this long for the revocation to be agreed (0: return once submitted; it denies at once anyway)")
	c.Flags().StringVar(&opKey, "op-key", "", "sign with this operational key (delegated for revocations: fednode delegate) instead of the root threshold")
	return c
}

func verifyCmd() *cobra.Command {
	var api, home, bundleFile, credFile, jwtFile, x509File, target, resource, action, at, receiptFile string
	var edge edgeOptions
	var asJSON bool
	c := &cobra.Command{
		Use:   "verify (--api HOST:PORT | --home DIR | --bundle FILE) (--credential FILE | --jwt FILE | --x509 FILE) --at TARGET --resource R --action A [--receipt FILE] [--json]",
		Short: "Decide whether a credential may act on a resource; exit 0 allow, 1 deny, 2 bad input",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sources := 0
			for _, s := range []string{api, home, bundleFile} {
				if s != "" {
					sources++
				}
			}
			if sources != 1 {
				return usage("verify: pass exactly one of --api, --home or --bundle")
			}
			presented := 0
			for _, f := range []string{credFile, jwtFile, x509File} {
				if f != "" {
					presented++
				}
			}
			if presented != 1 || target == "" || resource == "" || action == "" {
				return usage("verify: one of --credential, --jwt or --x509, and --at, --resource and --action are required")
			}
			if jwtFile != "" || x509File != "" {
				if receiptFile != "" {
					return usage("verify: --receipt: receipts are for fednode credentials; an external credential has none yet")
				}
				return verifyExternal(cmd, api, home, bundleFile, edge, jwtFile, x509File, target, resource, action, at, asJSON)
			}
			if receiptFile != "" && bundleFile != "" {
				return usage("verify: --receipt: a receipt is signed by the node that decided, with its authority's key; --bundle decides here, with no node to sign it: use --api or --home")
			}
			cred, err := os.ReadFile(credFile)
			if err != nil {
				return usage("verify: --credential: %v", err)
			}
			when := time.Now()
			if at != "" {
				if when, err = time.Parse(time.RFC3339, at); err != nil {
					return usage("verify: --time: want RFC3339: %v", err)
				}
			}
			var d authority.Decision
			if bundleFile != "" {
				d, err = verifyOffline(bundleFile, edge, cred, target, resource, action, when)
				if err != nil {
					return err
				}
			} else {
				cl := node.NewClient(api, "")
				if home != "" {
					if _, cl, err = homeClient(home); err != nil {
						return err
					}
				}
				if receiptFile != "" {
					var raw []byte
					if d, raw, err = cl.VerifyWithReceipt(cmd.Context(), cred, target, resource, action, when); err != nil {
						return &exitError{code: 2, err: err}
					}
					if err := writeReceipt(receiptFile, raw, d); err != nil {
						return err
					}
				} else if d, err = cl.Verify(cmd.Context(), cred, target, resource, action, when); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			printDecision(cmd, d, asJSON)
			if receiptFile != "" && !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "  receipt written to %s (check it with: fednode audit check-receipt %s --api HOST:PORT)\n", receiptFile, receiptFile)
			}
			if !d.Allow {
				return &exitError{code: 1, err: fmt.Errorf("deny: %s", d.Reason)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&api, "api", "", "a running node's API address")
	c.Flags().StringVar(&home, "home", "", "a home whose running node to ask")
	c.Flags().StringVar(&bundleFile, "bundle", "", "decide offline from this bundle file")
	c.Flags().StringSliceVar(&edge.trust, "trust", nil, "with --bundle: the authority ids whose bundle signatures count (default: any authority in the bundle's own graph, which anyone can make)")
	c.Flags().IntVar(&edge.minSignatures, "min-signatures", 1, "with --bundle: how many distinct trusted authorities must have signed it")
	c.Flags().StringVar(&edge.origin, "origin", "", "with --bundle: the log origin this site follows; the bundle's must match")
	c.Flags().StringSliceVar(&edge.deltas, "delta", nil, "with --bundle: delta bundles (from bundle update) to apply on top, in order")
	c.Flags().StringVar(&edge.site, "site", "", "with --bundle: a directory that remembers the newest graph version seen here, to refuse rollbacks")
	c.Flags().DurationVar(&edge.allowStale, "allow-stale", 0, "with --bundle: decide from a bundle up to this long past its deadline (default: fail closed, stale-bundle)")
	c.Flags().StringVar(&credFile, "credential", "", "the credential file")
	c.Flags().StringVar(&jwtFile, "jwt", "", "an external credential: a file holding a JWT from an OIDC issuer an authority declared")
	c.Flags().StringVar(&x509File, "x509", "", "an external credential: a PEM file with a certificate chain, leaf first, under roots an authority declared")
	c.Flags().StringVar(&target, "at", "", "the target authority (name or id) that governs the resource")
	c.Flags().StringVar(&resource, "resource", "", "the resource")
	c.Flags().StringVar(&action, "action", "", "the action")
	c.Flags().StringVar(&at, "time", "", "judge at this RFC3339 time instead of now")
	c.Flags().BoolVar(&asJSON, "json", false, "print the decision as one JSON object")
	c.Flags().StringVar(&receiptFile, "receipt", "", "with --api or --home: write the node's signed receipt of the decision to this file (check it with audit check-receipt)")
	return c
}

// verifyExternal decides a JWT or an X.509 chain, online or offline.
func verifyExternal(cmd *cobra.Command, api, home, bundleFile string, edge edgeOptions, jwtFile, x509File, target, resource, action, at string, asJSON bool) error {
	var req authority.Request
	if jwtFile != "" {
		b, err := os.ReadFile(jwtFile)
		if err != nil {
			return usage("verify: --jwt: %v", err)
		}
		req.JWT = strings.TrimSpace(string(b))
	} else {
		b, err := os.ReadFile(x509File)
		if err != nil {
			return usage("verify: --x509: %v", err)
		}
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type == "CERTIFICATE" {
				req.X509 = append(req.X509, blk.Bytes)
			}
		}
		if len(req.X509) == 0 {
			return usage("verify: --x509 %s: no PEM CERTIFICATE block found", x509File)
		}
	}
	req.Resource, req.Action = resource, action
	when := time.Now()
	if at != "" {
		var err error
		if when, err = time.Parse(time.RFC3339, at); err != nil {
			return usage("verify: --time: want RFC3339: %v", err)
		}
	}
	var d authority.Decision
	if bundleFile != "" {
		b, err := openBundles(bundleFile, edge)
		if err != nil {
			return err
		}
		d = b.Decide(req, target, when, bundle.VerifyOptions{AllowStale: edge.allowStale})
	} else {
		cl := node.NewClient(api, "")
		if home != "" {
			var err error
			if _, cl, err = homeClient(home); err != nil {
				return err
			}
		}
		var err error
		if d, err = cl.VerifyExternal(cmd.Context(), req.JWT, req.X509, target, resource, action, when); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	printDecision(cmd, d, asJSON)
	if !d.Allow {
		return &exitError{code: 1, err: fmt.Errorf("deny: %s", d.Reason)}
	}
	return nil
}

// edgeOptions are verify --bundle's site policy.
type edgeOptions struct {
	trust         []string
	minSignatures int
	origin        string
	deltas        []string
	site          string
	allowStale    time.Duration
}

func (e edgeOptions) policy() (bundle.Policy, error) {
	p := bundle.Policy{MinSignatures: e.minSignatures, Origin: e.origin}
	for _, t := range e.trust {
		id, err := authority.ParseID(t)
		if err != nil {
			return p, usage("verify: --trust: %v", err)
		}
		p.Trust = append(p.Trust, id)
	}
	return p, nil
}

// openBundles opens a full bundle and its deltas under the site's policy.
func openBundles(file string, e edgeOptions) (*bundle.Bundle, error) {
	p, err := e.policy()
	if err != nil {
		return nil, err
	}
	b, err := bundle.Load(file, p)
	if err != nil {
		return nil, usage("verify: %s: %v", file, err)
	}
	for _, f := range e.deltas {
		raw, err := bundle.ReadFile(f)
		if err != nil {
			return nil, usage("verify: --delta: %v", err)
		}
		if b, err = bundle.OpenDelta(b, raw, p); err != nil {
			return nil, usage("verify: delta %s: %v", f, err)
		}
	}
	return b, nil
}

func verifyOffline(file string, e edgeOptions, cred []byte, target, resource, action string, at time.Time) (authority.Decision, error) {
	b, err := openBundles(file, e)
	if err != nil {
		return authority.Decision{}, err
	}
	opts := bundle.VerifyOptions{AllowStale: e.allowStale}
	if e.site != "" {
		site := bundle.Site{Dir: e.site}
		if opts.LastSeen, err = site.LastSeen(b.Origin); err != nil {
			return authority.Decision{}, fmt.Errorf("verify: --site: %w", err)
		}
		if err := site.Record(b.Origin, b.GraphVersion); err != nil {
			return authority.Decision{}, fmt.Errorf("verify: --site: %w", err)
		}
	}
	return b.Decide(authority.Request{Credential: cred, Resource: resource, Action: action}, target, at, opts), nil
}

func printDecision(cmd *cobra.Command, d authority.Decision, asJSON bool) {
	out := cmd.OutOrStdout()
	if asJSON {
		b, _ := json.Marshal(d)
		fmt.Fprintln(out, string(b))
		return
	}
	fmt.Fprintf(out, "%s (%s): %s\n", d.Outcome, d.Reason, d.Message)
	for i, id := range d.Chain {
		fmt.Fprintf(out, "  chain[%d] %s\n", i, id)
	}
	fmt.Fprintf(out, "  graph version %d, age %s\n", d.GraphVersion, time.Duration(d.GraphAgeMS)*time.Millisecond)
}

func bundleCmd() *cobra.Command {
	c := &cobra.Command{Use: "bundle", Short: "Offline bundles of the agreed graph"}
	var api, home, out string
	var maxAge time.Duration
	var cosign []string
	client := func() (*node.Client, error) {
		if out == "" || (api == "") == (home == "") {
			return nil, usage("bundle: --out and one of --api or --home are required")
		}
		if home != "" {
			_, cl, err := homeClient(home)
			return cl, err
		}
		return node.NewClient(api, ""), nil
	}
	write := func(cmd *cobra.Command, b []byte, what string) error {
		if err := writeFileAtomic(out, b); err != nil {
			return fmt.Errorf("bundle %s: %w", what, err)
		}
		return nil
	}
	export := &cobra.Command{
		Use:   "export (--api HOST:PORT | --home DIR) --out FILE [--max-age DUR] [--cosign A,B]",
		Short: "Write a signed bundle of the agreed graph for offline verification",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			b, err := cl.Bundle(cmd.Context(), node.ExportOptions{MaxAge: maxAge, Cosign: cosign})
			if err != nil {
				return fmt.Errorf("bundle export: %w", err)
			}
			bd, err := bundle.Open(b, bundle.Policy{MinSignatures: 1 + len(cosign)})
			if err != nil {
				return fmt.Errorf("bundle export: the node sent a bundle that does not verify: %w", err)
			}
			if err := write(cmd, b, "export"); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle of graph version %d (%d declarations, %d bytes) signed by %s, fresh until %s, written to %s\n",
				bd.GraphVersion, len(bd.Declarations), len(b), signerNames(bd), bd.Expires().UTC().Format(time.RFC3339), out)
			return nil
		},
	}
	update := &cobra.Command{
		Use:   "update OLD (--api HOST:PORT | --home DIR) --out FILE [--max-age DUR]",
		Short: "Write a delta bundle: only what changed since OLD's version, verifiable on its own and on top of OLD",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			old, err := bundle.Load(args[0], bundle.Policy{})
			if err != nil {
				return usage("bundle update: %s: %v", args[0], err)
			}
			b, err := cl.Bundle(cmd.Context(), node.ExportOptions{MaxAge: maxAge, BaseVersion: old.GraphVersion})
			if err != nil {
				return fmt.Errorf("bundle update: %w", err)
			}
			bd, err := bundle.OpenDelta(old, b, bundle.Policy{})
			if err != nil {
				return fmt.Errorf("bundle update: the node sent a delta that does not verify on top of %s: %w", args[0], err)
			}
			if err := write(cmd, b, "update"); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "delta bundle from graph version %d to %d (%d declarations, %d bytes), fresh until %s, written to %s\n",
				old.GraphVersion, bd.GraphVersion, bd.GraphVersion-old.GraphVersion, len(b), bd.Expires().UTC().Format(time.RFC3339), out)
			return nil
		},
	}
	for _, sub := range []*cobra.Command{export, update} {
		sub.Flags().StringVar(&api, "api", "", "a running node's API address")
		sub.Flags().StringVar(&home, "home", "", "a home whose running node to ask")
		sub.Flags().StringVar(&out, "out", "", "bundle file to write")
		sub.Flags().DurationVar(&maxAge, "max-age", 0, "how long the bundle stays fresh (default 24h); past it, verify fails closed with stale-bundle")
	}
	export.Flags().StringSliceVar(&cosign, "cosign", nil, "authorities (names or ids) whose nodes must cosign the bundle")
	c.AddCommand(export, update)
	return c
}

func signerNames(b *bundle.Bundle) string {
	names := make([]string, len(b.Signers))
	for i, s := range b.Signers {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

func statusCmd() *cobra.Command {
	var api, home string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status (--api HOST:PORT | --home DIR) [--json]",
		Short: "Show a node's peers, Raft role and graph version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, _, err := nodeClient("status", api, home)
			if err != nil {
				return err
			}
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.MarshalIndent(st, "", "  ")
				fmt.Fprintln(out, string(b))
				return nil
			}
			fmt.Fprintf(out, "authority %s (%s)\npeer      %s\n", st.Authority.Name, st.Authority.ID, st.PeerID)
			for _, a := range st.ListenAddrs {
				fmt.Fprintf(out, "address   %s\n", a)
			}
			fmt.Fprintf(out, "raft      %s, term %d, applied %d, leader %s, %d voters\n", st.Raft.State, st.Raft.Term, st.Raft.AppliedIndex, st.Raft.Leader, len(st.Raft.Voters))
			fmt.Fprintf(out, "graph     version %d, %d authorities, age %s, %d pending\n", st.Graph.Version, st.Graph.Authorities, time.Duration(st.Graph.AgeMS)*time.Millisecond, st.Pending)
			fmt.Fprintf(out, "peers     %d connected\ntopics    %s\n", len(st.Peers), strings.Join(st.Topics, ", "))
			if cs := st.Consortium; cs != nil {
				fmt.Fprintf(out, "consortium %d members, %d removed, %d pending admissions, charter %s (active %v)\n", len(cs.Members), len(cs.Removed), len(cs.Pending), cs.Charter.Short(), cs.Active)
			}
			return nil
		},
	}
	c.Flags().StringVar(&api, "api", "", "the node's API address")
	c.Flags().StringVar(&home, "home", "", "a home whose running node to ask")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// writeFileAtomic writes an output file (a bundle, a receipt) atomically.
func writeFileAtomic(path string, b []byte) error { return node.WriteFileAtomic(path, b, 0o644) }
