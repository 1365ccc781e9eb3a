package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/testnet"
)

func testnetCmd() *cobra.Command {
	var nodes int
	var scenario, logLevel string
	var asJSON, keep bool
	c := &cobra.Command{
		Use:   "testnet [--nodes N] [--scenario FILE] [--json] [--keep]",
		Short: "Run a local mesh on loopback and tell a scenario (default: the cross-cloud story)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, src := testnet.StoryName, testnet.Story
			if scenario != "" {
				b, err := os.ReadFile(scenario)
				if err != nil {
					return usage("testnet: --scenario: %v", err)
				}
				name, src = scenario, b
			}
			sc, err := testnet.Parse(name, src)
			if err != nil {
				return usage("%v", err)
			}
			logger := slog.New(slog.DiscardHandler)
			if logLevel != "" {
				if logger, err = newLogger(logLevel, "text"); err != nil {
					return err
				}
			}
			var out io.Writer = cmd.OutOrStdout()
			if asJSON {
				out = io.Discard
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			fmt.Fprintf(out, "fednode testnet: %s\n", name)
			opts := testnet.RunOptions{Out: out, Nodes: nodes, Logger: logger}
			if scenario != "" {
				// jwks=, x509-roots=, jwt= and x509= paths are relative to the scenario file.
				opts.Files = testnet.ScenarioFiles(filepath.Dir(scenario))
			}
			res, mesh, err := testnet.Run(ctx, sc, src, opts)
			if err != nil {
				if mesh != nil {
					mesh.Close()
				}
				return err
			}
			defer mesh.Close()
			if asJSON {
				b, _ := json.Marshal(res)
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			} else {
				res.Summary(out)
				fmt.Fprintf(out, "(%s)\n", time.Since(start).Round(time.Millisecond))
			}
			if keep {
				names, live := mesh.Live()
				fmt.Fprintln(os.Stderr, "the mesh keeps running (Ctrl-C to stop); node APIs:")
				for i, n := range live {
					fmt.Fprintf(os.Stderr, "  %-16s %s   home %s\n", names[i], n.APIAddr(), n.Home().Dir)
				}
				<-ctx.Done()
			}
			if !res.OK {
				return &exitError{code: 1, err: fmt.Errorf("testnet: some expectations did not hold")}
			}
			return nil
		},
	}
	c.Flags().IntVar(&nodes, "nodes", 0, "total nodes: the scenario's authorities plus observer nodes (default: one per authority)")
	c.Flags().StringVar(&scenario, "scenario", "", "scenario file to run (default: the built-in cross-cloud story)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object instead of the narrative")
	c.Flags().BoolVar(&keep, "keep", false, "leave the mesh running and print each node's API address")
	c.Flags().StringVar(&logLevel, "log-level", "", "show the nodes' logs at this level on stderr")
	return c
}
