// Command fedverify is the small edge verifier: it decides one
// authorization request offline, from a signed bundle of the federation
// graph (plus any deltas), with no network, no node and no state but an
// optional site directory that remembers the newest graph version seen.
//
//	fedverify --bundle FILE [--delta FILE...] --credential FILE --at TARGET
//	          --resource R --action A [--time RFC3339] [--trust ID,...]
//	          [--min-signatures K] [--origin O] [--site DIR]
//	          [--allow-stale DUR] [--json]
//
// Exit status: 0 allow, 1 deny, 2 bad input or usage (including a bundle
// that does not open: the reason is printed).
//
// It links only authority, tlog and bundle of fednode, and the standard
// library's flag package (TestDependencies keeps it so): it is meant for
// ships, factories and forward bases, not for running a node.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/bundle"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes.
const (
	exitAllow = 0
	exitDeny  = 1
	exitUsage = 2
)

// files is a repeatable flag.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(s string) error { *f = append(*f, s); return nil }

// run is the whole command, with its arguments (without the program name)
// and outputs passed in; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fedverify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		bundleFile, credFile, target, resource, action string
		at, trust, origin, site                        string
		deltas                                         files
		minSigs                                        int
		allowStale                                     time.Duration
		asJSON                                         bool
	)
	fs.StringVar(&bundleFile, "bundle", "", "the full bundle `file`")
	fs.Var(&deltas, "delta", "a delta bundle `file` on top of the previous one (repeat, in order)")
	fs.StringVar(&credFile, "credential", "", "the credential `file`")
	fs.StringVar(&target, "at", "", "the target authority (name or id) that governs the resource")
	fs.StringVar(&resource, "resource", "", "the resource")
	fs.StringVar(&action, "action", "", "the action")
	fs.StringVar(&at, "time", "", "judge at this RFC3339 `time` instead of now")
	fs.StringVar(&trust, "trust", "", "comma-separated `ids` of the authorities whose bundle signatures count (default: any authority in the bundle's graph, which anyone can make)")
	fs.IntVar(&minSigs, "min-signatures", 1, "how many distinct trusted authorities must have signed the bundle")
	fs.StringVar(&origin, "origin", "", "the log `origin` this site follows (e.g. fednode/consortium); the bundle's must match")
	fs.StringVar(&site, "site", "", "a `directory` that remembers the newest graph version seen, to refuse rollbacks")
	fs.DurationVar(&allowStale, "allow-stale", 0, "use a bundle up to this `duration` past its deadline (default: refuse a stale bundle)")
	fs.BoolVar(&asJSON, "json", false, "print the decision as one JSON object")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fedverify --bundle FILE [--delta FILE...] --credential FILE --at TARGET --resource R --action A [flags]")
		fmt.Fprintln(stderr, "Decides one request offline from a signed bundle; exit 0 allow, 1 deny, 2 bad input.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitAllow
		}
		return exitUsage // flag has printed the error and the usage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "fedverify: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q", fs.Args())
	}
	if bundleFile == "" || credFile == "" || target == "" || resource == "" || action == "" {
		return fail("--bundle, --credential, --at, --resource and --action are required")
	}
	if minSigs < 1 {
		return fail("--min-signatures must be at least 1, got %d", minSigs)
	}
	if allowStale < 0 {
		return fail("--allow-stale must not be negative, got %s", allowStale)
	}
	now := time.Now()
	if at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return fail("--time: %v", err)
		}
		now = t
	}
	p := bundle.Policy{MinSignatures: minSigs, Origin: origin}
	if trust != "" {
		for _, s := range strings.Split(trust, ",") {
			id, err := authority.ParseID(strings.TrimSpace(s))
			if err != nil {
				return fail("--trust: %v", err)
			}
			p.Trust = append(p.Trust, id)
		}
	} else {
		fmt.Fprintln(stderr, "fedverify: warning: no --trust: any authority in the bundle's own graph may sign it, and anyone can make such a bundle")
	}
	cred, err := readCredential(credFile)
	if err != nil {
		return fail("--credential: %v", err)
	}

	b, err := bundle.Load(bundleFile, p)
	if err != nil {
		return fail("%v", err)
	}
	for _, d := range deltas {
		raw, err := bundle.ReadFile(d)
		if err != nil {
			return fail("%v", err)
		}
		if b, err = bundle.OpenDelta(b, raw, p); err != nil {
			return fail("delta %s: %v", d, err)
		}
	}

	var opts bundle.VerifyOptions
	opts.AllowStale = allowStale
	if site != "" {
		s := bundle.Site{Dir: site}
		if opts.LastSeen, err = s.LastSeen(b.Origin); err != nil {
			return fail("--site: %v", err)
		}
		// The bundle opened: remember its version (Record never lowers it,
		// so a rollback records nothing). The decision below uses the
		// version seen before this one.
		if err := s.Record(b.Origin, b.GraphVersion); err != nil {
			return fail("--site: %v", err)
		}
	}

	d := decide(b, cred, target, resource, action, now, opts)
	if asJSON {
		out, err := json.Marshal(d)
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprintln(stdout, string(out))
	} else {
		printDecision(stdout, b, d)
	}
	if !d.Allow {
		return exitDeny
	}
	return exitAllow
}

// decide resolves the target in the bundle's graph and decides. A target
// that does not resolve is still judged, so that a stale or rolled-back
// bundle, or a bad credential, is reported as such first.
func decide(b *bundle.Bundle, cred []byte, target, resource, action string, at time.Time, o bundle.VerifyOptions) authority.Decision {
	return b.Decide(authority.Request{Credential: cred, Resource: resource, Action: action}, target, at, o)
}

// readCredential reads a credential file, at most
// authority.MaxDeclarationSize bytes (a longer one is read that far and
// judged malformed).
func readCredential(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, authority.MaxDeclarationSize+1))
}

func printDecision(w io.Writer, b *bundle.Bundle, d authority.Decision) {
	fmt.Fprintf(w, "%s (%s): %s\n", d.Outcome, d.Reason, d.Message)
	for i, id := range d.Chain {
		fmt.Fprintf(w, "  chain[%d] %s\n", i, id)
	}
	names := make([]string, len(b.Signers))
	for i, s := range b.Signers {
		names[i] = s.Name
	}
	fmt.Fprintf(w, "  graph version %d of %s, age %s, bundle signed by %s (%d counted), expires %s\n",
		d.GraphVersion, b.Origin, time.Duration(d.GraphAgeMS)*time.Millisecond,
		strings.Join(names, ", "), len(b.Trusted), b.Expires().UTC().Format(time.RFC3339))
}
