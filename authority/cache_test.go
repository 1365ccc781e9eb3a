package authority_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// coldWarm decides req cold (no cache) and through c, and fails unless the
// two decisions are identical in every field. It returns the decision and
// whether c answered from a cached chain.
func coldWarm(t *testing.T, v authority.View, c *authority.Cache, req authority.Request, opts ...authority.Option) (authority.Decision, bool) {
	t.Helper()
	cold := authority.Verify(v, req, opts...)
	before := c.Stats().Hits
	warm := authority.Verify(v, req, append(opts, authority.WithCache(c))...)
	hit := c.Stats().Hits > before
	if !reflect.DeepEqual(cold, warm) {
		t.Fatalf("cached decision (hit %v) differs from the cold one:\ncold %+v\nwarm %+v", hit, cold, warm)
	}
	return cold, hit
}

// TestCacheWarmEqualsCold: a decision through the verified-chain cache is
// the cold decision, field for field, for every chain fixture (each judged
// twice through one cache that all fixtures share, so the second is
// answered from the cache where the first verified the whole chain), and
// after the graph, the time, the challenge or the request change under a
// cached chain.
func TestCacheWarmEqualsCold(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "chains", "*.cbor"))
	if len(paths) < 20 {
		t.Fatalf("only %d chain fixtures", len(paths))
	}
	shared := authority.NewCache(0, 0)
	hits := 0
	for _, p := range paths {
		t.Run("fixture/"+filepath.Base(p), func(t *testing.T) {
			sc, g := loadScenario(t, p)
			first, _ := coldWarm(t, g, shared, sc.request(), sc.options()...)
			d, hit := coldWarm(t, g, shared, sc.request(), sc.options()...)
			if d.Reason != sc.Reason {
				t.Fatalf("reason %q (%s), want %q", d.Reason, d.Message, sc.Reason)
			}
			if hit {
				hits++
			}
			if first.Allow && !hit {
				t.Errorf("an allowed chain was not answered from the cache the second time")
			}
		})
	}
	if hits < 10 {
		t.Errorf("only %d fixtures were answered from the cache: the comparison proves little", hits)
	}

	type world struct {
		v    authority.View
		req  authority.Request
		opts []authority.Option
		// change alters the world under the cached chain.
		change func(t *testing.T)
	}
	at := authority.WithTime(now)
	tests := []struct {
		name string
		// build returns a world where the request is allowed.
		build func(t *testing.T) *world
		want  authority.Reason
	}{
		{name: "revocation of an intermediate delegation link",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				root, child, leaf := delegation3(t, s, nil)
				w := &world{v: s.g, req: s.request(leaf, child, root), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { s.revoke(s.aws, child.ID) }
				return w
			}, want: authority.ReasonRevoked},
		{name: "revocation of the target's rule",
			build: func(t *testing.T) *world {
				s := newSB(t)
				_, ra := twoHop(s, nil, nil)
				root, child, leaf := delegation3(t, s, nil)
				w := &world{v: s.g, req: s.request(leaf, child, root), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { s.revoke(s.azure, ra.ID) }
				return w
			}, want: authority.ReasonRevoked},
		{name: "the issuer revokes itself",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				root, child, leaf := delegation3(t, s, nil)
				w := &world{v: s.g, req: s.request(leaf, child, root), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { s.revoke(s.aws, s.aws.id()) }
				return w
			}, want: authority.ReasonRevoked},
		{name: "judged after the leaf expired",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				root, child, leaf := delegation3(t, s, nil)
				w := &world{v: s.g, req: s.request(leaf, child, root), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { w.opts = []authority.Option{authority.WithTime(now.Add(45 * time.Minute))} }
				return w
			}, want: authority.ReasonExpired},
		{name: "judged before the chain is valid",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				root, child, leaf := delegation3(t, s, nil)
				w := &world{v: s.g, req: s.request(leaf, child, root), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { w.opts = []authority.Option{authority.WithTime(now.Add(-2 * hour))} }
				return w
			}, want: authority.ReasonNotYetValid},
		{name: "a resource outside the leaf's scope",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				root, child, leaf := delegation3(t, s, nil)
				w := &world{v: s.g, req: s.request(leaf, child, root), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { w.req.Resource = "blob://corp-data/q4-report" }
				return w
			}, want: authority.ReasonResourceNotAllowed},
		{name: "an action outside the leaf's scope",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				root, child, leaf := delegation3(t, s, nil)
				w := &world{v: s.g, req: s.request(leaf, child, root), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { w.req.Action = "write" }
				return w
			}, want: authority.ReasonActionNotAllowed},
		{name: "another target",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				root, child, leaf := delegation3(t, s, nil)
				w := &world{v: s.g, req: s.request(leaf, child, root), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { w.req.Target = s.okta.id() }
				return w
			}, want: authority.ReasonNoRule},
		{name: "proof of possession answering another challenge",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				cred := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
				req := s.request(cred)
				req.PoP = proof(t, cred, s.azure.id(), challenge, seedHolder1)
				w := &world{v: s.g, req: req, opts: []authority.Option{at, authority.WithChallenge(challenge)}}
				w.change = func(t *testing.T) {
					w.opts = []authority.Option{at, authority.WithChallenge([]byte("the next challenge"))}
				}
				return w
			}, want: authority.ReasonProofOfPossession},
		{name: "proof of possession dropped",
			build: func(t *testing.T) *world {
				s := newSB(t)
				twoHop(s, nil, nil)
				cred := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
				req := s.request(cred)
				req.PoP = proof(t, cred, s.azure.id(), challenge, seedHolder1)
				w := &world{v: s.g, req: req, opts: []authority.Option{at, authority.WithChallenge(challenge)}}
				w.change = func(t *testing.T) { w.req.PoP = nil }
				return w
			}, want: authority.ReasonProofOfPossession},
		{name: "rotation retiring the root keys that signed",
			build: func(t *testing.T) *world {
				gw := newGovWorld(t)
				cred := gw.root.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour), seedR1, seedR2)
				w := &world{v: gw.g, req: gw.request(cred.Raw), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { gw.apply(t, gw.root.rotate(t, 2, []byte{seedR3, seedR4}, seedR1, seedR2)) }
				return w
			}, want: authority.ReasonKeyRotated},
		{name: "revocation of the operational key's delegation",
			build: func(t *testing.T) *world {
				gw := newGovWorld(t)
				del := gw.apply(t, gw.root.delegate(t, seedOp1, credKinds, dayAgo, weekAhead, seedR1, seedR2))
				cred := gw.root.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour), seedOp1)
				w := &world{v: gw.g, req: gw.request(cred.Raw), opts: []authority.Option{at}}
				w.change = func(t *testing.T) { gw.apply(t, gw.root.revoke(t, del.ID, seedR1, seedR3)) }
				return w
			}, want: authority.ReasonRevoked},
		{name: "the issuer equivocates",
			build: func(t *testing.T) *world {
				gw := newGovWorld(t)
				held := gw.apply(t, gw.root.rule(t, gw.target.id(), "a", seedR1, seedR2))
				cred := gw.root.credential(t, etlSubject, now.Add(-time.Hour), now.Add(time.Hour), seedR1, seedR3)
				w := &world{v: gw.g, req: gw.request(cred.Raw), opts: []authority.Option{at}}
				w.change = func(t *testing.T) {
					gw.root.forkAt(1)
					if err := gw.g.Apply(gw.root.rule(t, gw.target.id(), "b", seedR2, seedR3)); !errors.Is(err, authority.ErrEquivocation) {
						t.Fatalf("Apply(fork) = %v", err)
					}
					gw.root.setHead(held)
				}
				return w
			}, want: authority.ReasonEquivocation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.build(t)
			c := authority.NewCache(0, 0)
			d, _ := coldWarm(t, w.v, c, w.req, w.opts...)
			if !d.Allow {
				t.Fatalf("setup: %s: %s", d.Reason, d.Message)
			}
			if d, hit := coldWarm(t, w.v, c, w.req, w.opts...); !hit || !d.Allow {
				t.Fatalf("setup: second decision hit %v, %s", hit, d.Reason)
			}
			w.change(t)
			d, hit := coldWarm(t, w.v, c, w.req, w.opts...)
			t.Logf("after the change (hit %v): %s: %s", hit, d.Reason, d.Message)
			if d.Reason != tt.want {
				t.Fatalf("reason %q, want %q", d.Reason, tt.want)
			}
			if !hit {
				// The chain's bytes did not change: the cache must
				// have answered for them.
				t.Errorf("the changed world was not judged from the cached chain")
			}
		})
	}
}

// TestCacheBounds: a cache never holds more entries or bytes than its
// bounds, drops the least recently used first, and refuses no chain
// because of another (every decision still equals the cold one).
func TestCacheBounds(t *testing.T) {
	s := newSB(t)
	twoHop(s, nil, nil)
	var reqs []authority.Request
	for i := range 12 {
		cr := etlCred()
		cr.Serial = []byte{byte(i)}
		reqs = append(reqs, s.request(issue(t, s.aws, cr)))
	}
	c := authority.NewCache(4, 0)
	for _, r := range reqs {
		if d, _ := coldWarm(t, s.g, c, r, authority.WithTime(now)); !d.Allow {
			t.Fatalf("setup: %s", d.Reason)
		}
		if st := c.Stats(); st.Entries > 4 {
			t.Fatalf("%d entries, over the bound of 4", st.Entries)
		}
	}
	// The last four are held; the first is not.
	if _, hit := coldWarm(t, s.g, c, reqs[11], authority.WithTime(now)); !hit {
		t.Error("the most recent chain is not cached")
	}
	if _, hit := coldWarm(t, s.g, c, reqs[0], authority.WithTime(now)); hit {
		t.Error("the least recently used chain is still cached past the bound")
	}
	one := int64(c.Stats().Bytes / int64(c.Stats().Entries))
	small := authority.NewCache(100, 2*one+one/2)
	for _, r := range reqs {
		coldWarm(t, s.g, small, r, authority.WithTime(now))
		if st := small.Stats(); st.Bytes > 2*one+one/2 || st.Entries > 2 {
			t.Fatalf("%d bytes in %d entries, over the byte bound %d", st.Bytes, st.Entries, 2*one+one/2)
		}
	}
	small.Purge()
	if st := small.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("after Purge: %+v", st)
	}
}

// TestCacheConcurrent: goroutines deciding many chains through one small
// cache (so they evict each other's entries) get the cold decisions. Run
// with -race.
func TestCacheConcurrent(t *testing.T) {
	s := newSB(t)
	twoHop(s, nil, nil)
	var reqs []authority.Request
	var want []authority.Decision
	for i := range 6 {
		cr := holds(t, etlCred(), seedHolder1)
		cr.Serial = []byte{byte(i)}
		root := issue(t, s.aws, cr)
		lc := etlCred()
		if i%2 == 1 {
			lc.Resources = "blob://elsewhere/*" // widens nothing, matches nothing: a deny
		}
		leaf := delegate(t, root, seedHolder1, lc)
		r := s.request(leaf, root)
		reqs = append(reqs, r)
		want = append(want, authority.Verify(s.g, r, authority.WithTime(now)))
	}
	c := authority.NewCache(3, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 30 {
				i := (n + g) % len(reqs)
				if d := authority.Verify(s.g, reqs[i], authority.WithTime(now), authority.WithCache(c)); !reflect.DeepEqual(d, want[i]) {
					errs <- fmt.Errorf("goroutine %d, request %d: %s, want %s", g, i, d.Reason, want[i].Reason)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := c.Stats(); st.Entries > 3 || st.Hits == 0 {
		t.Errorf("stats %+v: over the bound, or never hit", st)
	}
}
