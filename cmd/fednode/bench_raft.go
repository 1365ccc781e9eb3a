package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/bench"
)

func init() { benchCommands = append(benchCommands, benchRaftCmd) }

func benchRaftCmd() *cobra.Command {
	var o bench.RaftOptions
	var asJSON bool
	var profile string
	c := &cobra.Command{
		Use:   "raft",
		Short: "Signed declarations committed per second through Raft on real nodes",
		Long: `raft starts --voters real nodes on 127.0.0.1 (libp2p, Raft, badger with fsync), submits
--count signed declarations at the leader through the node's Submit path (signature check,
pending pool, gossip), and measures how many the leader commits and applies per second, the
commit latency (submit to applied at the leader: p50_ms, p99_ms, max_ms), and how many the
machine could parse and signature-check per second on all cores (cpu_verify_limit_per_s),
measured in the same run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return fmt.Errorf("bench raft: --cpuprofile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("bench raft: --cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			res, err := bench.Raft(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(res)
			}
			_, err = fmt.Fprintf(out, "%d voters: %d declarations committed in %.2fs: %.0f/s (p50 %.1f ms, p99 %.1f ms at the %s); all voters in %.2fs\nCPU verify limit %.0f/s on %d cores: ratio %.2f\n",
				res.Voters, res.Declarations, res.Seconds, res.CommittedPerS, res.P50MS, res.P99MS, res.LatencyAt, res.AllVotersSeconds,
				res.CPUVerifyLimitPerS, res.CPUs, res.Ratio)
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&o.Voters, "voters", bench.DefaultRaftVoters, "number of voters (real nodes on loopback)")
	f.IntVar(&o.Count, "count", bench.DefaultRaftCount, "signed declarations to commit")
	f.IntVar(&o.Authorities, "authorities", bench.DefaultRaftAuthorities, "chains the declarations are spread over")
	f.IntVar(&o.Submitters, "submitters", bench.DefaultRaftSubmitters, "concurrent submitters")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the run (all nodes are in this process) to this file")
	return c
}
