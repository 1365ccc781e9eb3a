package authority_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// graphState is what an Apply may change; a refused Apply must change none of it.
type graphState struct {
	version uint64
	order   []authority.ID
	heads   map[authority.ID]head
	rules   map[authority.ID]int
}

type head struct {
	seq uint64
	id  authority.ID
}

func stateOf(g *authority.Graph) graphState {
	st := graphState{version: g.Version(), order: slices.Clone(g.Order()), heads: map[authority.ID]head{}, rules: map[authority.ID]int{}}
	for _, a := range g.Authorities() {
		st.heads[a.ID] = head{a.Head, a.HeadID}
		st.rules[a.ID] = len(g.RulesFor(a.ID))
	}
	return st
}

func (s graphState) equal(o graphState) bool {
	if s.version != o.version || !slices.Equal(s.order, o.order) || len(s.heads) != len(o.heads) {
		return false
	}
	for id, h := range s.heads {
		if o.heads[id] != h || o.rules[id] != s.rules[id] {
			return false
		}
	}
	return true
}

func TestGraphApply(t *testing.T) {
	tests := []struct {
		name string
		// build returns the declaration to apply against w (w may be
		// changed first, for example by applying earlier declarations).
		build func(t *testing.T, w *world) *authority.Signed
		want  error // nil: accepted
	}{
		{
			name: "rule after genesis",
			build: func(t *testing.T, w *world) *authority.Signed {
				return w.azure.rule(t, w.aws.id(), "*", "*", []string{"read"}, time.Time{}, time.Time{})
			},
		},
		{
			name: "revocation of an unknown id is accepted",
			build: func(t *testing.T, w *world) *authority.Signed {
				return w.azure.revoke(t, authority.ID{7})
			},
		},
		{
			name: "a second authority with the same name",
			build: func(t *testing.T, w *world) *authority.Signed {
				return newChain(t, "aws-prod", seedImpostor).genesis
			},
		},
		{
			name:  "genesis duplicate",
			build: func(t *testing.T, w *world) *authority.Signed { return w.aws.genesis },
			want:  authority.ErrDuplicate,
		},
		{
			name: "rule duplicate",
			build: func(t *testing.T, w *world) *authority.Signed {
				return w.etlRule(t)
			},
			want: authority.ErrDuplicate,
		},
		{
			name: "rule before its authority's genesis",
			build: func(t *testing.T, w *world) *authority.Signed {
				gcp := newChain(t, "gcp-data", seedGCP)
				return gcp.rule(t, w.aws.id(), "*", "*", []string{"read"}, time.Time{}, time.Time{})
			},
			want: authority.ErrUnknownAuthority,
		},
		{
			name: "gap: seq 3 when head is 1",
			build: func(t *testing.T, w *world) *authority.Signed {
				w.etlRule(t)                              // head 1
				w.azure.revoke(t, authority.ID{1})        // seq 2, never applied
				return w.azure.revoke(t, authority.ID{2}) // seq 3
			},
			want: authority.ErrGap,
		},
		{
			name: "conflict: two different declarations at the same seq",
			build: func(t *testing.T, w *world) *authority.Signed {
				genesis := w.azure.headID
				w.etlRule(t)
				w.azure.head, w.azure.headID = 0, genesis // fork the signer
				return w.azure.rule(t, w.aws.id(), "*", "*", []string{"write"}, time.Time{}, time.Time{})
			},
			want: authority.ErrConflict,
		},
		{
			name: "conflict: wrong prev",
			build: func(t *testing.T, w *world) *authority.Signed {
				w.etlRule(t)
				w.azure.headID = w.azure.id() // seq 2 but prev names the genesis
				return w.azure.revoke(t, authority.ID{1})
			},
			want: authority.ErrConflict,
		},
		{
			name: "bad signature: rule signed by another authority's key",
			build: func(t *testing.T, w *world) *authority.Signed {
				w.azure.key = w.aws.key
				return w.azure.rule(t, w.aws.id(), "*", "*", []string{"read"}, time.Time{}, time.Time{})
			},
			want: authority.ErrBadSignature,
		},
		{
			name: "bad signature: a forged declaration at a held seq is not a conflict",
			build: func(t *testing.T, w *world) *authority.Signed {
				genesis := w.azure.headID
				w.etlRule(t)
				w.azure.head, w.azure.headID = 0, genesis
				w.azure.key = fixedKey(t, seedStranger)
				return w.azure.rule(t, w.aws.id(), "*", "*", []string{"write"}, time.Time{}, time.Time{})
			},
			want: authority.ErrBadSignature,
		},
		{
			name: "bad signature: genesis whose signature does not match its own keys",
			build: func(t *testing.T, w *world) *authority.Signed {
				d := newChain(t, "gcp-data", seedGCP).genesis.Decl
				return mustSign(t, d, fixedKey(t, seedStranger))
			},
			want: authority.ErrBadSignature,
		},
		{
			name: "off-chain: credential",
			build: func(t *testing.T, w *world) *authority.Signed {
				return w.etlCredential(t)
			},
			want: authority.ErrOffChain,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			s := tt.build(t, w)
			before := stateOf(w.g)
			if err := w.g.Check(s); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			if !stateOf(w.g).equal(before) {
				t.Fatal("Check changed the graph")
			}
			err := w.g.Apply(s)
			t.Logf("Apply: %v", err)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Apply = %v, want %v", err, tt.want)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "authority: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				if !stateOf(w.g).equal(before) {
					t.Fatalf("refused Apply changed the graph: %+v -> %+v", before, stateOf(w.g))
				}
				if !errors.Is(err, authority.ErrDuplicate) && w.g.Has(s.ID) {
					t.Errorf("Has(refused %s) = true", s.ID.Short())
				}
				return
			}
			if got := w.g.Version(); got != before.version+1 {
				t.Errorf("version %d after an accepted Apply, want %d", got, before.version+1)
			}
			if !w.g.Has(s.ID) {
				t.Errorf("Has(accepted %s) = false", s.ID.Short())
			}
			if o := w.g.Order(); o[len(o)-1] != s.ID {
				t.Errorf("last in order is %s, want %s", o[len(o)-1].Short(), s.ID.Short())
			}
			// Applying the same declaration again is harmless.
			if err := w.g.Apply(s); !errors.Is(err, authority.ErrDuplicate) {
				t.Errorf("second Apply = %v, want ErrDuplicate", err)
			}
		})
	}
}

// TestGraphForgedWrongPrev: a declaration whose prev is wrong and whose
// signature is forged proves nothing about its issuer, so it must not be
// reported as ErrConflict (which callers treat as equivocation). Check verifies
// before calling a held position a conflict; the wrong-prev path must too.
func TestGraphForgedWrongPrev(t *testing.T) {
	w := newWorld(t)
	w.etlRule(t)
	w.azure.headID = w.azure.id()           // seq 2, prev names the genesis: wrong
	w.azure.key = fixedKey(t, seedStranger) // and not azure's key
	s := w.azure.revoke(t, authority.ID{1})
	err := w.g.Apply(s)
	if errors.Is(err, authority.ErrConflict) || !errors.Is(err, authority.ErrBadSignature) {
		t.Fatalf("Apply = %v, want ErrBadSignature (an unsigned claim is no conflict)", err)
	}
}

func TestGraphState(t *testing.T) {
	w := newWorld(t)
	r := w.etlRule(t)
	rev := w.apply(t, w.azure.revoke(t, r.ID))
	foreign := w.apply(t, w.aws.revoke(t, r.ID))

	if got, want := w.g.Order(), []authority.ID{w.aws.id(), w.azure.id(), r.ID, rev.ID, foreign.ID}; !slices.Equal(got, want) {
		t.Errorf("order = %s, want %s", fmtIDs(got), fmtIDs(want))
	}
	a, ok := w.g.Authority(w.azure.id())
	if !ok || a.Name != "azure-corp" || a.Kind != "azure" || a.Head != 2 || a.HeadID != rev.ID || a.Threshold != 1 || len(a.RootKeys) != 1 {
		t.Errorf("azure-corp = %+v, %v", a, ok)
	}
	a, _ = w.g.Authority(w.aws.id())
	if a.Head != 1 || a.HeadID != foreign.ID {
		t.Errorf("aws-prod head %d %s, want 1 %s", a.Head, a.HeadID.Short(), foreign.ID.Short())
	}
	rules := w.g.RulesFor(w.azure.id())
	if len(rules) != 1 || rules[0].ID != r.ID || rules[0].Target != w.azure.id() || rules[0].Seq != 1 || rules[0].Rule.Subjects != etlPattern {
		t.Errorf("rules = %+v", rules)
	}
	if got, ok := w.g.RevokedBy(r.ID, w.azure.id()); !ok || got != rev.ID {
		t.Errorf("RevokedBy(rule, azure) = %s, %v", got.Short(), ok)
	}
	// aws-prod's "revocation" of azure-corp's rule is recorded under aws-prod.
	if got, ok := w.g.RevokedBy(r.ID, w.aws.id()); !ok || got != foreign.ID {
		t.Errorf("RevokedBy(rule, aws) = %s, %v", got.Short(), ok)
	}
	if _, ok := w.g.RevokedBy(w.aws.id(), w.aws.id()); ok {
		t.Error("aws-prod is revoked")
	}
	for _, s := range []*authority.Signed{w.aws.genesis, r, rev} {
		if err := w.g.VerifySignature(s); err != nil {
			t.Errorf("VerifySignature(%v) = %v", s.Decl.Kind, err)
		}
	}
	forged := mustSign(t, r.Decl, w.aws.key)
	if err := w.g.VerifySignature(forged); !errors.Is(err, authority.ErrBadSignature) {
		t.Errorf("VerifySignature(forged) = %v, want ErrBadSignature", err)
	}
	stray := newChain(t, "gcp-data", seedGCP).revoke(t, authority.ID{1})
	if err := w.g.VerifySignature(stray); !errors.Is(err, authority.ErrUnknownAuthority) {
		t.Errorf("VerifySignature(unknown issuer) = %v, want ErrUnknownAuthority", err)
	}
}

// TestGraphAuthoritiesOrder: Authorities is documented to return authorities
// "in acceptance order of their genesis".
func TestGraphAuthoritiesOrder(t *testing.T) {
	g := authority.NewGraph()
	var want []authority.ID
	for i, name := range []string{"zeta", "alpha", "mid"} {
		c := newChain(t, name, byte(10+i))
		if err := g.Apply(c.genesis); err != nil {
			t.Fatal(err)
		}
		want = append(want, c.id())
	}
	var got []authority.ID
	for _, a := range g.Authorities() {
		got = append(got, a.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Authorities() order = %s, want acceptance order %s", fmtIDs(got), fmtIDs(want))
	}
}

func TestResolveAuthority(t *testing.T) {
	w := newWorld(t)
	impostor := newChain(t, "azure-corp", seedImpostor)
	w.apply(t, impostor.genesis)
	tests := []struct {
		name    string
		in      string
		want    authority.ID
		wantErr error  // sentinel, if any
		errHas  string // substring of the error, if any
	}{
		{name: "by name", in: "aws-prod", want: w.aws.id()},
		{name: "by hex id", in: w.aws.id().String(), want: w.aws.id()},
		{name: "by hex id of an ambiguous name", in: impostor.id().String(), want: impostor.id()},
		{name: "unknown name", in: "gcp-data", wantErr: authority.ErrUnknownAuthority, errHas: "gcp-data"},
		{name: "unknown id", in: newChain(t, "gcp-data", seedGCP).id().String(), wantErr: authority.ErrUnknownAuthority},
		{name: "empty", in: "", wantErr: authority.ErrUnknownAuthority},
		{name: "ambiguous name", in: "azure-corp", errHas: "ambiguous"},
		{name: "upper-case hex is an id", in: strings.ToUpper(w.aws.id().String()), want: w.aws.id()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := authority.ResolveAuthority(w.g, tt.in)
			t.Logf("%s, %v", got.Short(), err)
			if tt.wantErr == nil && tt.errHas == "" {
				if err != nil || got != tt.want {
					t.Fatalf("= %s, %v; want %s", got.Short(), err, tt.want.Short())
				}
				return
			}
			if err == nil {
				t.Fatalf("= %s, nil; want an error", got.Short())
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.errHas) || !strings.HasPrefix(err.Error(), "authority: ") {
				t.Errorf("error %q: want prefix %q and %q in it", err, "authority: ", tt.errHas)
			}
		})
	}
}
