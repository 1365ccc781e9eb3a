package main

import (
	"bytes"
	"context"
	"testing"
)

// runFednode runs `fednode ARGS...` in process, through the same command
// tree and exit-code mapping as main, and returns its stdout, the error
// text main would print, and the exit code main would use.
func runFednode(t *testing.T, args ...string) (stdout, errText string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return out.String(), "", 0
	}
	return out.String(), err.Error(), exitCode(err)
}
