package authority

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// The memo spares only the arithmetic: it answers for the signature and
// key that verified, never for another key, and never remembers a bad
// signature.
func TestSigMemo(t *testing.T) {
	k1, k2 := testKey(t, AlgEd25519, 1), testKey(t, AlgEd25519, 2)
	d := Declaration{Kind: KindGenesis, IssuedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Unix(),
		Genesis: &Genesis{Name: "memo", Kind: "oidc", RootKeys: []PublicKey{k1.Public()}, Threshold: 1}}
	signed, err := Sign(d, k1)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), signed.Raw...)
	bad[len(bad)-1] ^= 1 // the signature is the envelope's last field

	tests := []struct {
		name    string
		raw     []byte
		keys    []PublicKey
		wantErr error
		// remembered: whether signature 0 with k1 is in the memo after.
		remembered bool
	}{
		{name: "good signature is remembered", raw: signed.Raw, keys: []PublicKey{k1.Public()}, remembered: true},
		{name: "bad signature is not", raw: bad, keys: []PublicKey{k1.Public()}, wantErr: ErrBadSignature},
		{name: "a key set without the signer", raw: signed.Raw, keys: []PublicKey{k2.Public()}, wantErr: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd, err := Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if sd.good.has(0, k1.Public()) {
				t.Fatal("a freshly parsed envelope remembers a signature")
			}
			for round := range 2 {
				err := sd.VerifyWith(tt.keys)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("round %d: VerifyWith = %v, want %v", round, err, tt.wantErr)
				}
			}
			if got := sd.good.has(0, k1.Public()); got != tt.remembered {
				t.Fatalf("remembered %v, want %v", got, tt.remembered)
			}
			if sd.good.has(0, k2.Public()) {
				t.Fatal("the memo answers for a key that never verified")
			}
		})
	}

	t.Run("a remembered signature still needs its key in the set", func(t *testing.T) {
		sd, err := Parse(signed.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := sd.VerifyThreshold([]PublicKey{k1.Public()}, 1); err != nil {
			t.Fatal(err)
		}
		if err := sd.VerifyThreshold([]PublicKey{k2.Public()}, 1); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("after a good check, a key set without the signer: %v, want ErrBadSignature", err)
		}
	})

	t.Run("concurrent checks", func(t *testing.T) {
		sd, err := Parse(signed.Raw)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sd.VerifyWith([]PublicKey{k1.Public()}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := len(sd.good.good); n != 1 {
			t.Fatalf("memo holds %d entries after concurrent checks of one signature, want 1", n)
		}
	})
}
