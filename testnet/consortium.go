package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// The consortium in the scenario language:
//
//	charter threshold=K [voters=A,B,...] [admit-voters=yes|no]
//	join NAME [kind=K]
//	approve AUTH NAME
//	approve-removal AUTH NAME
//	leave NAME
//	expect-member NAME [on=all|NODE] [within=DUR] [status=member|pending|removed]
//
// The authority lines before any other line (but raft settings) are the founders. Once they
// run, the first founder declares a charter naming them all and the others
// ratify it: by default every founder votes, admitted members vote too, and
// admission (and removal) takes a majority of the founders (n/2+1); a
// charter line right after the founders' lines sets the threshold and the
// voters instead. An authority line after other lines is a newcomer: its
// node joins, and the members approve it in start order until it is
// admitted (the threshold), then its genesis is agreed.
//
// Nodes of authorities that are not members (pending applicants, removed or
// departed members) do not count for on=all, expect-converged,
// expect-checkpoint-equal and the runner's waits: they hold no current
// replica. expect-member names them with on=NODE.

// CharterCmd is `charter threshold=K [voters=A,B,...] [admit-voters=yes|no]`.
type CharterCmd struct {
	Threshold int      // Invariant: >= 1.
	Voters    []string // nil: every founder.
	// NoAdmitVoters: admitted members do not vote.
	NoAdmitVoters bool
}

// JoinCmd is `join NAME [kind=K]`: a new authority's node starts and asks
// the consortium to admit it.
type JoinCmd struct {
	Name, Kind string
}

// MemberActCmd is `approve AUTH NAME` (admit) and `approve-removal AUTH
// NAME` (remove): member AUTH approves the change for NAME.
type MemberActCmd struct {
	Auth, Name string
	Remove     bool
}

// LeaveCmd is `leave NAME`: member NAME leaves of its own accord.
type LeaveCmd struct{ Name string }

// ExpectMemberCmd is `expect-member NAME [on=all|NODE] [within=DUR]
// [status=member|pending|removed]`: at each node, NAME has the status:
// member (admitted, its genesis agreed), pending (nothing of it agreed
// and, where the node's charter is active, its admission request held
// there), or removed (it was a member, and was removed or left).
type ExpectMemberCmd struct {
	Name   string
	On     string        // a node name or "all" (every member's node and NAME's own)
	Within time.Duration // default defaultMemberWithin
	Status string        // member, pending or removed
}

// defaultMemberWithin is how long expect-member polls without within=:
// admission takes a few Raft rounds after the last approval.
const defaultMemberWithin = 30 * time.Second

func init() {
	opTable = append(opTable,
		&opSpec{
			op: "charter",
			keys: []keySpec{
				{name: "threshold", meta: "K", required: true, parse: countValue(authority.MaxMembers)},
				{name: "voters", meta: "A,B,...", parse: namesValue, ref: refAuthority},
				{name: "admit-voters", meta: "yes|no", parse: yesNoValue},
			},
			check: func(p *scenarioParser, _ any) error {
				if len(p.ops) == 0 || slices.ContainsFunc(p.ops, func(op string) bool { return op != "authority" && op != "raft" }) {
					return errors.New("a charter comes right after the founders' authority lines, before any other line")
				}
				return nil
			},
			build: func(a *stepArgs) (any, error) {
				v, given := a.vals["admit-voters"].(bool)
				return &CharterCmd{Threshold: keyVal[int](a, "threshold"), Voters: keyVal[[]string](a, "voters"), NoAdmitVoters: given && !v}, nil
			},
		},
		&opSpec{
			op:   "join",
			pos:  []posSpec{{label: "NAME", parse: nameValueExcept(onAll), defines: symAuthority}},
			keys: []keySpec{{name: "kind", meta: "KIND", parse: nameValue}},
			check: func(p *scenarioParser, _ any) error {
				if !slices.Contains(p.ops, "authority") {
					return errors.New("join needs a consortium to join: declare its founders with authority lines first")
				}
				return nil
			},
			build: func(a *stepArgs) (any, error) {
				return &JoinCmd{Name: posVal[string](a, 0), Kind: keyVal[string](a, "kind")}, nil
			},
		},
		&opSpec{
			op: "approve",
			pos: []posSpec{
				{label: "AUTH", parse: nameValue, ref: refAuthority},
				{label: "NAME", parse: nameValue, ref: refAuthority},
			},
			build: func(a *stepArgs) (any, error) { return memberAct(a, false) },
		},
		&opSpec{
			op: "approve-removal",
			pos: []posSpec{
				{label: "AUTH", parse: nameValue, ref: refAuthority},
				{label: "NAME", parse: nameValue, ref: refAuthority},
			},
			build: func(a *stepArgs) (any, error) { return memberAct(a, true) },
		},
		&opSpec{
			op:  "leave",
			pos: []posSpec{{label: "NAME", parse: nameValue, ref: refAuthority}},
			build: func(a *stepArgs) (any, error) {
				return &LeaveCmd{Name: posVal[string](a, 0)}, nil
			},
		},
		&opSpec{
			op:  "expect-member",
			pos: []posSpec{{label: "NAME", parse: nameValue, ref: refAuthority}},
			keys: []keySpec{
				{name: "on", meta: "all|NODE", dflt: onAll, parse: nameValue, ref: refOn},
				{name: "within", meta: "DUR", parse: nonNegDuration},
				{name: "status", meta: "member|pending|removed", dflt: node.MemberState, parse: choiceValue(node.MemberState, node.PendingState, node.RemovedState)},
			},
			build: func(a *stepArgs) (any, error) {
				within, given := a.vals["within"].(time.Duration)
				if !given {
					within = defaultMemberWithin
				}
				return &ExpectMemberCmd{Name: posVal[string](a, 0), On: keyVal[string](a, "on"), Within: within, Status: keyVal[string](a, "status")}, nil
			},
		},
	)
	opIndex = indexOps(opTable)
}

func memberAct(a *stepArgs, remove bool) (any, error) {
	c := &MemberActCmd{Auth: posVal[string](a, 0), Name: posVal[string](a, 1), Remove: remove}
	if c.Auth == c.Name {
		if remove {
			return nil, errors.New("a member does not approve its own removal: it leaves (leave NAME)")
		}
		return nil, errors.New("an authority cannot approve its own admission")
	}
	return c, nil
}

// ---- the mesh ----

// reference is the live node with the newest graph: the runner's view of
// who is a member.
func (m *Mesh) reference() *node.Node {
	_, nodes := m.Live()
	var best *node.Node
	for _, n := range nodes {
		if best == nil || n.GraphVersion() > best.GraphVersion() {
			best = n
		}
	}
	return best
}

// outsider reports whether name's authority is, in the reference graph
// under an active charter, not a member: its node holds no current replica.
func (m *Mesh) outsider(ref *node.Node, name string) bool {
	m.mu.Lock()
	mb, ok := m.nodes[name]
	m.mu.Unlock()
	if !ok || ref == nil {
		return false
	}
	auth := mb.auth
	state, active := ref.MembershipOf(auth)
	return active && state != node.MemberState
}

// members filters names and nodes to those of members (see outsider).
func (m *Mesh) members(names []string, nodes []*node.Node) ([]string, []*node.Node) {
	ref := m.reference()
	var on []string
	var ns []*node.Node
	for i, name := range names {
		if !m.outsider(ref, name) {
			on, ns = append(on, name), append(ns, nodes[i])
		}
	}
	return on, ns
}

// Counted returns the running nodes of members, in start order: the nodes
// on=all, expect-converged and expect-checkpoint-equal look at.
func (m *Mesh) Counted() ([]string, []*node.Node) { return m.members(m.Live()) }

// authorityOf is the authority ID of a node of the mesh (running or not).
func (m *Mesh) authorityOf(name string) (authority.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.nodes[name]
	if !ok {
		return authority.ID{}, fmt.Errorf("testnet: no node %s", name)
	}
	return mb.auth, nil
}

// ---- the runner ----

// found declares the consortium of the founders (every node started so
// far): the first founder's charter (ch, or the default), ratified by the
// others. It records the charter line when there is one.
func (r *runner) found(ctx context.Context, ch *CharterCmd, line Step) {
	start := time.Now()
	r.founded = true
	names, nodes := r.mesh.Live()
	if len(nodes) == 0 {
		return
	}
	charter := authority.Charter{AdmitVoters: true, Threshold: uint8(len(nodes)/2 + 1)}
	if ch != nil {
		charter.Threshold, charter.AdmitVoters = uint8(ch.Threshold), !ch.NoAdmitVoters
	}
	fail := func(format string, args ...any) {
		if ch == nil {
			line = Step{Line: line.Line, Op: "charter", Text: "(the default charter)"}
		}
		r.fail(line, names[0], format, args...)
	}
	if int(charter.Threshold) > len(nodes) {
		fail("threshold=%d exceeds the %d founders", charter.Threshold, len(nodes))
		return
	}
	byName := map[string]authority.ID{}
	for i, n := range nodes {
		charter.Members = append(charter.Members, n.Authority())
		byName[names[i]] = n.Authority()
	}
	if ch != nil {
		for _, v := range ch.Voters {
			id, ok := byName[v]
			if !ok {
				fail("voters=: %s is not a founder", v)
				return
			}
			charter.Voters = append(charter.Voters, id)
		}
	}
	sortIDs(charter.Members)
	sortIDs(charter.Voters)
	first := nodes[0]
	sd, err := node.SignNext(ctx, first.Home(), first, r.clock(), func(d *authority.Declaration) {
		d.Kind, d.Charter = authority.KindCharter, &charter
	})
	if err == nil {
		err = r.waitAgreed(ctx, names[0], sd.ID)
	}
	for i := 1; i < len(nodes) && err == nil; i++ {
		var rt *authority.Signed
		rt, err = r.memberAct(ctx, nodes[i], authority.ActionRatify, sd.ID)
		if err == nil {
			err = r.waitAgreed(ctx, names[i], rt.ID)
		}
	}
	if err != nil {
		fail("found the consortium: %v", err)
		return
	}
	if ch != nil {
		r.record(StepResult{Line: line.Line, Op: line.Op, OK: true, Node: names[0], Got: "charter " + sd.ID.Short() + " active", ElapsedMS: time.Since(start).Milliseconds()})
	}
	voters := "every founder votes"
	if len(charter.Voters) > 0 {
		voters = "voters " + strings.Join(ch.Voters, ", ")
	}
	r.printf("  ✓ charter %s by %s, ratified by the other %d founders: %d members, %s, %d approvals admit or remove  (%d ms)\n",
		sd.ID.Short(), names[0], len(nodes)-1, len(nodes), voters, charter.Threshold, time.Since(start).Milliseconds())
}

func sortIDs(ids []authority.ID) {
	slices.SortFunc(ids, func(x, y authority.ID) int { return bytes.Compare(x[:], y[:]) })
}

// memberAct signs and submits a membership act of n's authority.
func (r *runner) memberAct(ctx context.Context, n *node.Node, a authority.MemberAction, subject authority.ID) (*authority.Signed, error) {
	return node.SignNext(ctx, n.Home(), n, r.clock(), func(d *authority.Declaration) {
		d.Kind, d.Membership = authority.KindMembership, &authority.Membership{Action: a, Subject: subject}
	})
}

// afterAuthorities runs right after a group of authority lines ending
// before steps[j]: the first group founds the consortium (with the charter
// line at steps[j], if there is one, which it consumes); a later group is
// admitted by the members. It returns the index of the next step to run.
func (r *runner) afterAuthorities(ctx context.Context, steps []Step, j int) int {
	if r.founded {
		return j
	}
	var ch *CharterCmd
	line := steps[j-1]
	if j < len(steps) && steps[j].Op == "charter" {
		ch, line = steps[j].Cmd.(*CharterCmd), steps[j]
		if lines := r.narr[line.Line]; len(lines) > 0 {
			r.printf("\n%s\n", strings.Join(lines, "\n"))
		}
		j++
	}
	r.found(ctx, ch, line)
	return j
}

// lateAuthorities starts newcomers' nodes (authority lines after other
// lines): each joins, the members approve it until it is admitted, and its
// genesis is agreed.
func (r *runner) lateAuthorities(ctx context.Context, steps []Step) {
	for _, s := range steps {
		a := s.Cmd.(*AuthorityCmd)
		start := time.Now()
		res := StepResult{Line: s.Line, Op: s.Op, Node: a.Name, Want: "admitted and agreed at every node"}
		err := r.mesh.start(ctx, *a, false, r.mesh.joinAddrs())
		var approvers []string
		if err == nil {
			approvers, err = r.admit(ctx, a.Name)
		}
		if err == nil {
			err = r.waitAgreed(ctx, approvers[0], r.mesh.Node(a.Name).Authority())
		}
		res.ElapsedMS = time.Since(start).Milliseconds()
		if err != nil {
			res.Message, res.Got = err.Error(), "not admitted"
			r.record(res)
			r.printf("  ✗ authority %s: %v\n", a.Name, err)
			continue
		}
		res.OK, res.Got = true, "admitted"
		r.record(res)
		r.printf("  ✓ authority %-14s joined, approved by %s  (%d ms)\n", a.Name, strings.Join(approvers, ", "), res.ElapsedMS)
	}
}

// admit has the members approve name's admission, in start order, until it
// is a member; it returns the approvers.
func (r *runner) admit(ctx context.Context, name string) ([]string, error) {
	id, err := r.mesh.authorityOf(name)
	if err != nil {
		return nil, err
	}
	if err := r.waitHeld(ctx, id); err != nil {
		return nil, err
	}
	var approvers []string
	names, nodes := r.mesh.Counted()
	for i, n := range nodes {
		if state, _ := n.MembershipOf(id); state == node.MemberState {
			return approvers, nil
		}
		if names[i] == name {
			continue
		}
		sd, err := r.memberAct(ctx, n, authority.ActionAdmit, id)
		if err == nil {
			err = r.waitAgreed(ctx, names[i], sd.ID)
		}
		if err != nil {
			return approvers, fmt.Errorf("%s approves %s: %w", names[i], name, err)
		}
		approvers = append(approvers, names[i])
	}
	if len(approvers) > 0 {
		if state, _ := nodes[0].MembershipOf(id); state == node.MemberState {
			return approvers, nil
		}
	}
	return approvers, fmt.Errorf("%s is not a member after the approvals of every member (%s)", name, strings.Join(approvers, ", "))
}

// waitHeld waits until every member's node holds id's admission request.
func (r *runner) waitHeld(ctx context.Context, id authority.ID) error {
	deadline := time.Now().Add(agreeTimeout)
	for {
		names, nodes := r.mesh.Counted()
		var missing []string
		for i, n := range nodes {
			if state, _ := n.MembershipOf(id); state != node.PendingState && state != node.MemberState {
				missing = append(missing, names[i])
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the admission request of %s is not held after %s at: %s", id.Short(), agreeTimeout, strings.Join(missing, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// consortiumStep runs the consortium's ops; false for any other op.
func (r *runner) consortiumStep(ctx context.Context, s Step) bool {
	start := time.Now()
	switch c := s.Cmd.(type) {
	case *CharterCmd:
		// found consumes the charter line right after the founders; the
		// parser allows it nowhere else.
		r.fail(s, "", "a charter comes right after the founders' authority lines")
	case *JoinCmd:
		spec := AuthorityCmd{Name: c.Name, Kind: c.Kind}
		if err := r.mesh.start(ctx, spec, false, r.mesh.joinAddrs()); err != nil {
			r.fail(s, c.Name, "%v", err)
			return true
		}
		id, _ := r.mesh.authorityOf(c.Name)
		if err := r.waitHeld(ctx, id); err != nil {
			r.fail(s, c.Name, "%v", err)
			return true
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Name, Got: "admission request held", ElapsedMS: time.Since(start).Milliseconds()})
		r.printf("  ✓ %s (authority %s) runs a node and asks to join: its genesis is held as an admission request at every member, not stored  (%d ms)\n", c.Name, id.Short(), time.Since(start).Milliseconds())
	case *MemberActCmd:
		r.approve(ctx, s, c, start)
	case *LeaveCmd:
		n := r.liveNode(s, c.Name)
		if n == nil {
			return true
		}
		sd, err := r.memberAct(ctx, n, authority.ActionLeave, n.Authority())
		if err == nil {
			err = r.waitAgreed(ctx, c.Name, sd.ID)
		}
		if err != nil {
			r.fail(s, c.Name, "%v", err)
			return true
		}
		r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Name, Got: "membership " + sd.ID.Short(), ElapsedMS: time.Since(start).Milliseconds()})
		r.printf("  ✓ %s leaves the consortium  (membership %s, agreed in %d ms)\n", c.Name, sd.ID.Short(), time.Since(start).Milliseconds())
	case *ExpectMemberCmd:
		r.expectMember(ctx, s, c)
	default:
		return false
	}
	return true
}

func (r *runner) approve(ctx context.Context, s Step, c *MemberActCmd, start time.Time) {
	n := r.liveNode(s, c.Auth)
	if n == nil {
		return
	}
	id, err := r.mesh.authorityOf(c.Name)
	if err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	action, verb := authority.ActionAdmit, "admitting"
	if c.Remove {
		action, verb = authority.ActionRemove, "removing"
	}
	sd, err := r.memberAct(ctx, n, action, id)
	if err == nil {
		err = r.waitAgreed(ctx, c.Auth, sd.ID)
	}
	if err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	approvals := "the change is made"
	if cs := n.ConsortiumStatus(); cs != nil {
		for _, p := range cs.Pending {
			if p.ID == id && !c.Remove {
				approvals = fmt.Sprintf("%d of %d approvals", len(p.Approvals), p.Threshold)
			}
		}
	}
	r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Auth, Got: "membership " + sd.ID.Short(), ElapsedMS: time.Since(start).Milliseconds()})
	r.printf("  ✓ %s approves %s %s: %s  (membership %s, agreed in %d ms)\n", c.Auth, verb, c.Name, approvals, sd.ID.Short(), time.Since(start).Milliseconds())
}

func (r *runner) expectMember(ctx context.Context, s Step, c *ExpectMemberCmd) {
	// on=all: every member's node and the subject's own (an applicant's or
	// a removed member's node holds no current replica of the others).
	names, nodes, ok := r.targets(s, c.On, func() ([]string, []*node.Node) {
		names, nodes := r.mesh.Counted()
		if n := r.mesh.Node(c.Name); n != nil && !slices.Contains(names, c.Name) {
			names, nodes = append(names, c.Name), append(nodes, n)
		}
		return names, nodes
	})
	if !ok {
		return
	}
	id, err := r.mesh.authorityOf(c.Name)
	if err != nil {
		r.fail(s, "", "%v", err)
		return
	}
	r.printf("  ? %s is %s%s\n", c.Name, c.Status, withinText(c.Within))
	start := time.Now()
	deadline := start.Add(c.Within)
	got := make([]string, len(nodes))
	for {
		all := true
		for i, n := range nodes {
			got[i], _ = n.MembershipOf(id)
			if got[i] == node.MemberState && !n.Agreed(id) {
				got[i] = "admitted, its genesis not agreed yet"
			}
			all = all && got[i] == c.Status
		}
		if all || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(pollInterval)
	}
	elapsed := time.Since(start).Milliseconds()
	for i, name := range names {
		ok := got[i] == c.Status
		res := StepResult{Line: s.Line, Op: s.Op, OK: ok, Want: c.Status, Got: got[i], Node: name, ElapsedMS: elapsed}
		mark := "✓"
		if !ok {
			mark = "✗"
			res.Message = fmt.Sprintf("%s is %s at %s, want %s", c.Name, got[i], name, c.Status)
		}
		r.record(res)
		r.printf("    %s %-14s %s\n", mark, name, got[i])
	}
}
