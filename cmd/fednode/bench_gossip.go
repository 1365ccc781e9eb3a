package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/bench"
)

func init() { benchCommands = append(benchCommands, benchGossipCmd) }

func benchGossipCmd() *cobra.Command {
	var o bench.GossipOptions
	var asJSON bool
	c := &cobra.Command{
		Use:   "gossip [--nodes N] [--trials T] [--burst N] [--dir DIR] [--json]",
		Short: "Revocation latency to every node of a loopback mesh, and a burst's completeness",
		Long: "gossip starts N full nodes on 127.0.0.1 (one authority each, every node a Raft voter), then, T times, revokes a fresh credential at one node and times until every node's verify denies it (p50_ms, p99_ms, max_ms), beside the libp2p round trip measured in the same run (rtt_ms). " +
			"With --burst N it then submits N declarations at one node as fast as it can and reports the time until every node holds all of them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Nodes < 2 || o.Nodes > bench.MaxGossipNodes {
				return usage("bench gossip: --nodes %d: want 2 to %d", o.Nodes, bench.MaxGossipNodes)
			}
			if o.Trials < 1 {
				return usage("bench gossip: --trials %d: want at least 1", o.Trials)
			}
			if o.Burst < 0 || o.Burst > bench.MaxBurst {
				return usage("bench gossip: --burst %d: want 0 to %d", o.Burst, bench.MaxBurst)
			}
			res, err := bench.Gossip(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.Marshal(res)
				fmt.Fprintln(out, string(b))
				return nil
			}
			fmt.Fprintf(out, "%d nodes, %d revocations: p50 %.1f ms, p99 %.1f ms, max %.1f ms (loopback rtt %.3f ms; %d node-trials denied by Raft alone)\n",
				res.Nodes, res.Trials, res.P50MS, res.P99MS, res.MaxMS, res.RTTMS, res.ByRaft)
			if b := res.Burst; b != nil {
				fmt.Fprintf(out, "burst of %d: submitted in %.1f s, at every node in %.1f s (%.0f/s), complete %v (%d missing)\n",
					b.Declarations, b.SubmitS, b.Seconds, b.PerS, b.Complete, b.Missing)
			}
			return nil
		},
	}
	c.Flags().IntVar(&o.Nodes, "nodes", bench.DefaultGossipNodes, "full nodes in the mesh")
	c.Flags().IntVar(&o.Trials, "trials", bench.DefaultGossipTrials, "revocations to time")
	c.Flags().IntVar(&o.Burst, "burst", 0, "also publish this many declarations at one node and wait for all of them everywhere (0: no burst)")
	c.Flags().StringVar(&o.Dir, "dir", "", "directory for the nodes' homes (default: a temporary one, removed)")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}
