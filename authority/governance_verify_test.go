package authority_test

// These tests judge key governance through Verify itself: Verify asks
// judgeCredentialSigners about a root credential and judgeRule asks
// ruleEquivocated about a rule (judge.go).

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
)

func TestGovernanceVerify(t *testing.T) {
	hour := time.Hour
	tests := []struct {
		name string
		// build returns the credential to present to gov-target.
		build func(t *testing.T, w *credWorld) []byte
		want  authority.Reason
	}{
		{name: "root threshold", want: authority.ReasonOK, build: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR3, seedR5).Raw
		}},
		{name: "k-1 of k root signatures", want: authority.ReasonThresholdNotMet, build: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR5).Raw
		}},
		{name: "rotated-out keys", want: authority.ReasonKeyRotated, build: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR1, seedR2).Raw
		}},
		{name: "rotated-out keys, window closed by the rotation", want: authority.ReasonExpired, build: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, dayAgo, now.Add(-hour), seedR1, seedR2).Raw
		}},
		{name: "op key", want: authority.ReasonOK, build: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedOp1).Raw
		}},
		{name: "op key out of scope", want: authority.ReasonBadSignature, build: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedOp2).Raw
		}},
		{name: "op key out of window", want: authority.ReasonExpired, build: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedExpiredOp).Raw
		}},
		{name: "op key revoked", want: authority.ReasonRevoked, build: func(t *testing.T, w *credWorld) []byte {
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedRevokedOp).Raw
		}},
		{name: "equivocating issuer", want: authority.ReasonEquivocation, build: func(t *testing.T, w *credWorld) []byte {
			w.root.forkAt(w.root.head)
			if err := w.g.Apply(w.root.rule(t, w.target.id(), "fork", seedR1, seedR2)); err == nil {
				t.Fatal("fork accepted")
			}
			return w.root.credential(t, etlSubject, now.Add(-hour), now.Add(hour), seedR3, seedR4).Raw
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCredWorld(t)
			d := authority.Verify(w.g, w.request(tt.build(t, w)), authority.WithTime(now))
			t.Logf("%s: %s", d.Reason, d.Message)
			if d.Reason != tt.want || d.Allow != (tt.want == authority.ReasonOK) {
				t.Fatalf("reason %q (%s), want %q", d.Reason, d.Message, tt.want)
			}
		})
	}
}

// TestGovernanceVerifyEquivocatingRules: a target that equivocated at seq 2
// keeps its rule at seq 1 and loses those at and after seq 2, until it
// rotates.
func TestGovernanceVerifyEquivocatingRules(t *testing.T) {
	w := newForkWorld(t)
	if err := w.g.Apply(w.fork2); err == nil {
		t.Fatal("fork accepted")
	}
	hour := time.Hour
	cred := func(subject string) []byte {
		return w.root.credential(t, subject, now.Add(-hour), now.Add(hour), seedR1, seedR2).Raw
	}
	judge := func(subject string, want authority.Reason) {
		t.Helper()
		d := authority.Verify(w.g, w.request(cred(subject)), authority.WithTime(now))
		t.Logf("%s: %s: %s", subject, d.Reason, d.Message)
		if d.Reason != want {
			t.Fatalf("%s: reason %q (%s), want %q", subject, d.Reason, d.Message, want)
		}
	}
	judge(etlSubject, authority.ReasonOK)                                     // rule at seq 1
	judge("arn:aws:iam::111122223333:role/a-x", authority.ReasonEquivocation) // rule at seq 2
	w.apply(t, w.target.rotate(t, 1, []byte{seedGovTarget}, seedGovTarget))
	judge("arn:aws:iam::111122223333:role/a-x", authority.ReasonOK)
}

func TestGovernanceFixtureVerify(t *testing.T) {
	tests := []struct {
		name  string
		want  authority.Reason
		after []string
	}{
		{name: "threshold-credential.cbor", want: authority.ReasonOK},
		{name: "k-minus-one-signatures-credential.cbor", want: authority.ReasonThresholdNotMet},
		{name: "rotated-out-key-credential.cbor", want: authority.ReasonKeyRotated},
		{name: "op-key-credential.cbor", want: authority.ReasonOK},
		{name: "op-key-out-of-scope-credential.cbor", want: authority.ReasonBadSignature},
		{name: "equivocating-authority-credential.cbor", want: authority.ReasonNoRule},
		{name: "equivocating-authority-credential.cbor", want: authority.ReasonEquivocation, after: []string{"equivocating-authority-rule-b.cbor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := loadGovGraph(t)
			applyEvidenceFixtures(t, g, tt.after)
			target, err := authority.ResolveAuthority(g, "gov-target")
			if err != nil {
				t.Fatal(err)
			}
			d := authority.Verify(g, fixtureRequest(target, readFile(t, filepath.Join(govFixtureDir, tt.name))), authority.WithTime(now))
			t.Logf("%s: %s", d.Reason, d.Message)
			if d.Reason != tt.want {
				t.Fatalf("reason %q (%s), want %q", d.Reason, d.Message, tt.want)
			}
		})
	}
}
