package authority_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

func TestMakeProofRefuses(t *testing.T) {
	s := newSB(t)
	bound := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
	bearer := issue(t, s.aws, etlCred())
	tests := []struct {
		name      string
		cred      *authority.Signed
		key       byte
		challenge []byte
		at        time.Time
		want      string
	}{
		{name: "a bearer credential", cred: bearer, key: seedHolder1, at: now, want: "no holder key"},
		{name: "another key than the holder's", cred: bound, key: seedThief, at: now, want: "not credential"},
		{name: "a rule", cred: s.rule(s.azure, etlRule(s.aws.id(), 0)), key: seedHolder1, at: now, want: "not a credential"},
		{name: "a challenge over the limit", cred: bound, key: seedHolder1, challenge: make([]byte, authority.MaxChallengeLen+1), at: now, want: "challenge"},
		{name: "a time before 1970", cred: bound, key: seedHolder1, at: time.Unix(-1, 0), want: "1970"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authority.MakeProof(tt.cred, s.azure.id(), tt.challenge, tt.at, fixedKey(t, tt.key))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "authority: ") {
				t.Fatalf("MakeProof = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// TestProofOfPossession judges proofs against a holder-bound credential of
// aws-prod asked of azure-corp, with and without the verifier's challenge.
func TestProofOfPossession(t *testing.T) {
	s := newSB(t)
	s.rule(s.azure, etlRule(s.aws.id(), 0))
	cred := issue(t, s.aws, holds(t, etlCred(), seedHolder1))
	good := proof(t, cred, s.azure.id(), challenge, seedHolder1)
	unchallenged := proof(t, cred, s.azure.id(), nil, seedHolder1)
	tests := []struct {
		name      string
		pop       []byte
		challenge []byte // the verifier's (nil: no WithChallenge)
		want      authority.Reason
	}{
		{name: "the proof answers the challenge", pop: good, challenge: challenge, want: authority.ReasonOK},
		{name: "no challenge issued, none answered", pop: unchallenged, want: authority.ReasonOK},
		{name: "no challenge issued, one answered", pop: good, want: authority.ReasonProofOfPossession},
		{name: "a challenge issued, none answered", pop: unchallenged, challenge: challenge, want: authority.ReasonProofOfPossession},
		{name: "a challenge one byte off", pop: good, challenge: append(clone(challenge[:len(challenge)-1]), 'x'), want: authority.ReasonProofOfPossession},
		{name: "garbage", pop: []byte("I hold the key, trust me"), challenge: challenge, want: authority.ReasonProofOfPossession},
		{name: "truncated", pop: good[:len(good)-1], challenge: challenge, want: authority.ReasonProofOfPossession},
		{name: "signature flipped", pop: flipLast(good), challenge: challenge, want: authority.ReasonProofOfPossession},
		{name: "over the size limit", pop: make([]byte, authority.MaxProofSize+1), challenge: challenge, want: authority.ReasonProofOfPossession},
		{name: "the credential itself as proof", pop: cred.Raw, challenge: challenge, want: authority.ReasonProofOfPossession},
		{name: "a declaration signed by the holder as proof", pop: delegate(t, cred, seedHolder1, etlCred()).Raw, challenge: challenge, want: authority.ReasonProofOfPossession},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := s.request(cred)
			req.PoP = tt.pop
			opts := []authority.Option{authority.WithTime(now)}
			if tt.challenge != nil {
				opts = append(opts, authority.WithChallenge(tt.challenge))
			}
			keep := clone(tt.pop)
			d := authority.Verify(s.g, req, opts...)
			t.Logf("%s: %s", d.Reason, d.Message)
			if d.Reason != tt.want {
				t.Fatalf("reason %q, want %q", d.Reason, tt.want)
			}
			if !bytes.Equal(keep, tt.pop) {
				t.Fatal("Verify modified the proof bytes")
			}
		})
	}
	t.Run("a bearer credential ignores a proof", func(t *testing.T) {
		bearer := issue(t, s.aws, etlCred())
		req := s.request(bearer)
		req.PoP = []byte("junk")
		if d := authority.Verify(s.g, req, authority.WithTime(now)); !d.Allow {
			t.Fatalf("%s: %s", d.Reason, d.Message)
		}
	})
}

func flipLast(b []byte) []byte {
	out := clone(b)
	out[len(out)-1] ^= 1
	return out
}

// TestDelegationDepth: a chain of exactly MaxDelegationDepth credentials,
// the leaf bound to a holder key, is judged (MaxDelegationDepth+1 signature
// checks); one more is malformed before any signature is checked.
func TestDelegationDepth(t *testing.T) {
	for _, n := range []int{1, 2, authority.MaxDelegationDepth, authority.MaxDelegationDepth + 1} {
		s := newSB(t)
		ra := s.rule(s.azure, etlRule(s.aws.id(), 0))
		links := delegationChain(t, s, n)
		leaf := links[len(links)-1]
		var parents []*authority.Signed
		for i := len(links) - 2; i >= 0; i-- {
			parents = append(parents, links[i])
		}
		req := s.request(leaf, parents...)
		req.PoP = proof(t, leaf, s.azure.id(), challenge, byte(70+n-1))
		d := authority.Verify(s.g, req, authority.WithTime(now), authority.WithChallenge(challenge))
		t.Logf("depth %d: %s: %s", n, d.Reason, d.Message)
		if n <= authority.MaxDelegationDepth {
			want := pathChain(s.aws.id(), links, ra)
			if !d.Allow || fmtIDs(d.Chain) != fmtIDs(want) {
				t.Errorf("depth %d: %s, chain %s; want allow, %s", n, d.Reason, fmtIDs(d.Chain), fmtIDs(want))
			}
		} else if d.Reason != authority.ReasonMalformed || len(d.Chain) != 0 {
			t.Errorf("depth %d: %s, chain %s; want malformed, no chain", n, d.Reason, fmtIDs(d.Chain))
		}
	}
}

// delegationChain makes a chain of n credentials of aws-prod, root first,
// each link held by its own key (seed 70+i) and signed by its
// parent's, narrowing nothing.
func delegationChain(t fataler, s *sb, n int) []*authority.Signed {
	t.Helper()
	links := []*authority.Signed{issue(t, s.aws, holds(t, etlCred(), 70))}
	for i := 1; i < n; i++ {
		links = append(links, delegate(t, links[i-1], byte(70+i-1), holds(t, etlCred(), byte(70+i))))
	}
	return links
}
