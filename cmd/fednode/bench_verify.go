package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/bench"
)

func init() { benchCommands = append(benchCommands, benchVerifyCmd) }

// benchVerifyCmd is `fednode bench verify`: what one decision costs, cold
// and warm, against one bare signature check, for a chain depth and an
// algorithm.
func benchVerifyCmd() *cobra.Command {
	var (
		depth, rounds int
		alg           string
		batch         time.Duration
		asJSON        bool
	)
	c := &cobra.Command{
		Use:   "verify",
		Short: "Measure verification: cold and warm decisions against one bare signature check",
		Long: `verify measures decisions about a presented credential chain of --depth signatures
(a root credential by the issuer and depth-1 delegated links, each signed by its parent's
holder key), allowed at a target through a rule in the graph:

  cold  nothing about the presented chain cached: every envelope parsed, every signature checked
  warm  the same request again, its chain's signatures remembered by the verified-chain cache
  sig   one bare signature verification of --alg, the public key decoded from its bytes each time

The three are measured in interleaved rounds so that noise hits them alike; each figure
is the median over the rounds. With --json it prints one JSON object.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := authority.ParseAlg(alg)
			if err != nil {
				return usage("bench verify: --alg: %v", err)
			}
			if depth < 1 || depth > authority.MaxDelegationDepth {
				return usage("bench verify: --depth %d: want 1 to %d", depth, authority.MaxDelegationDepth)
			}
			if rounds < 1 || rounds > bench.MaxVerifyRounds {
				return usage("bench verify: --rounds %d: want 1 to %d", rounds, bench.MaxVerifyRounds)
			}
			if batch <= 0 || batch > time.Minute {
				return usage("bench verify: --batch %v: want more than 0 and at most 1m", batch)
			}
			r, err := bench.Verify(bench.VerifyOptions{Depth: depth, Alg: a, Rounds: rounds, Batch: batch})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%s\n", b)
				return err
			}
			fmt.Fprintf(out, "%s, chain of %d signature(s), %d bytes; median of %d rounds\n", r.Alg, r.Depth, r.ChainBytes, r.Rounds)
			fmt.Fprintf(out, "  cold  %9.1f µs/decision  (%.3f × depth × sig)  %5.0f allocs\n", float64(r.ColdNsPerOp)/1e3, r.ColdRatio, r.ColdAllocsPerOp)
			fmt.Fprintf(out, "  warm  %9.1f µs/decision                       %5.0f allocs\n", float64(r.WarmNsPerOp)/1e3, r.WarmAllocsPerOp)
			fmt.Fprintf(out, "  sig   %9.1f µs/signature, key decoded each time (%.1f µs with the key unpacked)\n", float64(r.SigVerifyNsPerOp)/1e3, float64(r.SigVerifyCachedKeyNsPerOp)/1e3)
			fmt.Fprintf(out, "  cache %9.0f bytes per cached chain (measured over %d chains)\n", r.BytesPerCachedChain, r.CachedChains)
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&depth, "depth", 1, "signatures in the presented chain (1 to 8)")
	f.StringVar(&alg, "alg", "ed25519", "signature algorithm: ed25519, mldsa65 or hybrid")
	f.IntVar(&rounds, "rounds", bench.DefaultVerifyRounds, "interleaved measurement rounds")
	f.DurationVar(&batch, "batch", bench.DefaultVerifyBatch, "about how long one round runs")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}
