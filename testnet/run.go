package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	// burstTimeout bounds waiting for a burst to be agreed at its node.
	burstTimeout = 120 * time.Second
	// burstSubmitters is how many goroutines submit a burst at once: enough
	// to keep the node busy, few enough not to starve its loops.
	burstSubmitters = 8
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
	// Files resolves the FILE paths the scenario names (authority jwks=,
	// x509-roots=; expect jwt=, x509=), relative to the scenario file. nil:
	// the files embedded for the built-in Story (testnet/, whose story files
	// are under testdata/story/). ScenarioFiles gives a scenario file's directory.
	Files fs.FS
}

// storyFiles are the files Story names, embedded with it.
//
//go:embed testdata/story
var storyFiles embed.FS

// runner executes one scenario on a mesh.
type runner struct {
	sc    *Scenario
	mesh  *Mesh
	out   io.Writer
	clock func() time.Time
	extra int
	creds map[string]*authority.Signed
	// holders keeps the private holder key of each credential made with
	// holder-key=yes: the runner is its holder, so it proves possession and
	// signs delegations with it.
	holders map[string]*authority.PrivateKey
	// chains is each delegated credential's chain of parents as a request
	// presents it (authority.Request.Delegation): nearest parent first,
	// ending with the root credential. Absent for a root credential.
	chains  map[string][][]byte
	rules   map[string]authority.ID
	bundles map[string][]byte
	// seen is the edge site's memory: the newest graph version it has
	// decided from, per log origin.
	seen map[string]uint64
	narr map[int][]string // narration lines ("## ...") shown before the step at that line
	// declared lists what the scenario has submitted, so a bundle can wait
	// until its node has agreed all of it.
	declared []authority.ID
	// keys are the root sets the runner signs with, for the authorities
	// that rotated (run_equiv.go); the others sign with their home's keys.
	keys map[string]rootSets
	// founded: the founders' charter is declared (consortium.go).
	founded bool
	// acked lists every declaration a node acknowledged (accepted) during
	// bursts; expect-converged checks each is agreed everywhere (faults.go).
	acked []authority.ID
	res   Result
}

// Run parses nothing: it runs a parsed scenario (src is its text, for the
// narration lines) on a new mesh, and returns the result and the mesh,
// still running, for the caller to Close (or keep).
func Run(ctx context.Context, sc *Scenario, src []byte, o RunOptions) (*Result, *Mesh, error) {
	files := o.Files
	if files == nil {
		files = storyFiles
	}
	mesh, err := NewMesh(MeshOptions{Dir: o.Dir, Logger: o.Logger, Clock: o.Clock, Files: files})
	if err != nil {
		return nil, nil, err
	}
	r := &runner{
		sc: sc, mesh: mesh, out: o.Out, clock: mesh.clock,
		creds: map[string]*authority.Signed{}, holders: map[string]*authority.PrivateKey{}, chains: map[string][][]byte{}, rules: map[string]authority.ID{}, bundles: map[string][]byte{}, seen: map[string]uint64{},
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

// ScenarioFiles returns the RunOptions.Files of a scenario file in dir:
// its FILE paths resolve relative to dir.
func ScenarioFiles(dir string) fs.FS { return scenarioDir(dir) }

// scenarioDir resolves a scenario's FILE paths relative to its directory.
// Unlike os.DirFS it lets a path leave the directory (../shared/x.pem) or be
// absolute: the scenario is the operator's own file, not untrusted input.
type scenarioDir string

func (d scenarioDir) Open(name string) (fs.File, error) {
	p := filepath.FromSlash(name)
	if !filepath.IsAbs(p) {
		p = filepath.Join(string(d), p)
	}
	return os.Open(p)
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
			if r.founded {
				r.lateAuthorities(ctx, steps[i:j])
			} else {
				r.authorities(ctx, steps[i:j])
				j = r.afterAuthorities(ctx, steps, j)
			}
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
			err = r.waitAgreed(ctx, a.Name, r.mesh.Node(a.Name).Authority())
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

// waitAgreed waits until every live node that origin (where id was
// submitted) can reach holds id in its agreed graph: all of them unless a
// partition cuts some off.
func (r *runner) waitAgreed(ctx context.Context, origin string, id authority.ID) error {
	deadline := time.Now().Add(agreeTimeout)
	for {
		names, nodes := r.mesh.Reachable(origin)
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
		rule := authority.Rule{Source: src, Subjects: c.Subjects, Resources: c.Resources, Actions: c.Actions, Hops: c.Hops, Require: c.Require}
		switch {
		case c.Until.Set && !c.Until.Absolute.IsZero():
			rule.NotAfter = c.Until.Absolute.Unix()
		case c.Until.Set:
			rule.NotAfter = now.Add(c.Until.Relative).Unix()
		}
		sd, err := r.signNext(ctx, c.Target, n, now, func(d *authority.Declaration) {
			d.Kind, d.Rule = authority.KindRule, &rule
		})
		if err == nil {
			r.ack(sd.ID) // acknowledged: it must reach every node, whatever this step says
			err = r.waitAgreed(ctx, c.Target, sd.ID)
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
		where := "every node"
		if r.mesh.Partitioned() {
			names, _ := r.mesh.Reachable(c.Target)
			where = "every node on its side (" + strings.Join(names, ", ") + ")"
		}
		var extra string
		if c.Hops > 0 {
			extra += fmt.Sprintf(", %d further hops", c.Hops)
		}
		if len(c.Require) > 0 {
			extra += fmt.Sprintf(", requires %s", attrsText(c.Require))
		}
		r.printf("  ✓ %s accepts %s: subjects %q, resources %q, actions %s, %s%s  (rule %s, agreed at %s in %d ms)\n",
			c.Target, c.Source, c.Subjects, c.Resources, strings.Join(c.Actions, ","), until, extra, sd.ID.Short(), where, time.Since(start).Milliseconds())

	case *CredentialCmd:
		r.credential(s, c)

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
		sd, err := r.signNext(ctx, c.Auth, n, r.clock(), func(d *authority.Declaration) {
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

	case *ExpectConvergedCmd:
		r.expectConverged(ctx, s, c)

	case *BurstCmd:
		r.burst(ctx, s, c)

	case *PartitionCmd:
		if err := r.mesh.Partition(c.Nodes, c.From); err != nil {
			r.fail(s, "", "%v", err)
			return
		}
		from := "every other node"
		if len(c.From) > 0 {
			from = strings.Join(c.From, ", ")
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: strings.Join(c.Nodes, ","), Got: "cut off from " + from})
		r.printf("  ✓ partition: %s cut off from %s (both ways: connections closed, new ones refused)\n", strings.Join(c.Nodes, ", "), from)

	case *HealCmd:
		if err := r.mesh.Heal(ctx); err != nil {
			r.fail(s, "", "%v", err)
			return
		}
		names, _ := r.mesh.Live()
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Got: "healed", ElapsedMS: time.Since(start).Milliseconds()})
		r.printf("  ✓ healed: every partition lifted, %d nodes reconnected to each other  (%d ms)\n", len(names), time.Since(start).Milliseconds())

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
		if err == nil && c.Snapshot {
			err = r.waitSnapshot(ctx, c.Node)
		}
		if err != nil {
			r.fail(s, c.Node, "%v", err)
			return
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Node, Got: fmt.Sprintf("caught up at graph version %d", version), ElapsedMS: time.Since(start).Milliseconds()})
		r.printf("  ✓ node %s restarted from its home and caught up to graph version %d in %d ms\n", c.Node, version, time.Since(start).Milliseconds())

	case *RotateCmd:
		r.rotate(ctx, s, c)

	case *EquivocateCmd:
		r.equivocate(ctx, s, c)

	case *ExpectEvidenceCmd:
		r.expectEvidence(ctx, s, c)
	case *RaftCmd:
		r.raftStep(s, c)

	case *WaitCmd:
		select {
		case <-ctx.Done():
		case <-time.After(c.D):
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, ElapsedMS: time.Since(start).Milliseconds()})
		r.printf("  · waited %s\n", c.D)

	default:
		if !r.consortiumStep(ctx, s) {
			r.fail(s, "", "the runner does not know op %q", s.Op)
		}
	}
}

// waitCaughtUp waits until a restarted node's graph is as new as the most
// advanced live node's (that it can reach) was when it came back, and until
// it is connected to each of those nodes again: its graph may be current
// from its own disk at once, but until it is connected, gossip (a
// revocation, say) cannot reach it.
func (r *runner) waitCaughtUp(ctx context.Context, name string) (uint64, error) {
	var target uint64
	names, nodes := r.mesh.Reachable(name)
	var peers, peerNames []string
	for i, n := range nodes {
		if names[i] == name {
			continue
		}
		peers, peerNames = append(peers, n.PeerID()), append(peerNames, names[i])
		if n.GraphVersion() > target {
			target = n.GraphVersion()
		}
	}
	n := r.mesh.Node(name)
	deadline := time.Now().Add(catchUpTimeout)
	for {
		connected := n.Status().Peers
		var missing []string
		for i, p := range peers {
			if !slices.Contains(connected, p) {
				missing = append(missing, peerNames[i])
			}
		}
		if n.GraphVersion() >= target && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			if len(missing) > 0 {
				return n.GraphVersion(), fmt.Errorf("%s is not connected to %s after %s", name, strings.Join(missing, ", "), catchUpTimeout)
			}
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

// targets are the nodes an on= key names: every node all lists for
// on=all, else the one live node (ok false: the step has failed already).
func (r *runner) targets(s Step, on string, all func() ([]string, []*node.Node)) (names []string, nodes []*node.Node, ok bool) {
	if on == onAll {
		names, nodes = all()
		return names, nodes, true
	}
	n := r.liveNode(s, on)
	if n == nil {
		return nil, nil, false
	}
	return []string{on}, []*node.Node{n}, true
}

func (r *runner) expect(ctx context.Context, s Step, c *ExpectCmd) {
	names, nodes, ok := r.targets(s, c.On, r.mesh.Counted)
	if !ok {
		return
	}
	var pres string
	var ext authority.Request // an external credential (jwt=, x509=), read once
	what := c.Cred
	switch {
	case c.JWT != "":
		b, err := r.mesh.readFile(c.JWT)
		if err != nil {
			r.fail(s, c.At, "jwt=%s: %v", c.JWT, err)
			return
		}
		ext.JWT, what = strings.TrimSpace(string(b)), "JWT "+c.JWT
	case c.X509 != "":
		b, err := r.mesh.readFile(c.X509)
		if err == nil {
			ext.X509, err = pemCerts(b)
		}
		if err != nil {
			r.fail(s, c.At, "x509=%s: %v", c.X509, err)
			return
		}
		what = fmt.Sprintf("X.509 chain %s (%d certificates)", c.X509, len(ext.X509))
	}
	if n := len(r.chains[c.Cred]); n > 0 {
		pres += fmt.Sprintf(", with its delegation chain of %d", n)
	}
	if r.holders[c.Cred] != nil {
		if c.NoPoP {
			pres += ", without proof of possession"
		} else {
			pres += ", proving possession of its holder key"
		}
	}
	r.printf("  ? %s %s at %s: %s on %s%s%s\n", what, want(c.Allow, c.Reason), c.At, c.Action, c.Resource, pres, withinText(c.Within))
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
				// A fresh challenge per attempt, as a verifier issues one
				// per request.
				at := r.clock()
				challenge := make([]byte, popChallengeLen)
				var d authority.Decision
				var req authority.Request
				_, err := rand.Read(challenge)
				if err == nil && c.Cred == "" {
					req = ext
				} else if err == nil {
					req, err = r.request(c.Cred, c.At, !c.NoPoP, challenge, at)
				}
				if err == nil {
					req.Resource, req.Action = c.Resource, c.Action
					d = n.VerifyRequest(req, c.At, at, authority.WithChallenge(challenge))
				} else {
					d = authority.Decision{Outcome: "error", Message: "testnet: present the credential: " + err.Error()}
				}
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

// credential signs a credential: with the issuer's root key, or, for a
// delegation (from=), with the parent's holder key. It signs exactly what
// the line says, even a link that widens its parent or changes its
// subject: a delegator can sign anything, and the verifier decides.
func (r *runner) credential(s Step, c *CredentialCmd) {
	h, err := r.mesh.Home(c.Issuer)
	if err != nil {
		r.fail(s, c.Issuer, "%v", err)
		return
	}
	now := r.clock().Truncate(time.Second)
	serial, err := authority.NewSerial(rand.Reader)
	if err != nil {
		r.fail(s, c.Issuer, "%v", err)
		return
	}
	cred := &authority.Credential{Subject: c.Subject, NotBefore: now.Unix(), Serial: serial,
		Attributes: c.Attrs, Resources: c.Resources, Actions: c.Actions}
	var signer *authority.PrivateKey // nil: the issuer's threshold of root keys (h.Sign)
	var parent *authority.Signed
	if c.From != "" {
		parent = r.creds[c.From]
		signer = r.holders[c.From]
		if parent == nil || signer == nil {
			// Parse refuses this; the check stands for a hand-built Scenario.
			r.fail(s, c.Issuer, "from=%s: credential %q has no holder key, so it cannot sign a delegation (give it holder-key=yes)", c.From, c.From)
			return
		}
		cred.Parent = parent.ID
	}
	switch {
	case c.TTL > 0:
		cred.NotAfter = now.Add(c.TTL).Unix()
	case parent != nil:
		cred.NotAfter = parent.Decl.Credential.NotAfter // a delegation lasts as long as its parent
	default:
		cred.NotAfter = now.Add(defaultCredentialTTL).Unix()
	}
	var holder *authority.PrivateKey
	if c.HolderKey {
		holder, err = authority.GenerateKey(authority.AlgEd25519, rand.Reader)
		if err != nil {
			r.fail(s, c.Issuer, "generate holder key: %v", err)
			return
		}
		pub := holder.Public()
		cred.HolderKey = &pub
	}
	decl := authority.Declaration{
		Kind: authority.KindCredential, Authority: h.Authority, IssuedAt: now.Unix(), Credential: cred,
	}
	var sd *authority.Signed
	roots, signedBy, err := r.credentialKeys(c)
	switch {
	case err != nil:
	case signer != nil:
		sd, err = authority.Sign(decl, signer)
	case roots != nil:
		sd, err = authority.SignMulti(decl, roots...)
	default:
		sd, err = h.Sign(decl)
	}
	if err != nil {
		r.fail(s, c.Issuer, "%v", err)
		return
	}
	r.creds[c.Name] = sd
	if holder != nil {
		r.holders[c.Name] = holder
	}
	if parent != nil {
		r.chains[c.Name] = append([][]byte{parent.Raw}, r.chains[c.From]...)
	}
	r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Issuer, Got: "credential " + sd.ID.Short()})
	var extra string
	if len(c.Attrs) > 0 {
		extra += ", attributes " + attrsText(c.Attrs)
	}
	if c.Resources != "" {
		extra += fmt.Sprintf(", resources %q", c.Resources)
	}
	if len(c.Actions) > 0 {
		extra += ", actions " + strings.Join(c.Actions, ",")
	}
	if holder != nil {
		extra += fmt.Sprintf(", holder key %x", cred.HolderKey.KeyID())
	}
	valid := time.Unix(cred.NotAfter, 0).Sub(now).String()
	if parent != nil {
		r.printf("  ✓ %q delegates credential %q for %q, valid %s%s  (%s, signed by %s's holder key, chain of %d)\n",
			c.From, c.Name, c.Subject, valid, extra, sd.ID.Short(), c.From, len(r.chains[c.Name])+1)
		return
	}
	r.printf("  ✓ %s issues credential %q to %q, valid %s%s%s  (%s)\n", c.Issuer, c.Name, c.Subject, valid, extra, signedBy, sd.ID.Short())
}

// request is how the runner presents credential name to target: with its
// delegation chain and, when the runner holds its holder key and pop is
// true, a proof of possession answering challenge (nil: the empty
// challenge, which is what a verifier that issues none expects).
func (r *runner) request(name, target string, pop bool, challenge []byte, at time.Time) (authority.Request, error) {
	cred := r.creds[name]
	req := authority.Request{Credential: cred.Raw, Delegation: r.chains[name]}
	key := r.holders[name]
	if !pop || key == nil {
		return req, nil
	}
	var tid authority.ID
	if n := r.mesh.Node(target); n != nil {
		tid = n.Authority()
	} else if h, err := r.mesh.Home(target); err == nil {
		tid = h.Authority
	}
	proof, err := authority.MakeProof(cred, tid, challenge, at, key)
	if err != nil {
		return req, err
	}
	req.PoP = proof
	return req, nil
}

// popChallengeLen is the size of the fresh random challenge each expect
// attempt issues for a proof of possession.
const popChallengeLen = 32

// attrsText renders attributes as KEY:VALUE,..., as the scenario writes them.
func attrsText(attrs []authority.Attr) string {
	parts := make([]string, len(attrs))
	for i, a := range attrs {
		parts[i] = a.Key + ":" + a.Value
	}
	return strings.Join(parts, ",")
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
	// A bundle's verifier issues no challenge: a proof answers the empty one.
	req, err := r.request(c.Cred, c.At, true, nil, at)
	if err != nil {
		r.fail(s, "", "present %q: %v", c.Cred, err)
		return
	}
	req.Resource, req.Action = c.Resource, c.Action
	d := b.Decide(req, c.At, at, opts)
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
		names, nodes := r.mesh.Counted()
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

// burst signs c.N federation rules of c.Auth at consecutive chain positions
// (each accepting the authority itself on its own resource burst://LINE/i),
// all before submitting any, then submits them to its node from several
// goroutines (the pool orders them by seq), and waits until its node has
// agreed them all.
func (r *runner) burst(ctx context.Context, s Step, c *BurstCmd) {
	n := r.liveNode(s, c.Auth)
	if n == nil {
		return
	}
	h := n.Home()
	start := time.Now()
	unlock, err := h.LockSigning()
	if err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	// Hold the home's signing lock while signing and submitting, as
	// SignNext does, so no other signer takes these positions meanwhile.
	release := sync.OnceFunc(unlock)
	defer release()
	head, err := n.Head(ctx, h.Authority.String())
	if err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	now := r.clock().Unix()
	sds := make([]*authority.Signed, c.N)
	prev := head.HeadID
	for i := range sds {
		sd, err := r.sign(c.Auth, authority.Declaration{
			Kind: authority.KindRule, Authority: h.Authority, Seq: head.Head + 1 + uint64(i), Prev: prev, IssuedAt: now,
			Rule: &authority.Rule{Source: h.Authority, Subjects: "*", Resources: fmt.Sprintf("burst://%d/%d", s.Line, i), Actions: []string{"read"}},
		})
		if err != nil {
			r.fail(s, c.Auth, "sign declaration %d of the burst: %v", i, err)
			return
		}
		sds[i], prev = sd, sd.ID
	}
	signed := time.Since(start)

	submitStart := time.Now()
	next := make(chan *authority.Signed)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range min(burstSubmitters, c.N) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sd := range next {
				res, err := n.Submit(ctx, sd.Raw)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("submit seq %d: %w", sd.Decl.Seq, err)
				}
				if err == nil && res.Status == "accepted" {
					r.ack(sd.ID)
				}
				mu.Unlock()
			}
		}()
	}
	for i, sd := range sds {
		if c.Kill != "" && i == len(sds)/2 {
			r.killDuringBurst(s, c)
		}
		next <- sd
	}
	close(next)
	wg.Wait()
	release()
	submitted := time.Since(submitStart)
	if firstErr != nil {
		r.fail(s, c.Auth, "%v", firstErr)
		return
	}

	last := sds[len(sds)-1]
	deadline := time.Now().Add(burstTimeout)
	for !n.Agreed(last.ID) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.fail(s, c.Auth, "the burst's last declaration (seq %d) is not agreed at %s after %s (graph version %d)",
				last.Decl.Seq, c.Auth, burstTimeout, n.GraphVersion())
			return
		}
		time.Sleep(pollInterval)
	}
	agreed := time.Since(submitStart)
	r.declared = append(r.declared, last.ID) // the chain's last: the rest come with it
	rate := float64(c.N) / agreed.Seconds()
	r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Auth,
		Got:       fmt.Sprintf("%d declarations agreed, %.0f/s", c.N, rate),
		ElapsedMS: time.Since(start).Milliseconds()})
	r.printf("  ✓ %s published %d rules (seq %d..%d): signed in %d ms, submitted in %d ms, agreed at %s in %d ms (%.0f declarations/s); graph version %d\n",
		c.Auth, c.N, head.Head+1, last.Decl.Seq, signed.Milliseconds(), submitted.Milliseconds(), c.Auth, agreed.Milliseconds(), rate, n.GraphVersion())
}

// expectConverged checks that every live node has the same graph version
// and the same content: the same transparency-log root at that version.
func (r *runner) expectConverged(ctx context.Context, s Step, c *ExpectConvergedCmd) {
	start := time.Now()
	deadline := start.Add(c.Within)
	for {
		names, nodes := r.mesh.Counted()
		if len(nodes) == 0 {
			r.fail(s, "", "no node is running")
			return
		}
		seen := map[string][]string{}
		for i, n := range nodes {
			key := "no log"
			if cp, err := n.Checkpoint(); err == nil {
				// The checkpoint's size is the graph version it was taken
				// at; a version that moved since then shows as a mismatch
				// and the next round looks again.
				key = fmt.Sprintf("v%d:%x", cp.Size, cp.Root[:8])
				if v := n.GraphVersion(); v != cp.Size {
					key = fmt.Sprintf("v%d (moving)", v)
				}
			}
			seen[key] = append(seen[key], names[i])
		}
		missing := r.missingAcked(names, nodes)
		if len(seen) == 1 && len(missing) > 0 {
			seen["missing acknowledged: "+joinNonEmpty(missing)] = nil
		}
		if len(seen) == 1 {
			var got string
			for k := range seen {
				got = k
			}
			r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Want: "one graph", Got: got, ElapsedMS: time.Since(start).Milliseconds()})
			r.printf("  ✓ converged: all %d live nodes at graph version:root %s  (%d ms)\n", len(nodes), got, time.Since(start).Milliseconds())
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			keys := make([]string, 0, len(seen))
			for k := range seen {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, k+" at "+strings.Join(seen[k], ","))
			}
			got := strings.Join(parts, "; ")
			r.record(StepResult{Line: s.Line, Op: s.Op, Want: "one graph", Got: got, ElapsedMS: time.Since(start).Milliseconds(),
				Message: "nodes have not converged: " + got})
			r.printf("  ✗ line %d: nodes have not converged after %s: %s\n", s.Line, c.Within, got)
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
