package authority_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fednode/fednode/authority"
)

// govModel is the naive model of key governance: the current root set and
// threshold, the sets before it, and the delegations, as plain data.
type govModel struct {
	roots     []byte
	k         int
	past      [][]byte
	delegated map[byte]modelDelegation // latest delegation of each op key
	revoked   map[authority.ID]bool    // revoked delegation IDs
	maxIssued int64
}

type modelDelegation struct {
	id       authority.ID
	kinds    []authority.Kind
	nbf, naf int64
}

func (m *govModel) retired(s byte) bool {
	if slices.Contains(m.roots, s) {
		return false
	}
	for _, p := range m.past {
		if slices.Contains(p, s) {
			return true
		}
	}
	return false
}

func (m *govModel) everRoot(s byte) bool { return slices.Contains(m.roots, s) || m.retired(s) }

// want is the model's verdict on a declaration of kind signed by signers
// (distinct) and issued at issued, at the head's next position.
func (m *govModel) want(signers []byte, kind authority.Kind, issued int64) error {
	if len(signers) == 1 {
		if d, ok := m.delegated[signers[0]]; ok {
			switch {
			case m.revoked[d.id], !slices.Contains(d.kinds, kind),
				!inWindowModel(d.nbf, d.naf, issued), issued < m.maxIssued:
				return authority.ErrKeyNotAuthorised
			}
			return nil
		}
	}
	for _, s := range signers {
		if _, op := m.delegated[s]; !op && !m.everRoot(s) {
			return authority.ErrBadSignature
		}
	}
	for _, s := range signers {
		if _, op := m.delegated[s]; op {
			return authority.ErrBadSignature
		}
	}
	for _, s := range signers {
		if m.retired(s) {
			return authority.ErrKeyRotated
		}
	}
	if len(signers) < m.k {
		return authority.ErrThresholdNotMet
	}
	return nil
}

func inWindowModel(nbf, naf, u int64) bool { return (nbf == 0 || u >= nbf) && (naf == 0 || u < naf) }

// TestGovernanceMatchesModel: over random sequences of rotations,
// delegations, revocations of delegations and rules signed by random sets of
// keys, the graph accepts a declaration iff the naive model says its signers
// are a threshold of the current root set (or one authorised operational
// key), and refuses it for the model's reason. VerifySigners agrees on every
// signature verdict.
func TestGovernanceMatchesModel(t *testing.T) {
	rootPool := []byte{70, 71, 72, 73, 74}
	opPool := []byte{76, 77}
	all := append(append(append([]byte{}, rootPool...), opPool...), seedStranger)
	for _, s := range all {
		fixedKey(t, s) // fail early on a bad seed
	}
	windows := [][2]time.Time{{dayAgo, weekAhead}, {dayAhead, weekAhead}, {now.Add(-7 * 24 * time.Hour), dayAgo}}
	issuedAts := []time.Time{now.Add(-3 * time.Hour), now.Add(-time.Hour), now, weekAhead.Add(time.Hour)}
	kinds := []authority.Kind{authority.KindRule, authority.KindCredential, authority.KindRevocation}

	rapid.Check(t, func(rt *rapid.T) {
		set := rapid.SliceOfNDistinct(rapid.SampledFrom(rootPool), 1, 4, rapid.ID[byte]).Draw(rt, "genesis.roots")
		k := rapid.IntRange(1, len(set)).Draw(rt, "genesis.k")
		signers := rapid.SliceOfNDistinct(rapid.SampledFrom(all), 1, 4, rapid.ID[byte]).Draw(rt, "genesis.signers")
		m := &govModel{roots: set, k: k, delegated: map[byte]modelDelegation{}, revoked: map[authority.ID]bool{}}
		g := authority.NewGraph()

		// The genesis, judged by the model of its own keys.
		c := newGov(rt, "prop", uint8(k), set, signers...)
		var want error
		for _, s := range signers {
			if !slices.Contains(set, s) {
				want = authority.ErrBadSignature
			}
		}
		if want == nil && len(signers) < k {
			want = authority.ErrThresholdNotMet
		}
		if err := g.Apply(c.genesis); !errors.Is(err, want) || (want == nil) != (err == nil) {
			rt.Fatalf("genesis %d of %v signed by %v: Apply = %v, model %v", k, set, signers, err, want)
		}
		if want != nil {
			c = newGov(rt, "prop", uint8(k), set, set...)
			if err := g.Apply(c.genesis); err != nil {
				rt.Fatalf("genesis by every root key: %v", err)
			}
		}
		m.maxIssued = c.genesis.Decl.IssuedAt

		for i := range rapid.IntRange(1, 12).Draw(rt, "steps") {
			l := fmt.Sprintf("step%d", i)
			// Signers are mostly current root keys, so that the threshold,
			// not an unknown key, is what usually decides; sometimes any
			// keys at all, or current ones plus one other.
			var signers []byte
			switch rapid.IntRange(0, 3).Draw(rt, l+".who") {
			case 0:
				signers = rapid.SliceOfNDistinct(rapid.SampledFrom(all), 1, 4, rapid.ID[byte]).Draw(rt, l+".signers")
			case 1:
				signers = rapid.SliceOfNDistinct(rapid.SampledFrom(m.roots), 1, len(m.roots), rapid.ID[byte]).Draw(rt, l+".signers")
				if extra := rapid.SampledFrom(all).Draw(rt, l+".extra"); !slices.Contains(signers, extra) {
					signers = append(signers, extra)
				}
			default:
				signers = rapid.SliceOfNDistinct(rapid.SampledFrom(m.roots), 1, len(m.roots), rapid.ID[byte]).Draw(rt, l+".signers")
			}
			var d authority.Declaration
			var reuse bool // the model's ErrKeyReuse, judged after the signatures
			action := rapid.SampledFrom([]string{"rotate", "delegate", "revoke", "rule", "oprule"}).Draw(rt, l+".action")
			switch action {
			case "rotate":
				pool := rootPool
				if rapid.IntRange(0, 4).Draw(rt, l+".withop") == 0 {
					pool = append(slices.Clone(rootPool), opPool...)
				}
				nset := rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 1, 4, rapid.ID[byte]).Draw(rt, l+".roots")
				nk := rapid.IntRange(1, len(nset)).Draw(rt, l+".k")
				d = rotationDecl(rt, uint8(nk), nset...)
				for _, s := range nset {
					_, op := m.delegated[s]
					reuse = reuse || op
				}
			case "delegate":
				op := rapid.SampledFrom(opPool).Draw(rt, l+".op")
				if rapid.IntRange(0, 4).Draw(rt, l+".rootkey") == 0 {
					op = rapid.SampledFrom(rootPool).Draw(rt, l+".op")
				}
				ks := rapid.SliceOfNDistinct(rapid.SampledFrom(kinds), 1, 3, rapid.ID[authority.Kind]).Draw(rt, l+".kinds")
				slices.Sort(ks)
				win := rapid.SampledFrom(windows).Draw(rt, l+".window")
				d = delegationDecl(rt, op, ks, win[0], win[1])
				reuse = m.everRoot(op)
			case "revoke":
				target := authority.ID{byte(i) + 1}
				ops := make([]byte, 0, len(m.delegated))
				for s := range m.delegated {
					ops = append(ops, s)
				}
				slices.Sort(ops)
				if len(ops) > 0 {
					target = m.delegated[rapid.SampledFrom(ops).Draw(rt, l+".target")].id
				}
				d = authority.Declaration{Kind: authority.KindRevocation, Revocation: &authority.Revocation{Target: target}}
			case "rule", "oprule":
				d = ruleDecl(c.id(), "*")
				if action == "oprule" {
					signers = []byte{rapid.SampledFrom(append(slices.Clone(opPool), m.roots...)).Draw(rt, l+".opsigner")}
					d.IssuedAt = unix(rapid.SampledFrom(issuedAts).Draw(rt, l+".issued"))
				}
			}
			head := c.snapshot()
			s := c.next(rt, d, signers...)
			want := m.want(signers, s.Decl.Kind, s.Decl.IssuedAt)
			if want == nil && d.Kind == authority.KindRevocation && len(signers) == 1 {
				if _, isOp := m.delegated[signers[0]]; isOp {
					for _, dl := range m.delegated {
						if dl.id == d.Revocation.Target {
							want = authority.ErrKeyNotAuthorised // an op key revoking a delegation
						}
					}
				}
			}
			sigWant := want
			if want == nil && reuse {
				want = authority.ErrKeyReuse
			}
			if err := authority.VerifySigners(g, s); !errors.Is(err, sigWant) || (sigWant == nil) != (err == nil) {
				if !(sigWant == authority.ErrKeyNotAuthorised && err == nil && d.Kind == authority.KindRevocation) { // a View cannot tell a delegation
					rt.Fatalf("%s %v by %v: VerifySigners = %v, model %v", l, d.Kind, signers, err, sigWant)
				}
			}
			err := g.Apply(s)
			if !errors.Is(err, want) || (want == nil) != (err == nil) {
				rt.Fatalf("%s %v by %v (roots %v k=%d, past %v, ops %v): Apply = %v, model %v",
					l, d.Kind, signers, m.roots, m.k, m.past, m.delegated, err, want)
			}
			if err != nil {
				c.restore(head)
				continue
			}
			m.maxIssued = max(m.maxIssued, s.Decl.IssuedAt)
			switch d.Kind {
			case authority.KindRotation:
				m.past = append(m.past, m.roots)
				m.roots, m.k = nil, int(d.Rotation.Threshold)
				for _, pk := range d.Rotation.RootKeys {
					for _, seed := range all {
						if pkEqual(pk, fixedKey(rt, seed).Public()) {
							m.roots = append(m.roots, seed)
						}
					}
				}
			case authority.KindDelegation:
				for _, seed := range all {
					if pkEqual(d.Delegation.Key, fixedKey(rt, seed).Public()) {
						m.delegated[seed] = modelDelegation{id: s.ID, kinds: d.Delegation.Kinds, nbf: d.Delegation.NotBefore, naf: d.Delegation.NotAfter}
					}
				}
			case authority.KindRevocation:
				m.revoked[d.Revocation.Target] = true
			}
			a, _ := g.Authority(c.id())
			if a.Threshold != m.k || len(a.RootKeys) != len(m.roots) || len(a.Roots) != len(m.past)+1 {
				rt.Fatalf("%s: graph has %d of %d keys in %d sets, model %d of %v after %v", l, a.Threshold, len(a.RootKeys), len(a.Roots), m.k, m.roots, m.past)
			}
		}
	})
}
