package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

// fillSingle starts a one-node consortium and commits outsiders' geneses,
// rules and a revocation through it; it returns the node and every agreed
// declaration ID.
func fillSingle(t *testing.T, outsiders, rules int) (*Node, []authority.ID) {
	t.Helper()
	a, _ := startSingle(t, "aws-prod")
	ids := []authority.ID{a.Authority()}
	for i := range outsiders {
		o := newOutsider(t, "org-"+string(rune('a'+i)))
		submit := func(sd *authority.Signed) {
			t.Helper()
			if _, err := a.Submit(context.Background(), sd.Raw); err != nil {
				t.Fatalf("submit %v: %v", sd.Decl.Kind, err)
			}
			ids = append(ids, sd.ID)
		}
		submit(o.gen)
		prev := o.gen.ID
		for s := 1; s <= rules; s++ {
			r := rule(t, o.id(), uint64(s), prev, a.Authority(), "res/*", o.root)
			submit(r)
			prev = r.ID
		}
		submit(mustSign(t, authority.Declaration{
			Kind: authority.KindRevocation, Authority: o.id(), Seq: uint64(rules + 1), Prev: prev, IssuedAt: t0.Unix(),
			Revocation: &authority.Revocation{Target: prev, Reason: "test"},
		}, o.root))
	}
	waitFor(t, waitAgreed, "every declaration agreed at the first node", agreedAt(ids[len(ids)-1], a))
	waitFor(t, waitAgreed, "every declaration agreed at the first node", func() bool { return a.GraphVersion() == uint64(len(ids)) })
	return a, ids
}

// TestSyncObserverCatchesUp: a node started later, outside the Raft
// configuration, gets the whole agreed graph from one peer by sync (in
// pages, checked against the peer's checkpoints), and later declarations by
// the timer round.
func TestSyncObserverCatchesUp(t *testing.T) {
	a, ids := fillSingle(t, 3, 5)
	b := startNode(t, initHome(t, "okta"), Config{Peers: a.Addrs(), API: "127.0.0.1:0", SyncInterval: 300 * time.Millisecond})
	waitFor(t, waitAgreed, "the observer synced every declaration", agreedAt(ids[len(ids)-1], b))
	for _, id := range ids {
		if !b.Agreed(id) {
			t.Fatalf("observer lacks %s after sync", id.Short())
		}
	}
	// The peer commits the observer's own genesis too (gossiped to it), so
	// the versions meet once the timer round has run.
	waitFor(t, waitAgreed, "the observer at the peer's version", func() bool { return b.GraphVersion() == a.GraphVersion() })
	if !b.store.Synced() {
		t.Fatal("the observer's graph does not say it came from sync")
	}
	size := min(a.GraphVersion(), b.GraphVersion())
	ra, _ := a.store.LogRootAt(size)
	rb, _ := b.store.LogRootAt(size)
	if string(ra) != string(rb) {
		t.Fatalf("observer's log root %x differs from the peer's %x", rb, ra)
	}
	// A later declaration arrives by gossip into the observer's pool and
	// becomes agreed there by the timer round.
	o := newOutsider(t, "late")
	if _, err := a.Submit(context.Background(), o.gen.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the later genesis synced to the observer", agreedAt(o.gen.ID, b))
}

// TestSyncMemberPoolsWhatOnlyAPeerHeld: a declaration that only a node
// outside the consortium held (it cannot forward to any leader) reaches
// the agreed graph once a member pulls it by sync: the member pools it and
// Raft orders it.
func TestSyncMemberPoolsWhatOnlyAPeerHeld(t *testing.T) {
	a, ids := fillSingle(t, 1, 1)
	obs := startNode(t, initHome(t, "okta"), Config{Peers: a.Addrs(), API: "127.0.0.1:0", SyncInterval: time.Hour})
	waitFor(t, waitAgreed, "the observer synced", agreedAt(ids[len(ids)-1], obs))
	o := newOutsider(t, "only-here")
	obs.pool.add(o.gen, time.Now())
	st, err := a.SyncWith(context.Background(), obs.PeerID())
	if err != nil {
		t.Fatalf("sync from the observer: %v", err)
	}
	if st.Pooled < 1 {
		t.Fatalf("sync pooled %d declarations, want the observer's pending genesis", st.Pooled)
	}
	waitFor(t, waitAgreed, "the observer's pending genesis agreed at the member", agreedAt(o.gen.ID, a))
}

// TestSyncRefusesPageNotMatchingCheckpoint: a responder whose page does not
// match its own signed checkpoint is refused, and nothing of the page is
// stored.
func TestSyncRefusesPageNotMatchingCheckpoint(t *testing.T) {
	a, ids := fillSingle(t, 2, 3)
	other, _ := fillSingle(t, 1, 1)
	otherCP, err := other.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tamper func(r *syncResponse)
	}{
		{"swapped declarations", func(r *syncResponse) {
			if len(r.Agreed) > 3 {
				r.Agreed[2], r.Agreed[3] = r.Agreed[3], r.Agreed[2]
			}
		}},
		{"declaration dropped", func(r *syncResponse) {
			if len(r.Agreed) > 1 {
				r.Agreed = r.Agreed[:len(r.Agreed)-1]
			}
		}},
		{"declaration of another log", func(r *syncResponse) {
			if env, err := other.store.Declaration(other.Authority()); err == nil && len(r.Agreed) > 0 {
				r.Agreed[len(r.Agreed)-1] = env
			}
		}},
		{"checkpoint of another log", func(r *syncResponse) { r.Checkpoint = []byte(otherCP.Note) }},
		{"no checkpoint", func(r *syncResponse) { r.Checkpoint = nil }},
		{"garbled checkpoint", func(r *syncResponse) {
			if len(r.Checkpoint) > 0 {
				r.Checkpoint = append([]byte(nil), r.Checkpoint...)
				r.Checkpoint[len(r.Checkpoint)-3] ^= 0x55
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a.syn.tamper.Store(&tc.tamper)
			defer a.syn.tamper.Store(nil)
			b := startNode(t, initHome(t, "okta"), Config{API: "127.0.0.1:0", SyncInterval: time.Hour})
			if err := b.Connect(context.Background(), a.Addrs()[0]); err != nil {
				t.Fatal(err)
			}
			_, err := b.SyncWith(context.Background(), a.PeerID())
			if !errors.Is(err, ErrSyncCheckpoint) {
				t.Fatalf("sync from a hostile responder: %v, want ErrSyncCheckpoint", err)
			}
			if v := b.GraphVersion(); v != 0 {
				t.Fatalf("the observer stored %d declarations of a refused page", v)
			}
			for _, id := range ids {
				if b.Agreed(id) {
					t.Fatalf("the observer holds %s from a refused page", id.Short())
				}
			}
		})
	}
}
