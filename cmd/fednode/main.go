// Command fednode runs a fednode node and drives it: init a home, run the
// node, sign declarations, verify online or offline, and run a local testnet.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usage marks an error as bad input or usage: exit code 2.
func usage(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "fednode:", err)
	os.Exit(exitCode(err))
}

// moreCommands are further top-level commands; a file that defines one adds
// its constructor here in an init function, so commands live beside their
// helpers rather than in one list.
var moreCommands []func() *cobra.Command

// newRootCmd builds the whole command tree. Each call makes fresh commands
// and flags, so tests can run the CLI in process as main does.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fednode",
		Short:         "fednode: a governance-chain federation mesh",
		Long:          "fednode runs one node of a federation mesh: identity authorities that share no common intermediary declare signed federation rules, gossip them over libp2p, agree on them through Raft, and verify cross-authority identity chains locally or offline.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(initCmd(), runCmd(), federateCmd(), issueCmd(), revokeCmd(), signCmd(), submitCmd(), verifyCmd(), bundleCmd(), statusCmd(), auditCmd(), testnetCmd(), benchCmd())
	for _, mk := range moreCommands {
		root.AddCommand(mk())
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: 2, err: err} })
	return root
}

// exitCode is the process exit code for a command's error: the code an
// exitError carries, 2 for cobra's usage errors, else 1.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Cobra's own errors (unknown command, missing required flag) are usage.
	if isCobraUsage(err) {
		return 2
	}
	return 1
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "required flag", "accepts ", "invalid argument", "unknown shorthand", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
