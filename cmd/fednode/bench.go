package main

import "github.com/spf13/cobra"

// benchCommands are the children of `fednode bench`, one per measurement;
// each bench_*.go file adds its own in an init function.
var benchCommands []func() *cobra.Command

func benchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure this machine: verification, revocation latency, Raft throughput, sync",
		Long:  "bench runs one measurement on this machine and prints one JSON object (with --json) or a short summary. Every node it starts listens on 127.0.0.1 only.",
		Args:  cobra.NoArgs,
	}
	for _, mk := range benchCommands {
		c.AddCommand(mk())
	}
	return c
}
