package authority

import (
	"sync/atomic"
	"time"
)

// atText is the RFC 3339 text of one second of judgement time.
type atText struct {
	sec  int64
	text string
}

// lastAt is the text of the last second formatAt formatted: a verifier
// judges many requests in the same second (every one, with a fixed
// judgement time), and formatting Decision.At was an allocation and a
// sixth of a warm decision's time.
var lastAt atomic.Pointer[atText]

// formatAt is t.UTC().Format(time.RFC3339), which depends on t's second
// only (RFC 3339 without a fraction), remembered for the last second.
func formatAt(t time.Time) string {
	sec := t.Unix()
	if p := lastAt.Load(); p != nil && p.sec == sec {
		return p.text
	}
	s := t.UTC().Format(time.RFC3339)
	lastAt.Store(&atText{sec: sec, text: s})
	return s
}
