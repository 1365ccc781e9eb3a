package bench

import (
	"context"
	"testing"
)

func TestSyncSmall(t *testing.T) {
	tests := []struct {
		name         string
		declarations int
		authorities  int
	}{
		{"one page", 200, 3},
		{"several pages", 2600, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Sync(context.Background(), SyncOptions{Declarations: tc.declarations, Authorities: tc.authorities, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if res.Declarations != tc.declarations || res.Seconds <= 0 || res.PerS <= 0 || res.Pages < 1 {
				t.Fatalf("result %+v", res)
			}
			t.Logf("%+v", res)
		})
	}
}
