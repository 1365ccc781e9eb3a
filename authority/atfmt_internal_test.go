package authority

import (
	"testing"
	"time"
)

// TestFormatAt: the remembered text is always that of the time asked for,
// whether the second repeats or not, whatever the location and fraction.
func TestFormatAt(t *testing.T) {
	east := time.FixedZone("east", 5*3600+1800)
	base := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name string
		at   time.Time
	}{
		{"a second", base},
		{"the same second again", base},
		{"later in that second", base.Add(999 * time.Millisecond)},
		{"the next second", base.Add(time.Second)},
		{"another zone", base.In(east)},
		{"back", base.Add(-time.Hour)},
		{"before 1970", time.Unix(-86400*365, 5)},
		{"the zero time", time.Time{}},
	}
	for _, tc := range tests {
		for range 2 {
			if got, want := formatAt(tc.at), tc.at.UTC().Format(time.RFC3339); got != want {
				t.Errorf("%s: formatAt = %q, want %q", tc.name, got, want)
			}
		}
	}
}
