package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/tlog"
)

// tIssue is the node clock of the receipt tests: every receipt's issued-at.
var tIssue = t0.Add(2 * time.Hour)

// TestReceiptSingleNode: a verify with a receipt returns a receipt sealed
// with the node's authority key that carries the decision's fields, and
// whose checkpoint (signed with the same key) includes every on-chain
// element of the chain, checked with transparency-dev/merkle's verifier.
func TestReceiptSingleNode(t *testing.T) {
	h := initHome(t, "aws-prod")
	n := startNode(t, h, Config{Bootstrap: true, API: "127.0.0.1:0", Clock: func() time.Time { return tIssue }})
	waitFor(t, waitAgreed, "own genesis agreed", func() bool { return n.Agreed(n.Authority()) })
	ctx := context.Background()
	okta := newOutsider(t, "okta")
	if _, err := n.Submit(ctx, okta.gen.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "okta's genesis agreed", agreedAt(okta.id(), n))
	r0 := nextRule(t, h, n, okta.id(), "s3://b0/*")
	nextRule(t, h, n, okta.id(), "s3://b1/*")
	rev, err := SignNext(ctx, h, n, t0, func(d *authority.Declaration) {
		d.Kind = authority.KindRevocation
		d.Revocation = &authority.Revocation{Target: r0.ID}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitAgreed, "the rules and the revocation agreed", agreedAt(rev.ID, n))
	cred := credential(t, okta.id(), "alice@okta", okta.root)
	cl := NewClient(n.APIAddr(), "")
	origin, err := n.LogOrigin()
	if err != nil {
		t.Fatal(err)
	}
	witness := []tlog.Witness{{Name: h.Config.Name, Key: h.Root.Public()}}

	tests := []struct {
		name     string
		target   string
		resource string
		action   string
		outcome  string
		reason   authority.Reason
		onChain  int // chain elements in the log (the rest is the credential)
	}{
		{name: "allow", target: "aws-prod", resource: "s3://b1/x", action: "read", outcome: "allow", reason: authority.ReasonOK, onChain: 3},
		{name: "deny by action", target: h.Authority.String(), resource: "s3://b1/x", action: "write", outcome: "deny", reason: authority.ReasonActionNotAllowed, onChain: 3},
		{name: "deny by a revoked rule", target: "aws-prod", resource: "s3://b0/x", action: "read", outcome: "deny", reason: authority.ReasonRevoked, onChain: 3},
		{name: "deny unknown target", target: "nobody", resource: "s3://b1/x", action: "read", outcome: "deny", reason: authority.ReasonUnknownAuthority, onChain: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, raw, err := cl.VerifyWithReceipt(ctx, cred.Raw, tt.target, tt.resource, tt.action, tJudge)
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != tt.outcome || d.Reason != tt.reason || d.Allow != (tt.outcome == "allow") {
				t.Fatalf("decision %s (%s), want %s (%s): %s", d.Outcome, d.Reason, tt.outcome, tt.reason, d.Message)
			}
			if len(raw) > MaxReceiptSize {
				t.Errorf("receipt of %d bytes, over MaxReceiptSize", len(raw))
			}
			if _, err := OpenReceipt(raw, []authority.PublicKey{okta.root.Public()}); !errors.Is(err, ErrBadReceipt) || !errors.Is(err, authority.ErrBadSignature) {
				t.Errorf("opened with another authority's key: %v", err)
			}
			r, err := OpenReceipt(raw, []authority.PublicKey{h.Root.Public()})
			if err != nil {
				t.Fatal(err)
			}
			want := Receipt{
				Format:    ReceiptFormat,
				Authority: h.Authority,
				Request: ReceiptRequest{CredentialID: authority.IDOf(cred.Raw), Target: tt.target, Resource: tt.resource,
					Action: tt.action, At: tJudge.UTC().Format(time.RFC3339)},
				Outcome: d.Outcome, Reason: string(d.Reason), Message: d.Message, Chain: d.Chain,
				GraphVersion: d.GraphVersion, GraphAgeMS: d.GraphAgeMS, Checkpoint: r.Checkpoint,
				IssuedAt: tIssue.UnixMilli(),
			}
			if r.Chain == nil {
				r.Chain = []authority.ID{} // the wire has [] either way
			}
			gotJSON, _ := json.Marshal(r)
			wantJSON, _ := json.Marshal(want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("receipt\n%s\nwant\n%s", gotJSON, wantJSON)
			}
			if r.GraphVersion != 5 {
				t.Errorf("graph version %d, want 5", r.GraphVersion)
			}

			c, signers, err := tlog.OpenCheckpoint(r.Checkpoint, witness)
			if err != nil {
				t.Fatalf("the receipt's checkpoint does not open with the node's key: %v", err)
			}
			if c.Origin != origin || c.Size < r.GraphVersion || !slices.Equal(signers, []string{"aws-prod"}) {
				t.Errorf("checkpoint %v signed by %v; want origin %s, size >= %d", c, signers, origin, r.GraphVersion)
			}
			if body, err := r.CheckpointBody(); err != nil || body.String() != c.String() {
				t.Errorf("CheckpointBody %v (%v), want %v", body, err, c)
			}
			logged := 0
			for i, id := range r.Chain {
				if id == r.Request.CredentialID {
					continue // presented, not logged
				}
				p, err := n.Prove(id, c.Size)
				if err != nil {
					t.Fatalf("chain[%d] %s: %v", i, id.Short(), err)
				}
				if authority.IDOf(p.Envelope) != id || p.Index >= r.GraphVersion {
					t.Fatalf("chain[%d] %s: proof of leaf %d with envelope %s", i, id.Short(), p.Index, authority.IDOf(p.Envelope).Short())
				}
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, c.Size, rfc6962.DefaultHasher.HashLeaf(p.Envelope), toBytes(p.Proof), c.Root); err != nil {
					t.Errorf("chain[%d] %s: not included in the receipt's checkpoint: %v", i, id.Short(), err)
				}
				logged++
			}
			if logged != tt.onChain || (tt.onChain > 0 && !slices.Contains(r.Chain, r.Request.CredentialID)) {
				t.Errorf("chain %v: %d logged elements, want %d and the credential", r.Chain, logged, tt.onChain)
			}
		})
	}

	t.Run("API", func(t *testing.T) {
		body := func(receipt any) []byte {
			m := map[string]any{"credential": base64.StdEncoding.EncodeToString(cred.Raw), "target": "aws-prod",
				"resource": "s3://b1/x", "action": "read", "at": tJudge.Format(time.RFC3339)}
			if receipt != nil {
				m["receipt"] = receipt
			}
			b, _ := json.Marshal(m)
			return b
		}
		for _, tc := range []struct {
			name    string
			receipt any
			status  int
			has     bool
		}{
			{name: "no field", status: http.StatusOK},
			{name: "false", receipt: false, status: http.StatusOK},
			{name: "true", receipt: true, status: http.StatusOK, has: true},
			{name: "not a bool", receipt: "yes", status: http.StatusBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st, b := rawPost(t, n, "/v1/verify", "", "application/json", body(tc.receipt))
				if st != tc.status {
					t.Fatalf("status %d, want %d: %s", st, tc.status, b)
				}
				if st != http.StatusOK {
					wantJSONError(t, b)
					return
				}
				var m map[string]json.RawMessage
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				_, has := m["receipt"]
				if has != tc.has || string(m["decision"]) != `"allow"` {
					t.Errorf("receipt present %v, want %v; decision %s", has, tc.has, m["decision"])
				}
			})
		}
	})
}

// TestReceiptEmptyLog: a node that has not joined cannot sign a checkpoint,
// so it refuses a receipt (503) and still decides without one.
func TestReceiptEmptyLog(t *testing.T) {
	h := initHome(t, "loner")
	n := startNode(t, h, Config{API: "127.0.0.1:0"})
	cred := credential(t, h.Authority, "alice", h.Root)
	if _, _, err := n.VerifyWithReceipt(cred.Raw, "loner", "r", "a", tJudge); !errors.Is(err, ErrEmptyLog) {
		t.Errorf("VerifyWithReceipt: %v, want ErrEmptyLog", err)
	}
	cl := NewClient(n.APIAddr(), "")
	var ae *APIError
	if _, _, err := cl.VerifyWithReceipt(context.Background(), cred.Raw, "loner", "r", "a", tJudge); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Errorf("client: %v, want HTTP 503", err)
	}
	if d, err := cl.Verify(context.Background(), cred.Raw, "loner", "r", "a", tJudge); err != nil || d.Outcome != "deny" {
		t.Errorf("verify without a receipt: %+v, %v", d, err)
	}
}

// receiptKey is a fresh Ed25519 key.
func receiptKey(t testing.TB) *authority.PrivateKey {
	t.Helper()
	k, err := authority.GenerateKey(authority.AlgEd25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sampleReceipt is a well-formed receipt (its checkpoint signed by k).
func sampleReceipt(t testing.TB, k *authority.PrivateKey) Receipt {
	t.Helper()
	note, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: tlog.Origin("0011223344556677"), Size: 5, Root: make([]byte, 32)}, "aws-prod", k)
	if err != nil {
		t.Fatal(err)
	}
	return Receipt{
		Format: ReceiptFormat, Authority: authority.ID{1},
		Request: ReceiptRequest{CredentialID: authority.ID{2}, Target: "aws-prod", Resource: "s3://b/x", Action: "read", At: tJudge.Format(time.RFC3339)},
		Outcome: "allow", Reason: "ok", Message: "fine", Chain: []authority.ID{{3}, {2}, {1}, {4}},
		GraphVersion: 5, GraphAgeMS: 0, Checkpoint: note, IssuedAt: tIssue.UnixMilli(),
	}
}

// sealPayload seals arbitrary payload bytes with k.
func sealPayload(t testing.TB, payload []byte, k *authority.PrivateKey) []byte {
	t.Helper()
	b, err := authority.Seal(payload, k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseReceipt: what ParseReceipt and OpenReceipt refuse.
func TestParseReceipt(t *testing.T) {
	k, other := receiptKey(t), receiptKey(t)
	good := sampleReceipt(t, k)
	raw, err := good.Seal(k)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := OpenReceipt(raw, []authority.PublicKey{k.Public()}); err != nil || r.Message != "fine" || len(r.Chain) != 4 {
		t.Fatalf("OpenReceipt of a good receipt: %+v, %v", r, err)
	}
	payload := func(edit func(r *Receipt)) []byte {
		r := sampleReceipt(t, k)
		edit(&r)
		b, err := receiptEnc.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withExtra, _ := receiptEnc.Marshal(struct {
		Receipt
		Extra string `cbor:"12,keyasint"`
	}{good, "x"})
	// A mirror of Receipt whose graph version is written in two bytes where
	// one would do: the same values, another encoding.
	type loose struct {
		Format       string          `cbor:"1,keyasint"`
		Authority    authority.ID    `cbor:"2,keyasint"`
		Request      ReceiptRequest  `cbor:"3,keyasint"`
		Outcome      string          `cbor:"4,keyasint"`
		Reason       string          `cbor:"5,keyasint"`
		Message      string          `cbor:"6,keyasint"`
		Chain        []authority.ID  `cbor:"7,keyasint"`
		GraphVersion cbor.RawMessage `cbor:"8,keyasint"`
		GraphAgeMS   int64           `cbor:"9,keyasint"`
		Checkpoint   []byte          `cbor:"10,keyasint"`
		IssuedAt     int64           `cbor:"11,keyasint"`
	}
	g := good
	nonShortest, err := receiptEnc.Marshal(loose{g.Format, g.Authority, g.Request, g.Outcome, g.Reason, g.Message, g.Chain,
		cbor.RawMessage{0x18, 0x05}, g.GraphAgeMS, g.Checkpoint, g.IssuedAt})
	if err != nil {
		t.Fatal(err)
	}
	statement, _ := receiptEnc.Marshal(struct {
		Context string       `cbor:"1,keyasint"`
		Digest  [32]byte     `cbor:"2,keyasint"`
		Signer  authority.ID `cbor:"3,keyasint"`
	}{"fednode-bundle-v2", [32]byte{9}, authority.ID{1}})
	decl := mustSign(t, authority.Declaration{Kind: authority.KindGenesis, IssuedAt: t0.Unix(),
		Genesis: &authority.Genesis{Name: "x", RootKeys: []authority.PublicKey{k.Public()}, Threshold: 1}}, k)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-3] ^= 0x01

	tests := []struct {
		name string
		raw  []byte
		keys []authority.PublicKey
		want string // in the error; "" for success
	}{
		{name: "good", raw: raw, keys: []authority.PublicKey{k.Public()}},
		{name: "signature byte flipped", raw: flipped, keys: []authority.PublicKey{k.Public()}, want: "does not verify"},
		{name: "sealed by another key", raw: sealPayload(t, payload(func(*Receipt) {}), other), keys: []authority.PublicKey{k.Public()}, want: "never declared"},
		{name: "not a seal", raw: []byte("hello"), want: "seal"},
		{name: "empty", raw: nil, want: "seal"},
		{name: "oversized", raw: make([]byte, MaxReceiptSize+1), want: "limit"},
		{name: "another format", raw: sealPayload(t, payload(func(r *Receipt) { r.Format = "fednode-receipt-v2" }), k), want: `"fednode-receipt-v2", not a`},
		{name: "a bundle statement", raw: sealPayload(t, statement, k), want: `"fednode-bundle-v2", not a`},
		{name: "a declaration", raw: decl.Raw, want: "payload"},
		{name: "unknown key", raw: sealPayload(t, withExtra, k), want: "payload"},
		{name: "not shortest encoding", raw: sealPayload(t, nonShortest, k), want: "Core Deterministic"},
		{name: "allow with a deny reason", raw: sealPayload(t, payload(func(r *Receipt) { r.Reason = "revoked" }), k), want: "outcome allow"},
		{name: "deny with reason ok", raw: sealPayload(t, payload(func(r *Receipt) { r.Outcome = "deny" }), k), want: "outcome deny"},
		{name: "outcome maybe", raw: sealPayload(t, payload(func(r *Receipt) { r.Outcome = "maybe" }), k), want: "outcome"},
		{name: "chain too long", raw: sealPayload(t, payload(func(r *Receipt) { r.Chain = make([]authority.ID, MaxReceiptChain+1) }), k), want: "payload"},
		{name: "negative age", raw: sealPayload(t, payload(func(r *Receipt) { r.GraphAgeMS = -1 }), k), want: "negative"},
		{name: "bad time", raw: sealPayload(t, payload(func(r *Receipt) { r.Request.At = "yesterday" }), k), want: "RFC3339"},
		{name: "no checkpoint", raw: sealPayload(t, payload(func(r *Receipt) { r.Checkpoint = nil }), k), want: "checkpoint"},
		{name: "nil chain is the empty chain", raw: sealPayload(t, payload(func(r *Receipt) { r.Chain = nil }), k), keys: []authority.PublicKey{k.Public()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.keys != nil {
				_, err = OpenReceipt(tt.raw, tt.keys)
			} else {
				_, _, err = ParseReceipt(tt.raw)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBadReceipt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrBadReceipt containing %q", err, tt.want)
			}
			t.Log(err)
		})
	}

	t.Run("seal refuses a bad receipt", func(t *testing.T) {
		r := sampleReceipt(t, k)
		r.Outcome = "maybe"
		if _, err := r.Seal(k); err == nil {
			t.Error("sealed a receipt with outcome maybe")
		}
		r = sampleReceipt(t, k)
		r.Request.Resource = strings.Repeat("x", MaxReceiptSize)
		if _, err := r.Seal(k); !errors.Is(err, ErrReceiptTooLarge) {
			t.Errorf("oversized receipt: %v, want ErrReceiptTooLarge", err)
		}
	})
	t.Run("checkpoint body", func(t *testing.T) {
		c, err := good.CheckpointBody()
		if err != nil || c.Size != 5 {
			t.Errorf("CheckpointBody %v, %v", c, err)
		}
		r := sampleReceipt(t, k)
		r.Checkpoint = []byte("no signature block")
		if _, err := r.CheckpointBody(); !errors.Is(err, ErrBadReceipt) {
			t.Errorf("CheckpointBody of a note without signatures: %v", err)
		}
	})
}

// FuzzParseReceipt: ParseReceipt never panics, and whatever it accepts is
// the canonical encoding of what it returns.
func FuzzParseReceipt(f *testing.F) {
	k := receiptKey(f)
	r := sampleReceipt(f, k)
	raw, err := r.Seal(k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, s, err := ParseReceipt(b)
		if err != nil {
			return
		}
		again, err := receiptEnc.Marshal(r)
		if err != nil || !bytes.Equal(again, s.Payload) {
			t.Fatalf("accepted a payload that does not re-encode to itself: %v", err)
		}
	})
}
