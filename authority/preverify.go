package authority

import (
	"bytes"
	"runtime"
	"sync"
)

// PreVerify checks the signatures of freshly parsed declarations on all
// cores, so that a long run of them (a sync page, a snapshot) can then be
// applied in order by Graph.Apply without paying for the cryptography
// sequentially. For each signature, keys returns the candidate keys for its
// issuer and kid (nil if none is known yet); a signature that verifies under
// a candidate is remembered with that exact key. Graph.Check still decides
// everything as before — which key may sign what, thresholds, windows,
// rotations — and skips only the repeated verification of a signature
// under the very key (algorithm and bytes) it was verified with here.
// Nothing is trusted that was not verified: a miss or a failure here just
// leaves the check to Graph.Check.
//
// WARNING: call it before the Signed values are shared with other
// goroutines (it writes to them); keys is called concurrently.
func PreVerify(sds []*Signed, keys func(s *Signed, kid []byte) []PublicKey) {
	workers := min(runtime.GOMAXPROCS(0), len(sds))
	if workers == 0 {
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, workers)
	for range workers {
		wg.Go(func() {
			for i := range next {
				sds[i].preVerify(keys)
			}
		})
	}
	for i := range sds {
		next <- i
	}
	close(next)
	wg.Wait()
}

func (s *Signed) preVerify(keys func(s *Signed, kid []byte) []PublicKey) {
	for i, sig := range s.Signatures {
		for _, k := range keys(s, sig.KeyID) {
			if k.Alg != sig.Alg || !bytes.Equal(k.KeyID(), sig.KeyID) {
				continue
			}
			if (sigMemo{}).verify(s, i, k) {
				s.good.add(i, k)
				break
			}
		}
	}
}
