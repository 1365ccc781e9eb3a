package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

func init() { moreCommands = append(moreCommands, consortiumCmd) }

// consortiumCmd groups the governance commands: each signs a declaration of
// the home's authority (a charter or a membership act) and submits it to
// the home's running node, so the audit log shows who did what.
func consortiumCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "consortium",
		Short: "Govern the consortium: charter, ratify, approve admissions and removals, leave, status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usage("consortium: name a subcommand: charter, ratify, approve, remove, leave or status")
		},
	}
	c.AddCommand(charterCmd(), ratifyCmd(),
		memberActCmd("approve", authority.ActionAdmit, "Approve admitting AUTHORITY (a pending applicant, by name or ID)"),
		memberActCmd("remove", authority.ActionRemove, "Approve removing the member AUTHORITY"),
		leaveCmd(), consortiumStatusCmd())
	return c
}

// consortiumOf fetches the consortium as the home's node sees it.
func consortiumOf(ctx context.Context, cl *node.Client) (*node.ConsortiumStatus, error) {
	st, err := cl.Status(ctx)
	if err != nil {
		return nil, err
	}
	return st.Consortium, nil
}

// homeConsortium is the client of home's running node and the consortium
// as that node sees it (nil before any charter).
func homeConsortium(ctx context.Context, home string) (*node.Home, *node.Client, *node.ConsortiumStatus, error) {
	h, cl, err := homeClient(home)
	if err != nil {
		return nil, nil, nil, err
	}
	cs, err := consortiumOf(ctx, cl)
	if err != nil {
		return nil, nil, nil, err
	}
	return h, cl, cs, nil
}

// declareMembership signs a membership act of the home's authority, submits
// it and waits for it to be agreed.
func declareMembership(cmd *cobra.Command, h *node.Home, cl *node.Client, a authority.MemberAction, subject authority.ID, wait time.Duration) (*authority.Signed, error) {
	sd, err := node.SignNext(cmd.Context(), h, cl, time.Now(), func(d *authority.Declaration) {
		d.Kind, d.Membership = authority.KindMembership, &authority.Membership{Action: a, Subject: subject}
	})
	if errors.Is(err, node.ErrRefused) {
		return nil, usage("%v", err) // the consortium's rules say no: the operator's to fix
	}
	if err != nil {
		return nil, err
	}
	return sd, waitAgreed(cmd, cl, sd.ID, wait)
}

// resolveSubject finds the authority an approval or removal names: a
// pending applicant (by name or ID), else an authority of the graph.
func resolveSubject(ctx context.Context, cl *node.Client, ref string) (id authority.ID, name string, err error) {
	adm, err := cl.Admissions(ctx)
	if err != nil {
		return id, "", err
	}
	var hits []node.AdmissionJSON
	for _, a := range adm {
		if a.Name == ref || a.ID.String() == ref {
			hits = append(hits, a)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0].ID, hits[0].Name, nil
	case 0:
	default:
		var ids []string
		for _, a := range hits {
			ids = append(ids, a.ID.String())
		}
		return id, "", usage("%q names %d pending applicants: give one of their IDs: %s", ref, len(hits), strings.Join(ids, ", "))
	}
	a, err := cl.Head(ctx, ref)
	if err != nil {
		var ae *node.APIError
		if errors.As(err, &ae) && ae.Status == 404 {
			return id, "", usage("%q is neither a pending applicant nor an authority of the graph (see fednode consortium status): %v", ref, err)
		}
		return id, "", err
	}
	return a.ID, a.Name, nil
}

func memberActCmd(verb string, action authority.MemberAction, short string) *cobra.Command {
	var home string
	var wait time.Duration
	c := &cobra.Command{
		Use:   verb + " AUTHORITY --home DIR",
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || home == "" {
				return usage("consortium %s: want one AUTHORITY (name or ID) and --home", verb)
			}
			ctx := cmd.Context()
			h, cl, cs, err := homeConsortium(ctx, home)
			if err != nil {
				return err
			}
			if cs == nil || !cs.Active {
				return usage("consortium %s: the consortium has no active charter yet (fednode consortium charter, then ratify)", verb)
			}
			id, name, err := resolveSubject(ctx, cl, args[0])
			if err != nil {
				return err
			}
			member := slices.ContainsFunc(cs.Members, func(m node.MemberJSON) bool { return m.ID == id })
			switch {
			case action == authority.ActionAdmit && member:
				return usage("consortium approve: %s is a member already", name)
			case action == authority.ActionRemove && !member:
				return usage("consortium remove: %s is not a member", name)
			case action == authority.ActionRemove && id == h.Authority:
				return usage("consortium remove: a member leaves of its own accord with `fednode consortium leave`")
			case action == authority.ActionRemove && len(cs.Members)-1 < cs.Threshold:
				return usage("consortium remove: removing %s would leave %d members, fewer than the threshold %d: the consortium could never admit again", name, len(cs.Members)-1, cs.Threshold)
			}
			sd, err := declareMembership(cmd, h, cl, action, id, wait)
			if sd != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "membership %s: %s approves to %v %s (%s); %d approvals admit or remove\n", sd.ID, h.Config.Name, action, name, id, cs.Threshold)
			}
			if err != nil {
				return fmt.Errorf("consortium %s: %w", verb, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory of the running node of the approving member")
	c.Flags().DurationVar(&wait, "wait", 20*time.Second, "wait this long for the approval to be agreed (0: return once submitted)")
	return c
}

func leaveCmd() *cobra.Command {
	var home string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "leave --home DIR",
		Short: "Leave the consortium: the home's authority stops being a member at once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" {
				return usage("consortium leave: --home is required")
			}
			h, cl, cs, err := homeConsortium(cmd.Context(), home)
			if err != nil {
				return err
			}
			switch {
			case cs == nil || !cs.Active:
				return usage("consortium leave: the consortium has no active charter yet")
			case !slices.ContainsFunc(cs.Members, func(m node.MemberJSON) bool { return m.ID == h.Authority }):
				return usage("consortium leave: %s is not a member", h.Config.Name)
			case len(cs.Members)-1 < cs.Threshold:
				return usage("consortium leave: %s leaving would leave %d members, fewer than the threshold %d", h.Config.Name, len(cs.Members)-1, cs.Threshold)
			}
			sd, err := declareMembership(cmd, h, cl, authority.ActionLeave, h.Authority, wait)
			if sd != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "membership %s: %s leaves the consortium\n", sd.ID, h.Config.Name)
			}
			if err != nil {
				return fmt.Errorf("consortium leave: %w", err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory of the running node of the leaving member")
	c.Flags().DurationVar(&wait, "wait", 20*time.Second, "wait this long for the departure to be agreed (0: return once submitted)")
	return c
}

func charterCmd() *cobra.Command {
	var home, members, voters string
	var threshold int
	var admitVoters bool
	var wait time.Duration
	c := &cobra.Command{
		Use:   "charter --home DIR --members A,B,C [--voters A,B] --threshold K [--admit-voters=false]",
		Short: "Declare the consortium's charter: its founding members, its Raft voters and the admission threshold",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" || members == "" || threshold == 0 {
				return usage("consortium charter: --home, --members and --threshold are required")
			}
			h, cl, err := homeClient(home)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			resolve := func(flag, list string) ([]authority.ID, error) {
				var ids []authority.ID
				for _, ref := range splitList(list) {
					a, err := cl.Head(ctx, ref)
					if err != nil {
						return nil, usage("consortium charter: --%s %q: %v (every founder's genesis must be agreed first)", flag, ref, err)
					}
					if slices.Contains(ids, a.ID) {
						return nil, usage("consortium charter: --%s names %s twice", flag, a.Name)
					}
					ids = append(ids, a.ID)
				}
				slices.SortFunc(ids, func(x, y authority.ID) int { return bytes.Compare(x[:], y[:]) })
				return ids, nil
			}
			ch := authority.Charter{AdmitVoters: admitVoters}
			if ch.Members, err = resolve("members", members); err != nil {
				return err
			}
			if voters != "" {
				if ch.Voters, err = resolve("voters", voters); err != nil {
					return err
				}
			}
			if !slices.Contains(ch.Members, h.Authority) {
				return usage("consortium charter: --members must name %s, the declaring authority", h.Config.Name)
			}
			for _, v := range ch.Voters {
				if !slices.Contains(ch.Members, v) {
					return usage("consortium charter: voter %s is not one of --members", v)
				}
			}
			if threshold < 1 || threshold > len(ch.Members) {
				return usage("consortium charter: --threshold %d: want 1 to %d (the members)", threshold, len(ch.Members))
			}
			ch.Threshold = uint8(threshold)
			sd, err := node.SignNext(ctx, h, cl, time.Now(), func(d *authority.Declaration) {
				d.Kind, d.Charter = authority.KindCharter, &ch
			})
			if err != nil {
				return fmt.Errorf("consortium charter: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "charter %s: %d members, admission by %d; active once every other founder runs `fednode consortium ratify`\n", sd.ID, len(ch.Members), threshold)
			return waitAgreed(cmd, cl, sd.ID, wait)
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory of the running node of the declaring founder")
	c.Flags().StringVar(&members, "members", "", "the founding members (names or IDs, comma-separated), the declarer among them")
	c.Flags().StringVar(&voters, "voters", "", "the members whose nodes vote in Raft (default: every member)")
	c.Flags().IntVar(&threshold, "threshold", 0, "approvals by distinct members that admit or remove a member")
	c.Flags().BoolVar(&admitVoters, "admit-voters", true, "admitted members' nodes vote in Raft too")
	c.Flags().DurationVar(&wait, "wait", 20*time.Second, "wait this long for the charter to be agreed (0: return once submitted)")
	return c
}

func ratifyCmd() *cobra.Command {
	var home string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "ratify --home DIR",
		Short: "Ratify the consortium's charter as one of its founders",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" {
				return usage("consortium ratify: --home is required")
			}
			h, cl, cs, err := homeConsortium(cmd.Context(), home)
			if err != nil {
				return err
			}
			switch {
			case cs == nil:
				return usage("consortium ratify: no charter is declared yet (fednode consortium charter)")
			case cs.Active:
				return usage("consortium ratify: the charter %s is active already", cs.Charter.Short())
			case !slices.ContainsFunc(cs.Founders, func(r node.AuthorityRef) bool { return r.ID == h.Authority }):
				return usage("consortium ratify: %s is not a founder named by the charter %s", h.Config.Name, cs.Charter.Short())
			case slices.ContainsFunc(cs.Ratified, func(r node.AuthorityRef) bool { return r.ID == h.Authority }):
				return usage("consortium ratify: %s ratified the charter already", h.Config.Name)
			}
			sd, err := declareMembership(cmd, h, cl, authority.ActionRatify, cs.Charter, wait)
			if sd != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "membership %s: %s ratifies the charter %s\n", sd.ID, h.Config.Name, cs.Charter)
			}
			if err != nil {
				return fmt.Errorf("consortium ratify: %w", err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", "", "home directory of the running node of the ratifying founder")
	c.Flags().DurationVar(&wait, "wait", 20*time.Second, "wait this long for the ratification to be agreed (0: return once submitted)")
	return c
}

func consortiumStatusCmd() *cobra.Command {
	var api, home string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status (--api HOST:PORT | --home DIR) [--json]",
		Short: "Show the consortium: charter, members and voters, removed members, pending admission requests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, _, err := nodeClient("consortium status", api, home)
			if err != nil {
				return err
			}
			cs, err := consortiumOf(cmd.Context(), cl)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.MarshalIndent(cs, "", "  ") // null before any charter
				fmt.Fprintln(out, string(b))
				return nil
			}
			if cs == nil {
				fmt.Fprintln(out, "no charter: the mesh is in bootstrap (every authority may declare; fednode consortium charter founds the consortium)")
				return nil
			}
			state := "active"
			if !cs.Active {
				state = fmt.Sprintf("awaiting ratification (%d of %d founders)", len(cs.Ratified), len(cs.Founders))
			}
			fmt.Fprintf(out, "charter   %s, %s\nthreshold %d approvals admit or remove a member\n", cs.Charter, state, cs.Threshold)
			for _, m := range cs.Members {
				role := "non-voter"
				if m.Voter {
					role = "voter"
				}
				fmt.Fprintf(out, "member    %-16s %s  %s, %d nodes\n", m.Name, m.ID, role, len(m.Nodes))
			}
			for _, r := range cs.Removed {
				fmt.Fprintf(out, "removed   %-16s %s\n", r.Name, r.ID)
			}
			for _, p := range cs.Pending {
				var by []string
				for _, a := range p.Approvals {
					by = append(by, a.Name)
				}
				fmt.Fprintf(out, "pending   %-16s %s  %d of %d approvals %s\n", p.Name, p.ID, len(p.Approvals), p.Threshold, strings.Join(by, ","))
			}
			return nil
		},
	}
	c.Flags().StringVar(&api, "api", "", "the node's API address")
	c.Flags().StringVar(&home, "home", "", "a home whose running node to ask")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
