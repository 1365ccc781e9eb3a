package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/bench"
)

func init() { benchCommands = append(benchCommands, benchSyncCmd) }

func benchSyncCmd() *cobra.Command {
	var (
		decls, auths int
		asJSON       bool
	)
	c := &cobra.Command{
		Use:   "sync",
		Short: "Time a new node catching up a peer's graph by anti-entropy sync",
		Long: "sync fills a peer node's store with --declarations signed declarations (geneses, rules and revocations of --authorities authorities), " +
			"starts a new node that knows only that peer, and times how long it takes to hold all of them, every page checked against the peer's signed checkpoint " +
			"and every signature verified. It prints seconds, per_s and declarations.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := bench.Sync(cmd.Context(), bench.SyncOptions{Declarations: decls, Authorities: auths})
			if err != nil {
				return err
			}
			if asJSON {
				b, err := json.Marshal(res)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "synced %d declarations in %.2f s (%.0f/s, %d pages, %d cores)\n", res.Declarations, res.Seconds, res.PerS, res.Pages, res.Cores)
			return err
		},
	}
	c.Flags().IntVar(&decls, "declarations", 100000, "how many declarations the peer holds")
	c.Flags().IntVar(&auths, "authorities", 8, "how many authorities sign them")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}
