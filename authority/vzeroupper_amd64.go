package authority

import "golang.org/x/sys/cpu"

// vzeroupper clears the upper halves of the YMM registers.
//
//go:noescape
func vzeroupper()

// hasAVX is whether the CPU has VZEROUPPER (and circl may run AVX2 code).
var hasAVX = cpu.X86.HasAVX

// clearUpper ends the AVX2 state circl's ML-DSA leaves behind: its amd64
// assembly (NTT, Keccak x4) returns with the upper halves of the YMM
// registers dirty, never running VZEROUPPER, and on this machine's CPUs
// every legacy-SSE instruction after that pays a transition penalty until
// something clears them. Go code is full of such instructions (the X15
// zero register, SHA-NI SHA-256, memclr), so without this the SHA-256 of a
// declaration ID right after an ML-DSA verification took about 100x its
// cost (measured: 20 SHA-256 of 2 KB, 24 µs after SHA-256, 2.6 ms after
// mldsa65.Verify; TestAVXStateCleared checks the state is left clean). Call it after every call into
// circl's ML-DSA.
func clearUpper() {
	if hasAVX {
		vzeroupper()
	}
}

// xinuse returns the XINUSE state-component bitmap, where the CPU has one
// (for TestAVXStateCleared).
//
//go:noescape
func xinuse() (v uint64, ok bool)

// ymmDirty reports whether the upper halves of the YMM registers are in
// use, and whether the CPU can tell.
func ymmDirty() (dirty, known bool) {
	if !hasAVX || !cpu.X86.HasOSXSAVE {
		return false, false
	}
	v, ok := xinuse()
	return v&4 != 0, ok
}
