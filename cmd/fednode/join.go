package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/node"
)

func init() { moreCommands = append(moreCommands, joinCmd) }

// declareNodesTimeout bounds waiting, at start, for the node's authority to
// be agreed before it declares its addresses.
const declareNodesTimeout = 10 * time.Minute

// declareNodes runs node.DeclareNodes in the background of `run` and
// `join`: a node whose listen addresses differ from what its authority
// declared says so, so members' nodes can find it (peers learnt from the
// graph).
func declareNodes(ctx context.Context, n *node.Node, log *slog.Logger) {
	go func() {
		ctx, cancel := context.WithTimeout(ctx, declareNodesTimeout)
		defer cancel()
		if sd, err := n.DeclareNodes(ctx); err != nil && ctx.Err() == nil {
			log.Warn("declare this node's addresses", "err", err)
		} else if sd != nil {
			log.Info("declared this node's addresses", "id", sd.ID.String())
		}
	}()
}

// joinCmd is `run --join MULTIADDR` under its own name: connect to a member,
// submit the home's genesis as an admission request, and keep running while
// the members approve it.
func joinCmd() *cobra.Command {
	var home, api, logLevel, logFormat string
	var listen, peers []string
	c := &cobra.Command{
		Use:   "join MULTIADDR --home DIR [--listen MULTIADDR] [--api HOST:PORT] [--peer MULTIADDR]",
		Short: "Run the node and ask the consortium at MULTIADDR to admit its authority",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usage("join: want exactly one MULTIADDR of a running member (ending in /p2p/<peer id>), got %d arguments", len(args))
			}
			if home == "" {
				return usage("join: --home is required")
			}
			logger, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			return runNode(cmd, node.Config{Home: home, Listen: listen, API: api, Join: args, Peers: peers, Logger: logger},
				func(n *node.Node) []string {
					name := n.Home().Config.Name
					return []string{fmt.Sprintf("fednode %s running, asking to join through %s", name, args[0]),
						"members approve with: fednode consortium approve " + name}
				})
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory (from fednode init)")
	c.Flags().StringSliceVar(&listen, "listen", nil, "libp2p listen multiaddrs (default: the home's config)")
	c.Flags().StringVar(&api, "api", "", "HTTP API address, loopback only (default: the home's config)")
	c.Flags().StringSliceVar(&peers, "peer", nil, "multiaddr of a peer to connect to at start (repeatable)")
	c.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	c.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return c
}
