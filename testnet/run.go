package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/bundle"
	"github.com/fednode/fednode/node"
)

// Story is the built-in cross-cloud scenario that `fednode testnet` tells
// when given no --scenario.
//
//go:embed story.scenario
var Story []byte

// StoryName is the file name the story's line numbers refer to.
const StoryName = "story.scenario"

// Bounds on how long the runner waits for the mesh between steps.
const (
	// agreeTimeout bounds waiting for a declaration to reach every live node.
	agreeTimeout = 60 * time.Second
	// catchUpTimeout bounds waiting for a restarted node to catch up.
	catchUpTimeout = 60 * time.Second
	// defaultCredentialTTL is a credential's validity when ttl= is not given.
	defaultCredentialTTL = 24 * time.Hour
	pollInterval         = 20 * time.Millisecond
)

// StepResult is the outcome of one step at one node: the JSON of
// `fednode testnet --json` (a public interface).
type StepResult struct {
	Line      int    `json:"line"`
	Op        string `json:"op"`
	OK        bool   `json:"ok"`
	Want      string `json:"want,omitempty"`
	Got       string `json:"got,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Node      string `json:"node,omitempty"`
	ElapsedMS int64  `json:"elapsed_ms"`
	Message   string `json:"message,omitempty"`
}

// Result is the outcome of a whole scenario.
type Result struct {
	OK    bool         `json:"ok"`
	Steps []StepResult `json:"steps"`
}

// RunOptions configure Run.
type RunOptions struct {
	// Out receives the narrative; nil: none.
	Out io.Writer
	// Nodes is the total number of nodes: the scenario's authorities plus
	// observer nodes (named node-K) that hold a replica and verify. Zero:
	// one node per authority.
	Nodes int
	// Dir holds the nodes' homes; empty: a temporary directory.
	Dir    string
	Logger *slog.Logger
	Clock  func() time.Time
}

// runner executes one scenario on a mesh.
type runner struct {
	sc      *Scenario
	mesh    *Mesh
	out     io.Writer
	clock   func() time.Time
	extra   int
	creds   map[string]*authority.Signed
	rules   map[string]authority.ID
	bundles map[string][]byte
	// seen is the edge site's memory: the newest graph version it has
	// decided from, per log origin.
	seen map[string]uint64
	narr map[int][]string // narration lines ("## ...") shown before the step at that line
	// declared lists what the scenario has submitted, so a bundle can wait
	// until its node has agreed all of it.
	declared []authority.ID
	res      Result
}

// Run parses nothing: it runs a parsed scenario (src is its text, for the
// narration lines) on a new mesh, and returns the result and the mesh,
// still running, for the caller to Close (or keep).
func Run(ctx context.Context, sc *Scenario, src []byte, o RunOptions) (*Result, *Mesh, error) {
	mesh, err := NewMesh(MeshOptions{Dir: o.Dir, Logger: o.Logger, Clock: o.Clock})
	if err != nil {
		return nil, nil, err
	}
	r := &runner{
		sc: sc, mesh: mesh, out: o.Out, clock: mesh.clock,
		creds: map[string]*authority.Signed{}, rules: map[string]authority.ID{}, bundles: map[string][]byte{}, seen: map[string]uint64{},
		narr: narration(src, sc), res: Result{OK: true, Steps: []StepResult{}},
	}
	if r.out == nil {
		r.out = io.Discard
	}
	auths := 0
	for _, s := range sc.Steps {
		if s.Op == "authority" {
			auths++
		}
	}
	if o.Nodes > 0 {
		if o.Nodes < auths {
			mesh.Close()
			return nil, nil, fmt.Errorf("testnet: the scenario runs %d authorities, each on its own node: --nodes %d is too few", auths, o.Nodes)
		}
		r.extra = o.Nodes - auths
	}
	err = r.run(ctx)
	return &r.res, mesh, err
}

// RunFile parses and runs a scenario file, then closes the mesh.
func RunFile(ctx context.Context, path string, o RunOptions) (*Result, error) {
	sc, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	src, _ := readFile(path)
	res, mesh, err := Run(ctx, sc, src, o)
	if mesh != nil {
		mesh.Close()
	}
	return res, err
}

// narration maps "## text" comment lines to the step that follows them.
func narration(src []byte, sc *Scenario) map[int][]string {
	out := map[int][]string{}
	var pending []string
	sc2 := bufio.NewScanner(bytes.NewReader(src))
	lines := map[int]bool{}
	for _, s := range sc.Steps {
		lines[s.Line] = true
	}
	for n := 1; sc2.Scan(); n++ {
		t := strings.TrimSpace(sc2.Text())
		if rest, ok := strings.CutPrefix(t, "##"); ok {
			pending = append(pending, strings.TrimSpace(rest))
			continue
		}
		if lines[n] && len(pending) > 0 {
			out[n] = pending
			pending = nil
		}
	}
	return out
}

func (r *runner) printf(format string, args ...any) { fmt.Fprintf(r.out, format, args...) }

func (r *runner) record(s StepResult) {
	r.res.Steps = append(r.res.Steps, s)
	if !s.OK {
		r.res.OK = false
	}
}

func (r *runner) run(ctx context.Context) error {
	steps := r.sc.Steps
	for i := 0; i < len(steps); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := steps[i]
		if lines := r.narr[s.Line]; len(lines) > 0 {
			r.printf("\n")
			for _, line := range lines {
				r.printf("%s\n", line)
			}
		}
		if s.Op == "authority" {
			// Consecutive authority lines start together.
			j := i
			for j < len(steps) && steps[j].Op == "authority" {
				j++
			}
			r.authorities(ctx, steps[i:j])
			i = j - 1
			continue
		}
		r.step(ctx, s)
	}
	return nil
}

func (r *runner) authorities(ctx context.Context, steps []Step) {
	start := time.Now()
	specs := make([]AuthorityCmd, 0, len(steps))
	for _, s := range steps {
		specs = append(specs, *s.Cmd.(*AuthorityCmd))
	}
	if r.extra > 0 {
		for k := 0; k < r.extra; k++ {
			specs = append(specs, AuthorityCmd{Name: fmt.Sprintf("node-%d", len(r.mesh.Names())+len(specs)+1), Kind: "observer"})
		}
		r.extra = 0
	}
	err := r.mesh.Add(ctx, specs)
	for _, s := range steps {
		a := s.Cmd.(*AuthorityCmd)
		res := StepResult{Line: s.Line, Op: s.Op, Node: a.Name, Want: "agreed at every node"}
		if err == nil {
			err = r.waitAgreed(ctx, r.mesh.Node(a.Name).Authority())
		}
		res.ElapsedMS = time.Since(start).Milliseconds()
		if err != nil {
			res.Message, res.Got = err.Error(), "not agreed"
			r.record(res)
			r.printf("  ✗ authority %s: %v\n", a.Name, err)
			continue
		}
		res.OK, res.Got = true, "agreed"
		r.record(res)
		n := r.mesh.Node(a.Name)
		r.printf("  ✓ authority %-14s kind=%-10s id %s  node %s…  (%d ms)\n", a.Name, n.Home().Config.Kind, n.Authority().Short(), n.PeerID()[len(n.PeerID())-8:], res.ElapsedMS)
	}
}

// waitAgreed waits until every live node holds id in its agreed graph.
func (r *runner) waitAgreed(ctx context.Context, id authority.ID) error {
	deadline := time.Now().Add(agreeTimeout)
	for {
		names, nodes := r.mesh.Live()
		var missing []string
		for i, n := range nodes {
			if !n.Agreed(id) {
				missing = append(missing, names[i])
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("declaration %s not agreed after %s at: %s", id.Short(), agreeTimeout, strings.Join(missing, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

func (r *runner) fail(s Step, node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.record(StepResult{Line: s.Line, Op: s.Op, Node: node, Message: msg})
	r.printf("  ✗ line %d: %s: %s\n", s.Line, s.Text, msg)
}

func (r *runner) liveNode(s Step, name string) *node.Node {
	n := r.mesh.Node(name)
	if n == nil {
		r.fail(s, name, "node %s is not running", name)
	}
	return n
}

func (r *runner) step(ctx context.Context, s Step) {
	start := time.Now()
	switch c := s.Cmd.(type) {
	case *FederateCmd:
		n := r.liveNode(s, c.Target)
		if n == nil {
			return
		}
		var src authority.ID
		if sn := r.mesh.Node(c.Source); sn != nil {
			src = sn.Authority()
		} else if h, err := r.mesh.Home(c.Source); err == nil {
			src = h.Authority
		}
		now := r.clock()
		rule := authority.Rule{Source: src, Subjects: c.Subjects, Resources: c.Resources, Actions: c.Actions}
		switch {
		case c.Until.Set && !c.Until.Absolute.IsZero():
			rule.NotAfter = c.Until.Absolute.Unix()
		case c.Until.Set:
			rule.NotAfter = now.Add(c.Until.Relative).Unix()
		}
		sd, err := node.SignNext(ctx, n.Home(), n, now, func(d *authority.Declaration) {
			d.Kind, d.Rule = authority.KindRule, &rule
		})
		if err == nil {
			err = r.waitAgreed(ctx, sd.ID)
		}
		if err != nil {
			r.fail(s, c.Target, "%v", err)
			return
		}
		r.declared = append(r.declared, sd.ID)
		if c.As != "" {
			r.rules[c.As] = sd.ID
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Target, Got: "rule " + sd.ID.Short(), ElapsedMS: time.Since(start).Milliseconds()})
		until := "no end"
		if rule.NotAfter != 0 {
			until = "until " + time.Unix(rule.NotAfter, 0).UTC().Format(time.RFC3339)
		}
		r.printf("  ✓ %s accepts %s: subjects %q, resources %q, actions %s, %s  (rule %s, agreed at every node in %d ms)\n",
			c.Target, c.Source, c.Subjects, c.Resources, strings.Join(c.Actions, ","), until, sd.ID.Short(), time.Since(start).Milliseconds())

	case *CredentialCmd:
		h, err := r.mesh.Home(c.Issuer)
		if err != nil {
			r.fail(s, c.Issuer, "%v", err)
			return
		}
		ttl := c.TTL
		if ttl == 0 {
			ttl = defaultCredentialTTL
		}
		now := r.clock().Truncate(time.Second)
		serial, err := authority.NewSerial(rand.Reader)
		if err != nil {
			r.fail(s, c.Issuer, "%v", err)
			return
		}
		sd, err := authority.Sign(authority.Declaration{
			Kind: authority.KindCredential, Authority: h.Authority, IssuedAt: now.Unix(),
			Credential: &authority.Credential{Subject: c.Subject, NotBefore: now.Unix(), NotAfter: now.Add(ttl).Unix(), Serial: serial},
		}, h.Root)
		if err != nil {
			r.fail(s, c.Issuer, "%v", err)
			return
		}
		r.creds[c.Name] = sd
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Issuer, Got: "credential " + sd.ID.Short()})
		r.printf("  ✓ %s issues credential %q to %q, valid %s  (%s)\n", c.Issuer, c.Name, c.Subject, ttl, sd.ID.Short())

	case *RevokeCmd:
		n := r.liveNode(s, c.Auth)
		if n == nil {
			return
		}
		target, ok := r.rules[c.Name]
		if cred, isCred := r.creds[c.Name]; isCred {
			target, ok = cred.ID, true
		}
		if !ok {
			r.fail(s, c.Auth, "nothing named %q to revoke", c.Name)
			return
		}
		sd, err := node.SignNext(ctx, n.Home(), n, r.clock(), func(d *authority.Declaration) {
			d.Kind, d.Revocation = authority.KindRevocation, &authority.Revocation{Target: target}
		})
		if err != nil {
			r.fail(s, c.Auth, "%v", err)
			return
		}
		r.declared = append(r.declared, sd.ID)
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Auth, Got: "revocation " + sd.ID.Short(), ElapsedMS: time.Since(start).Milliseconds()})
		r.printf("  ✓ %s revokes %q  (revocation %s, submitted at %s; gossip carries it to the mesh)\n", c.Auth, c.Name, sd.ID.Short(), c.Auth)

	case *ExpectCmd:
		r.expect(ctx, s, c)

	case *BundleCmd:
		n := r.liveNode(s, c.From)
		if n == nil {
			return
		}
		// A bundle is of the agreed graph: first let everything declared so
		// far be agreed at the exporting node.
		deadline := time.Now().Add(agreeTimeout)
		for _, id := range r.declared {
			for !n.Agreed(id) && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(pollInterval)
			}
		}
		b, err := n.ExportBundle(ctx, node.ExportOptions{MaxAge: c.MaxAge, Cosign: c.Cosign})
		if err != nil {
			r.fail(s, c.From, "%v", err)
			return
		}
		r.bundles[c.Name] = b
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.From, Got: fmt.Sprintf("graph version %d, %d bytes", n.GraphVersion(), len(b))})
		signers := append([]string{c.From}, c.Cosign...)
		r.printf("  ✓ bundle %q exported by %s: graph version %d, %d bytes, signed by %s\n", c.Name, c.From, n.GraphVersion(), len(b), strings.Join(signers, ", "))

	case *ExpectOfflineCmd:
		r.expectOffline(s, c)

	case *ExpectCheckpointEqualCmd:
		r.expectCheckpointEqual(ctx, s, c)

	case *KillCmd:
		if err := r.mesh.Kill(c.Node); err != nil {
			r.fail(s, c.Node, "%v", err)
			return
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Node, Got: "killed"})
		r.printf("  ✓ node %s killed\n", c.Node)

	case *RestartCmd:
		if err := r.mesh.Restart(ctx, c.Node); err != nil {
			r.fail(s, c.Node, "%v", err)
			return
		}
		version, err := r.waitCaughtUp(ctx, c.Node)
		if err != nil {
			r.fail(s, c.Node, "%v", err)
			return
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Node, Got: fmt.Sprintf("caught up at graph version %d", version), ElapsedMS: time.Since(start).Milliseconds()})
		r.printf("  ✓ node %s restarted from its home and caught up to graph version %d in %d ms\n", c.Node, version, time.Since(start).Milliseconds())

	case *WaitCmd:
		select {
		case <-ctx.Done():
		case <-time.After(c.D):
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, ElapsedMS: time.Since(start).Milliseconds()})
		r.printf("  · waited %s\n", c.D)

	default:
		r.fail(s, "", "the runner does not know op %q", s.Op)
	}
}

// waitCaughtUp waits until a restarted node's graph is as new as the most
// advanced live node's was when it came back.
func (r *runner) waitCaughtUp(ctx context.Context, name string) (uint64, error) {
	var target uint64
	names, nodes := r.mesh.Live()
	for i, n := range nodes {
		if names[i] != name && n.GraphVersion() > target {
			target = n.GraphVersion()
		}
	}
	n := r.mesh.Node(name)
	deadline := time.Now().Add(catchUpTimeout)
	for n.GraphVersion() < target {
		if time.Now().After(deadline) {
			return n.GraphVersion(), fmt.Errorf("%s is at graph version %d after %s, the mesh at %d", name, n.GraphVersion(), catchUpTimeout, target)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	return n.GraphVersion(), nil
}

func want(allow bool, reason string) string {
	w := "deny"
	if allow {
		w = "allow"
	}
	if reason != "" {
		w += " " + reason
	}
	return w
}

func matches(d authority.Decision, allow bool, reason string) bool {
	return d.Allow == allow && (reason == "" || string(d.Reason) == reason)
}

func (r *runner) expect(ctx context.Context, s Step, c *ExpectCmd) {
	cred := r.creds[c.Cred]
	var names []string
	var nodes []*node.Node
	if c.On == "all" {
		names, nodes = r.mesh.Live()
	} else {
		n := r.liveNode(s, c.On)
		if n == nil {
			return
		}
		names, nodes = []string{c.On}, []*node.Node{n}
	}
	r.printf("  ? %s %s at %s: %s on %s%s\n", c.Cred, want(c.Allow, c.Reason), c.At, c.Action, c.Resource, withinText(c.Within))
	type outcome struct {
		d       authority.Decision
		ok      bool
		elapsed time.Duration
	}
	outs := make([]outcome, len(nodes))
	start := time.Now()
	deadline := start.Add(c.Within)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d := n.Verify(cred.Raw, c.At, c.Resource, c.Action, r.clock())
				outs[i] = outcome{d: d, ok: matches(d, c.Allow, c.Reason), elapsed: time.Since(start)}
				if outs[i].ok || time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for i, o := range outs {
		res := StepResult{Line: s.Line, Op: s.Op, OK: o.ok, Want: want(c.Allow, c.Reason), Got: o.d.Outcome,
			Reason: string(o.d.Reason), Node: names[i], ElapsedMS: o.elapsed.Milliseconds()}
		if !o.ok {
			res.Message = o.d.Message
		}
		r.record(res)
		mark := "✓"
		if !o.ok {
			mark = "✗"
		}
		r.printf("    %s %-14s %-5s %-22s graph v%-3d age %5d ms  chain %d  (%d ms)\n", mark, names[i], o.d.Outcome, o.d.Reason, o.d.GraphVersion, o.d.GraphAgeMS, len(o.d.Chain), o.elapsed.Milliseconds())
		if !o.ok {
			r.printf("        %s\n", o.d.Message)
		}
	}
}

func withinText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return " (within " + d.String() + ")"
}

// expectOffline decides from a bundle alone, as an edge site does. The
// scenario is one site: it remembers the newest graph version it has seen
// per log, so an older bundle after a newer one is a rollback.
func (r *runner) expectOffline(s Step, c *ExpectOfflineCmd) {
	start := time.Now()
	cred := r.creds[c.Cred]
	raw := r.bundles[c.Bundle]
	b, err := bundle.Open(raw, bundle.Policy{})
	if err != nil {
		r.fail(s, "", "bundle %q: %v", c.Bundle, err)
		return
	}
	at := r.clock()
	if !c.AtTime.IsZero() {
		at = c.AtTime
	}
	opts := bundle.VerifyOptions{AllowStale: c.AllowStale, LastSeen: r.seen[b.Origin]}
	r.seen[b.Origin] = max(r.seen[b.Origin], b.GraphVersion)
	d := b.Decide(authority.Request{Credential: cred.Raw, Resource: c.Resource, Action: c.Action}, c.At, at, opts)
	ok := matches(d, c.Allow, c.Reason)
	res := StepResult{Line: s.Line, Op: s.Op, OK: ok, Want: want(c.Allow, c.Reason), Got: d.Outcome, Reason: string(d.Reason),
		Node: "bundle:" + c.Bundle, ElapsedMS: time.Since(start).Milliseconds()}
	if !ok {
		res.Message = d.Message
	}
	r.record(res)
	mark := "✓"
	if !ok {
		mark = "✗"
	}
	r.printf("  %s offline from bundle %q: %s %s at %s: %s %s, graph v%d, %s old  (no network, no node)\n", mark, c.Bundle, c.Cred, c.Action, c.At, d.Outcome, d.Reason, d.GraphVersion, time.Duration(d.GraphAgeMS)*time.Millisecond)
	if !ok || d.Reason == authority.ReasonStaleBundle || d.Reason == authority.ReasonRollback {
		r.printf("        %s\n", d.Message)
	}
}

// expectCheckpointEqual checks that every live node reports the same
// checkpoint size and root.
func (r *runner) expectCheckpointEqual(ctx context.Context, s Step, c *ExpectCheckpointEqualCmd) {
	start := time.Now()
	deadline := start.Add(c.Within)
	var got string
	for {
		names, nodes := r.mesh.Live()
		seen := map[string][]string{}
		for i, n := range nodes {
			cp, err := n.Checkpoint()
			key := "none"
			if err == nil {
				key = fmt.Sprintf("%d:%x", cp.Size, cp.Root[:8])
			}
			seen[key] = append(seen[key], names[i])
		}
		if len(seen) == 1 {
			for k := range seen {
				got = k
			}
			r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Want: "one checkpoint", Got: got, ElapsedMS: time.Since(start).Milliseconds()})
			r.printf("  ✓ every node reports checkpoint size:root %s  (%d ms)\n", got, time.Since(start).Milliseconds())
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			got = fmt.Sprint(seen)
			r.record(StepResult{Line: s.Line, Op: s.Op, Want: "one checkpoint", Got: got, ElapsedMS: time.Since(start).Milliseconds(),
				Message: "nodes disagree: " + got})
			r.printf("  ✗ nodes report different checkpoints: %s\n", got)
			return
		}
		time.Sleep(pollInterval)
	}
}

// Summary prints which steps failed.
func (res *Result) Summary(w io.Writer) {
	failed := 0
	lines := map[int]bool{}
	for _, s := range res.Steps {
		if !s.OK {
			failed++
			lines[s.Line] = true
		}
	}
	if failed == 0 {
		fmt.Fprintf(w, "\nall %d checks held\n", len(res.Steps))
		return
	}
	var ls []int
	for l := range lines {
		ls = append(ls, l)
	}
	sort.Ints(ls)
	fmt.Fprintf(w, "\n%d of %d checks failed (lines %v)\n", failed, len(res.Steps), ls)
}
