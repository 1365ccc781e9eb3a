package bundle

import (
	"fmt"
	"io"
	"os"
)

// ReadFile reads the bundle file at path, at most MaxBundleSize bytes. It
// and Load are this package's file reading, kept apart so that the core
// stays a function of bytes.
//
// A file over MaxBundleSize is refused with ErrInvalid without reading it
// all; a file that cannot be read is an error that does not wrap ErrInvalid.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: load: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxBundleSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, over the %d-byte limit (MaxBundleSize)", ErrInvalid, path, fi.Size(), MaxBundleSize)
	}
	// Read one byte past the limit, so an oversized file is detected even if
	// it grows while we read it, and never costs more than the limit.
	b, err := io.ReadAll(io.LimitReader(f, MaxBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("bundle: load %s: %w", path, err)
	}
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("%w: %s is over the %d-byte limit (MaxBundleSize)", ErrInvalid, path, MaxBundleSize)
	}
	return b, nil
}

// Load reads the full bundle file at path and opens it with Open.
func Load(path string, p Policy) (*Bundle, error) {
	b, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	bd, err := Open(b, p)
	if err != nil {
		return nil, fmt.Errorf("bundle: load %s: %w", path, err)
	}
	return bd, nil
}
