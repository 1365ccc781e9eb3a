package authority

import (
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// TestAVXStateCleared: every ML-DSA operation of this package leaves the
// upper halves of the YMM registers clean (circl's assembly does not), so
// that the SSE code after it pays no transition penalty. Where the CPU
// cannot report that state, or circl runs no AVX code, it skips.
func TestAVXStateCleared(t *testing.T) {
	k := testKey(t, AlgMLDSA65, 1)
	h := testKey(t, AlgHybrid, 2)
	msg := []byte("a message")
	sig, err := k.sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	hsig, err := h.sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	pub, hpub := k.Public(), h.Public()
	// Whether a bare circl call leaves the state dirty here at all.
	pk := unpackMLDSA(pub.Key)
	mldsa65.Verify(pk, msg, nil, sig)
	dirty, known := ymmDirty()
	if !known || !dirty {
		t.Skipf("cannot observe the AVX state here (known %v, dirty after circl %v)", known, dirty)
	}
	var c keyCache
	for _, tt := range []struct {
		name string
		op   func()
	}{
		{name: "verify, key unpacked afresh", op: func() { pub.verifyCached(msg, sig, nil) }},
		{name: "verify, key cached", op: func() { pub.verifyCached(msg, sig, &c); pub.verifyCached(msg, sig, &c) }},
		{name: "hybrid verify", op: func() { hpub.verifyCached(msg, hsig, nil) }},
		{name: "sign", op: func() { k.sign(msg) }},
		{name: "hybrid sign", op: func() { h.sign(msg) }},
		{name: "key from seed", op: func() { testKey(t, AlgMLDSA65, 9) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.op()
			if dirty, _ := ymmDirty(); dirty {
				t.Fatal("the upper halves of the YMM registers are left dirty")
			}
		})
	}
}
