package bundle

import (
	"bytes"
	"fmt"

	"github.com/fednode/fednode/tlog"
)

// ProveFull fills the proofs of a full bundle (BaseVersion 0) from its own
// declarations: it rebuilds the log in memory, which is an order of
// magnitude faster than reading each proof's nodes from disk, and checks that
// the rebuilt root is root (the checkpoint's), so a bundle can only be proved
// against the log it claims.
func (c *Contents) ProveFull(root []byte) error {
	if c.BaseVersion != 0 {
		return fmt.Errorf("bundle: prove: a delta bundle (base version %d) needs the log's nodes: use Prove", c.BaseVersion)
	}
	mem := tlog.NewMemStore()
	app, err := tlog.NewAppender(0, nil)
	if err != nil {
		return err
	}
	for _, d := range c.Declarations {
		if err := app.Append(d, mem.PutNode); err != nil {
			return fmt.Errorf("bundle: prove: %w", err)
		}
	}
	got, err := app.Root()
	if err != nil {
		return fmt.Errorf("bundle: prove: %w", err)
	}
	if !bytes.Equal(got, root) {
		return fmt.Errorf("bundle: prove: the declarations' root %x is not the checkpoint's %x", got[:8], root[:min(len(root), 8)])
	}
	return c.Prove(mem)
}
