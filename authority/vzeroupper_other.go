//go:build !amd64

package authority

// clearUpper is a no-op where there are no YMM registers (see the amd64
// version).
func clearUpper() {}

func ymmDirty() (dirty, known bool) { return false, false }
