package testnet

// The runner's half of rotate, equivocate, expect-evidence and credential
// signed-by=/signatures= (scenario_equiv.go). The runner holds each
// authority's root keys: the home's at first, then the ones each rotate
// step makes; it signs the authority's declarations with the current set.
// The node's home on disk keeps the keys it was made with (re-keying a
// home after a rotation is `fednode rotate`'s business): what the node
// signs itself (checkpoints, receipts, bundles) stays under the old key.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// rootSet is one root key set the runner signs with.
type rootSet struct {
	keys      []*authority.PrivateKey
	threshold int
}

// rootSets are an authority's root sets, oldest first. Invariant: non-empty.
type rootSets []rootSet

func (rs rootSets) current() rootSet { return rs[len(rs)-1] }

// roots returns name's root sets, starting from its home's keys.
func (r *runner) roots(name string) (rootSets, error) {
	if rs, ok := r.keys[name]; ok {
		return rs, nil
	}
	h, err := r.mesh.Home(name)
	if err != nil {
		return nil, err
	}
	rs := rootSets{{keys: h.Roots, threshold: h.Threshold}}
	if r.keys == nil {
		r.keys = map[string]rootSets{}
	}
	r.keys[name] = rs
	return rs, nil
}

// signers are the keys that sign name's root declarations after a rotate
// step (the current set's threshold), or nil for the home's own.
func (r *runner) signers(name string) ([]*authority.PrivateKey, error) {
	rs, ok := r.keys[name]
	if !ok {
		return nil, nil
	}
	cur := rs.current()
	if len(cur.keys) < cur.threshold {
		return nil, fmt.Errorf("testnet: %s's root set has %d keys, its threshold is %d", name, len(cur.keys), cur.threshold)
	}
	return cur.keys[:cur.threshold], nil
}

// sign signs d, a root declaration of name, with the current root set's
// threshold: the home's keys until a rotate step.
func (r *runner) sign(name string, d authority.Declaration) (*authority.Signed, error) {
	keys, err := r.signers(name)
	if err != nil {
		return nil, err
	}
	if keys != nil {
		return authority.SignMulti(d, keys...)
	}
	h, err := r.mesh.Home(name)
	if err != nil {
		return nil, err
	}
	return h.Sign(d)
}

// signNext is node.SignNext with the runner's keys for name: under the
// home's signing lock, at the next position n reports, submitted to n.
func (r *runner) signNext(ctx context.Context, name string, n *node.Node, now time.Time, build func(d *authority.Declaration)) (*authority.Signed, error) {
	keys, err := r.signers(name)
	if err != nil {
		return nil, err
	}
	return node.SignNextWith(ctx, n.Home(), n, now, build, node.SignOptions{Keys: keys})
}

// credentialKeys returns the keys that sign a root credential of c.Issuer,
// or nil for the home's threshold (h.Sign), and a note for the narration.
func (r *runner) credentialKeys(c *CredentialCmd) ([]*authority.PrivateKey, string, error) {
	if c.SignedBy == "" && c.Signatures == 0 {
		if _, rotated := r.keys[c.Issuer]; !rotated {
			return nil, "", nil
		}
	}
	rs, err := r.roots(c.Issuer)
	if err != nil {
		return nil, "", err
	}
	set, which := rs.current(), "current"
	if c.SignedBy == SignedByOld {
		if len(rs) < 2 {
			return nil, "", fmt.Errorf("signed-by=old: %s has not rotated its root in this scenario, so it has no retired keys", c.Issuer)
		}
		set, which = rs[len(rs)-2], "retired"
	}
	k := set.threshold
	if c.Signatures > 0 {
		k = c.Signatures
	}
	if k > len(set.keys) {
		return nil, "", fmt.Errorf("signatures=%d: %s's %s root set has %d keys", k, c.Issuer, which, len(set.keys))
	}
	note := ""
	if c.SignedBy != "" || c.Signatures != 0 || which != "current" {
		note = fmt.Sprintf(", signed by %d of %s's %s root keys (threshold %d)", k, c.Issuer, which, set.threshold)
	}
	return set.keys[:k], note, nil
}

// rotate has AUTH's current root threshold sign a rotation to fresh keys.
func (r *runner) rotate(ctx context.Context, s Step, c *RotateCmd) {
	start := time.Now()
	n := r.liveNode(s, c.Auth)
	if n == nil {
		return
	}
	rs, err := r.roots(c.Auth)
	if err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	cur := rs.current()
	keys, threshold := c.Keys, c.Threshold
	if keys == 0 {
		keys = len(cur.keys)
	}
	if threshold == 0 {
		threshold = min(cur.threshold, keys)
	}
	if threshold > keys {
		r.fail(s, c.Auth, "threshold=%d exceeds the %d keys of the new set (give keys=N)", threshold, keys)
		return
	}
	alg := cur.keys[0].Alg()
	next := rootSet{threshold: threshold}
	pubs := make([]authority.PublicKey, keys)
	for i := range keys {
		k, err := authority.GenerateKey(alg, rand.Reader)
		if err != nil {
			r.fail(s, c.Auth, "generate a root key: %v", err)
			return
		}
		next.keys, pubs[i] = append(next.keys, k), k.Public()
	}
	// The current set signs (signNext uses it): only its threshold can
	// name the next root.
	sd, err := r.signNext(ctx, c.Auth, n, r.clock(), func(d *authority.Declaration) {
		d.Kind, d.Rotation = authority.KindRotation, &authority.Rotation{RootKeys: pubs, Threshold: uint8(threshold)}
	})
	if err == nil {
		err = r.waitAgreed(ctx, c.Auth, sd.ID)
	}
	if err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	r.keys[c.Auth] = append(rs, next)
	r.declared = append(r.declared, sd.ID)
	// Install the new set in the node's home too, as `fednode rotate`
	// does: the node signs its checkpoints, receipts and bundles with its
	// current root key, and a restart loads the home from disk.
	if err := installRotation(n, next, threshold, sd); err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Auth, Got: "rotation " + sd.ID.Short(), ElapsedMS: time.Since(start).Milliseconds()})
	r.printf("  ✓ %s rotates its root: %d-of-%d %s keys → %d-of-%d fresh ones, signed by the current threshold  (rotation %s at seq %d, agreed at every node in %d ms); the retired keys sign nothing new\n",
		c.Auth, cur.threshold, len(cur.keys), alg, threshold, keys, sd.ID.Short(), sd.Decl.Seq, time.Since(start).Milliseconds())
}

// equivocate makes AUTH sign two different rules at its next position and
// submits them at once at AUTH's node and at another live node it can
// reach, then waits until the chain holds one of them everywhere (so the
// next step signs after it). Either submission may be refused as a
// conflict: the node keeps the pair as evidence all the same.
func (r *runner) equivocate(ctx context.Context, s Step, c *EquivocateCmd) {
	start := time.Now()
	n := r.liveNode(s, c.Auth)
	if n == nil {
		return
	}
	other, otherName := n, c.Auth
	names, nodes := r.mesh.Reachable(c.Auth)
	for i, m := range nodes {
		if names[i] != c.Auth {
			other, otherName = m, names[i]
			break
		}
	}
	h := n.Home()
	unlock, err := h.LockSigning()
	if err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	defer unlock()
	head, err := n.Head(ctx, h.Authority.String())
	if err != nil {
		r.fail(s, c.Auth, "%v", err)
		return
	}
	var pair [2]*authority.Signed
	for i, half := range []string{"a", "b"} {
		pair[i], err = r.sign(c.Auth, authority.Declaration{
			Kind: authority.KindRule, Authority: h.Authority, Seq: head.Head + 1, Prev: head.HeadID, IssuedAt: r.clock().Unix(),
			Rule: &authority.Rule{Source: h.Authority, Subjects: "*", Resources: fmt.Sprintf("equivocation://%d/%s", s.Line, half), Actions: []string{"read"}},
		})
		if err != nil {
			r.fail(s, c.Auth, "sign: %v", err)
			return
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, at := range []*node.Node{n, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = at.Submit(ctx, pair[i].Raw)
		}()
	}
	wg.Wait()
	var refused []string
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, node.ErrConflict):
			refused = append(refused, fmt.Sprintf("%s refused at %s as a conflict", pair[i].ID.Short(), []string{c.Auth, otherName}[i]))
		default:
			r.fail(s, c.Auth, "submit %s: %v", pair[i].ID.Short(), err)
			return
		}
	}
	deadline := time.Now().Add(agreeTimeout)
	var held *authority.Signed
	for held == nil {
		_, reach := r.mesh.Reachable(c.Auth)
		for _, sd := range pair {
			all := true
			for _, m := range reach {
				all = all && m.Agreed(sd.ID)
			}
			if all {
				held = sd
			}
		}
		if held != nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.fail(s, c.Auth, "neither %s nor %s is agreed at every node after %s", pair[0].ID.Short(), pair[1].ID.Short(), agreeTimeout)
			return
		}
		time.Sleep(pollInterval)
	}
	r.declared = append(r.declared, held.ID)
	note := ""
	if len(refused) > 0 {
		note = " (" + strings.Join(refused, "; ") + ")"
	}
	r.record(StepResult{Line: s.Line, Op: s.Op, OK: true, Node: c.Auth, Got: fmt.Sprintf("%s and %s at seq %d; the chain holds %s", pair[0].ID.Short(), pair[1].ID.Short(), head.Head+1, held.ID.Short()), ElapsedMS: time.Since(start).Milliseconds()})
	r.printf("  ✓ %s signs two different rules at seq %d: %s submitted at %s, %s at %s%s; the chain keeps %s  (%d ms)\n",
		c.Auth, head.Head+1, pair[0].ID.Short(), c.Auth, pair[1].ID.Short(), otherName, note, held.ID.Short(), time.Since(start).Milliseconds())
}

// expectEvidence checks that each named node's agreed graph holds evidence
// against AUTH, polling up to within.
func (r *runner) expectEvidence(ctx context.Context, s Step, c *ExpectEvidenceCmd) {
	names, nodes, ok := r.targets(s, c.On, r.mesh.Live)
	if !ok {
		return
	}
	var id authority.ID
	if h, err := r.mesh.Home(c.Auth); err == nil {
		id = h.Authority
	}
	r.printf("  ? every node named holds evidence that %s equivocated%s\n", c.Auth, withinText(c.Within))
	start := time.Now()
	deadline := start.Add(c.Within)
	type outcome struct {
		ev      []node.EquivocationStatus
		ok      bool
		elapsed time.Duration
	}
	outs := make([]outcome, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var ev []node.EquivocationStatus
				for _, e := range n.Status().Equivocations {
					if e.Authority == id && e.Agreed {
						ev = append(ev, e)
					}
				}
				outs[i] = outcome{ev: ev, ok: len(ev) > 0, elapsed: time.Since(start)}
				if outs[i].ok || time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				time.Sleep(pollInterval)
			}
		}()
	}
	wg.Wait()
	for i, o := range outs {
		res := StepResult{Line: s.Line, Op: s.Op, OK: o.ok, Want: "evidence against " + c.Auth, Node: names[i], ElapsedMS: o.elapsed.Milliseconds()}
		if o.ok {
			e := o.ev[0]
			res.Got = fmt.Sprintf("%d proof(s): seq %d, %s and %s", len(o.ev), e.Seq, e.IDs[0].Short(), e.IDs[1].Short())
			r.printf("    ✓ %-14s %s  (%d ms)\n", names[i], res.Got, res.ElapsedMS)
		} else {
			res.Got, res.Message = "none", fmt.Sprintf("%s's agreed graph holds no evidence against %s", names[i], c.Auth)
			r.printf("    ✗ %-14s no evidence against %s\n", names[i], c.Auth)
		}
		r.record(res)
	}
}

// installRotation stages and commits the accepted rotation sd of next's
// keys in n's home and makes the running node reload them.
func installRotation(n *node.Node, next rootSet, threshold int, sd *authority.Signed) error {
	h := n.Home()
	st := &node.StagedRotation{Keys: next.keys, Threshold: threshold}
	if err := h.StageSigned(st, sd); err != nil {
		return fmt.Errorf("testnet: stage the rotation in %s's home: %w", h.Config.Name, err)
	}
	if _, err := h.CommitRotation(); err != nil {
		return fmt.Errorf("testnet: install the rotated keys in %s's home: %w", h.Config.Name, err)
	}
	if err := n.ReloadKeys(); err != nil {
		return fmt.Errorf("testnet: reload %s's keys: %w", h.Config.Name, err)
	}
	return nil
}
