package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/client/admin"
)

func newAdminBookiesCmd(a *adminConn) *cobra.Command {
	list := a.command("list", "List the bookies: registered ones and gone ones that ledgers still list", 0, func(x *adminCall) error {
		bs, err := x.c.Bookies().List(x.ctx)
		if err != nil {
			return err
		}
		return x.print(nonNil(bs))
	})
	under := a.command("underreplicated", "List the ledgers auto-recovery is to re-replicate", 0, func(x *adminCall) error {
		ls, err := x.c.Bookies().Underreplicated(x.ctx)
		if err != nil {
			return err
		}
		return x.print(nonNil(ls))
	})
	status := a.command("autorecovery", "Show the auditor, the ledgers to re-replicate and the bookies", 0, func(x *adminCall) error {
		st, err := x.c.Bookies().AutoRecovery(x.ctx)
		if err != nil {
			return err
		}
		return x.print(st)
	})
	var wait time.Duration
	decom := a.command("decommission BOOKIE", "Drain a bookie: it takes no new entries and its ledgers are copied elsewhere", 1, func(x *adminCall) error {
		id := x.args[0]
		if err := x.c.Bookies().Decommission(x.ctx, id); err != nil {
			return err
		}
		if wait <= 0 {
			return nil
		}
		deadline := time.Now().Add(wait)
		for {
			bs, err := x.c.Bookies().List(x.ctx)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(bs, func(b admin.Bookie) bool { return b.ID == id })
			if i < 0 || bs[i].Ledgers == 0 {
				fmt.Fprintf(x.cmd.OutOrStdout(), "bookie %s is drained: no ledger lists it; it may be stopped\n", id)
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("bookie %s still holds %d ledgers after %v", id, bs[i].Ledgers, wait)
			}
			select {
			case <-time.After(2 * time.Second):
			case <-x.ctx.Done():
				return x.ctx.Err()
			}
		}
	})
	decom.Flags().DurationVar(&wait, "wait", 0, "wait up to this long until no ledger lists the bookie (0: return at once)")
	recom := a.command("recommission BOOKIE", "Cancel a decommission: the bookie takes entries again", 1, func(x *adminCall) error {
		return x.c.Bookies().Recommission(x.ctx, x.args[0])
	})
	return group("bookies", "Bookies, auto-recovery and decommissioning (superusers)", list, under, status, decom, recom)
}
