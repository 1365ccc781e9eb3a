#include "textflag.h"

// func vzeroupper()
TEXT ·vzeroupper(SB), NOSPLIT|NOFRAME, $0-0
	VZEROUPPER
	RET

// func xinuse() (v uint64, ok bool)
// XINUSE (XGETBV with ECX=1), where CPUID.(EAX=0DH,ECX=1):EAX[2] says it
// exists: bit 2 is set while the upper halves of the YMM registers are not
// in their initial (zero) state.
TEXT ·xinuse(SB), NOSPLIT, $0-9
	MOVL $0x0d, AX
	MOVL $1, CX
	CPUID
	BTL  $2, AX
	JCC  none
	MOVL $1, CX
	XGETBV
	SHLQ $32, DX
	ORQ  DX, AX
	MOVQ AX, v+0(FP)
	MOVB $1, ok+8(FP)
	RET

none:
	MOVQ $0, v+0(FP)
	MOVB $0, ok+8(FP)
	RET
