package bench

import (
	"errors"
	"time"
)

// ErrBadOptions: a field of a measurement's options is out of range.
var ErrBadOptions = errors.New("bench: bad options")

// quantile of sorted durations, nearest rank; 0 for none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
