package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxSiteFile bounds a site state file (an origin of at most
// tlog.MaxOriginLen bytes, JSON-escaped, and a number).
const maxSiteFile = 4 << 10

// Site is an edge site's memory of the bundles it has accepted: per log
// origin, the highest graph version seen, so that an older bundle replayed
// later is refused as a rollback (VerifyOptions.LastSeen). It is, with Load
// and ReadFile, the only I/O of this package.
//
// Each origin has one file in Dir, "seen-<first 16 bytes of SHA-256(origin),
// hex>.json", mode 0600, holding {"origin": ..., "graph_version": N}.
//
// WARNING: Record is atomic (a crash leaves the old or the new file) and
// never lowers the version for one writer at a time, but two processes
// recording the same origin at once can race (both read, the lower writes
// last). A site runs its verifiers one at a time, or lets one of them record.
type Site struct {
	Dir string
}

type siteState struct {
	Origin       string `json:"origin"`
	GraphVersion uint64 `json:"graph_version"`
}

func (s Site) path(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return filepath.Join(s.Dir, "seen-"+hex.EncodeToString(h[:16])+".json")
}

// LastSeen returns the highest graph version recorded for origin, 0 if none
// is. A state file that cannot be read or does not parse is an error: a
// site that lost its memory must not pretend it has none.
func (s Site) LastSeen(origin string) (uint64, error) {
	if s.Dir == "" || origin == "" {
		return 0, errors.New("bundle: site: a site needs a directory and an origin")
	}
	p := s.path(origin)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bundle: site: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSiteFile+1))
	if err != nil {
		return 0, fmt.Errorf("bundle: site: read %s: %w", p, err)
	}
	var st siteState
	if len(b) > maxSiteFile {
		return 0, fmt.Errorf("bundle: site: %s is over %d bytes: not a site state file", p, maxSiteFile)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("bundle: site: %s is damaged: %w (remove it only if you know this site's last version)", p, err)
	}
	if st.Origin != origin {
		return 0, fmt.Errorf("bundle: site: %s records log %q, not %q", p, abbrev(st.Origin), abbrev(origin))
	}
	return st.GraphVersion, nil
}

// Record notes that this site accepted a bundle of origin at version. It
// never lowers the recorded version: a lower or equal version writes
// nothing. It creates Dir (0700) if needed and replaces the file atomically
// (write a temporary file, sync, rename, sync the directory).
func (s Site) Record(origin string, version uint64) error {
	cur, err := s.LastSeen(origin)
	if err != nil {
		return err
	}
	if version <= cur {
		return nil
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("bundle: site: %w", err)
	}
	b, err := json.Marshal(siteState{Origin: origin, GraphVersion: version})
	if err != nil {
		return fmt.Errorf("bundle: site: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, ".seen-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("bundle: site: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("bundle: site: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("bundle: site: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("bundle: site: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("bundle: site: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.path(origin)); err != nil {
		return fmt.Errorf("bundle: site: %w", err)
	}
	done = true
	// Make the rename durable; not every platform can sync a directory,
	// and the file itself is already on disk, so a failure here is ignored.
	if d, err := os.Open(s.Dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
