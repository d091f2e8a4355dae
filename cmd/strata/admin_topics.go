package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/units"
)

func newAdminTopicsCmd(a *adminConn) *cobra.Command {
	cmd := group("topics", "Create, inspect and delete topics; manage their subscriptions and policies")
	list := a.command("list NAMESPACE", "List a namespace's topics (partitions included)", 1, func(x *adminCall) error {
		names, err := x.c.Topics().List(x.ctx, x.args[0])
		if err != nil {
			return err
		}
		return x.print(names)
	})
	listPartitioned := a.command("list-partitioned NAMESPACE", "List a namespace's partitioned topics", 1, func(x *adminCall) error {
		names, err := x.c.Topics().ListPartitioned(x.ctx, x.args[0])
		if err != nil {
			return err
		}
		return x.print(names)
	})
	listPartitioned.Aliases = []string{"list-partitioned-topics"}
	cmd.AddCommand(list, listPartitioned)
	cmd.AddCommand(topicLifecycleCmds(a)...)
	cmd.AddCommand(topicStatsCmds(a)...)
	cmd.AddCommand(topicSubscriptionCmds(a)...)
	cmd.AddCommand(topicPermissionCmds(a)...)
	cmd.AddCommand(topicOffloadCmds(a)...)
	cmd.AddCommand(topicPolicyCmds(a)...)
	return cmd
}

// topicCmd builds a command whose one argument is a topic.
func topicCmd(a *adminConn, use, short string, fn func(x *adminCall, t naming.Topic) error) *cobra.Command {
	return a.command(use, short, 1, func(x *adminCall) error {
		t, err := x.topic()
		if err != nil {
			return err
		}
		return fn(x, t)
	})
}

// partitions returns the partition count of t, 0 when it is not partitioned.
func partitions(x *adminCall, t naming.Topic) (int, error) {
	md, err := x.c.Topics().GetPartitioned(x.ctx, t.String())
	return md.Partitions, err
}

// eachPartition runs fn on every partition of a partitioned topic, or on
// the topic itself, as Pulsar brokers do for subscription operations on a
// partitioned topic. Partitions answering 404 (not created yet, or without
// the subscription) are skipped unless every partition does.
func eachPartition(x *adminCall, t naming.Topic, fn func(topic string) error) error {
	n, err := partitions(x, t)
	if err != nil {
		return err
	}
	if n == 0 {
		return fn(t.String())
	}
	var notFound error
	done := 0
	for i := 0; i < n; i++ {
		p := t.Partition(i)
		switch err := fn(p.String()); {
		case err == nil:
			done++
		case admin.IsNotFound(err):
			notFound = err
		default:
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	if done == 0 && notFound != nil {
		return notFound
	}
	return nil
}

func topicLifecycleCmds(a *adminConn) []*cobra.Command {
	var n, newN int
	var force, forcePartitioned bool
	create := topicCmd(a, "create TOPIC", "Create a non-partitioned topic", func(x *adminCall, t naming.Topic) error {
		return x.c.Topics().Create(x.ctx, t.String())
	})
	createPartitioned := topicCmd(a, "create-partitioned-topic TOPIC", "Create a partitioned topic of -p partitions", func(x *adminCall, t naming.Topic) error {
		return x.c.Topics().CreatePartitioned(x.ctx, t.String(), n)
	})
	createPartitioned.Flags().IntVarP(&n, "partitions", "p", 0, "number of partitions")
	createPartitioned.MarkFlagRequired("partitions")
	update := topicCmd(a, "update-partitioned-topic TOPIC", "Raise a partitioned topic's partitions to -p", func(x *adminCall, t naming.Topic) error {
		return x.c.Topics().UpdatePartitioned(x.ctx, t.String(), newN)
	})
	update.Flags().IntVarP(&newN, "partitions", "p", 0, "new number of partitions")
	update.MarkFlagRequired("partitions")
	get := topicCmd(a, "get-partitioned-topic-metadata TOPIC", "Show a topic's number of partitions (0: not partitioned)", func(x *adminCall, t naming.Topic) error {
		md, err := x.c.Topics().GetPartitioned(x.ctx, t.String())
		if err != nil {
			return err
		}
		return x.print(md)
	})
	del := topicCmd(a, "delete TOPIC", "Delete a topic (all partitions of a partitioned topic) and its data", func(x *adminCall, t naming.Topic) error {
		n, err := partitions(x, t)
		if err != nil {
			return err
		}
		if n > 0 {
			return x.c.Topics().DeletePartitioned(x.ctx, t.String(), force)
		}
		return x.c.Topics().Delete(x.ctx, t.String(), force)
	})
	del.Flags().BoolVarP(&force, "force", "f", false, "delete even with producers or consumers connected")
	delPartitioned := topicCmd(a, "delete-partitioned-topic TOPIC", "Delete a partitioned topic and all its partitions", func(x *adminCall, t naming.Topic) error {
		return x.c.Topics().DeletePartitioned(x.ctx, t.String(), forcePartitioned)
	})
	delPartitioned.Flags().BoolVarP(&forcePartitioned, "force", "f", false, "delete even with producers or consumers connected")
	unload := topicCmd(a, "unload TOPIC", "Unload a topic (every partition) from its broker", func(x *adminCall, t naming.Topic) error {
		return eachPartition(x, t, func(p string) error { return x.c.Topics().Unload(x.ctx, p) })
	})
	terminate := topicCmd(a, "terminate TOPIC", "Seal a topic against new messages; prints the last message id", func(x *adminCall, t naming.Topic) error {
		id, err := x.c.Topics().Terminate(x.ctx, t.String())
		if err != nil {
			return err
		}
		return x.print(id)
	})
	lookup := topicCmd(a, "lookup TOPIC", "Show the broker serving a topic (each partition's for a partitioned topic)", func(x *adminCall, t naming.Topic) error {
		n, err := partitions(x, t)
		if err != nil {
			return err
		}
		if n == 0 {
			ld, err := x.c.Topics().Lookup(x.ctx, t.String())
			if err != nil {
				return err
			}
			return x.print(ld)
		}
		out := map[string]admin.LookupData{}
		for i := 0; i < n; i++ {
			p := t.Partition(i).String()
			if out[p], err = x.c.Topics().Lookup(x.ctx, p); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return x.print(out)
	})
	last := topicCmd(a, "last-message-id TOPIC", "Show the id of a topic's last message", func(x *adminCall, t naming.Topic) error {
		id, err := x.c.Topics().LastMessageID(x.ctx, t.String())
		if err != nil {
			return err
		}
		return x.print(id)
	})
	return []*cobra.Command{create, createPartitioned, update, get, del, delPartitioned, unload, terminate, lookup, last}
}

func topicStatsCmds(a *adminConn) []*cobra.Command {
	var perPartition bool
	stats := topicCmd(a, "stats TOPIC", "Show a topic's (or partition's) statistics", func(x *adminCall, t naming.Topic) error {
		st, err := x.c.Topics().Stats(x.ctx, t.String())
		if err != nil {
			return err
		}
		return x.print(st)
	})
	pstats := topicCmd(a, "partitioned-stats TOPIC", "Show a partitioned topic's statistics, summed over its partitions", func(x *adminCall, t naming.Topic) error {
		st, err := x.c.Topics().PartitionedStats(x.ctx, t.String(), perPartition)
		if err != nil {
			return err
		}
		return x.print(st)
	})
	pstats.Flags().BoolVar(&perPartition, "per-partition", false, "also show each partition's statistics")
	internal := topicCmd(a, "stats-internal TOPIC", "Show a topic's storage: ledgers and cursors", func(x *adminCall, t naming.Topic) error {
		st, err := x.c.Topics().InternalStats(x.ctx, t.String())
		if err != nil {
			return err
		}
		return x.print(st)
	})
	return []*cobra.Command{stats, pstats, internal}
}

// subscriptionFlag adds the required -s/--subscription flag.
func subscriptionFlag(c *cobra.Command, sub *string) {
	c.Flags().StringVarP(sub, "subscription", "s", "", "subscription name")
	c.MarkFlagRequired("subscription")
}

// expireTimeFlag adds the required -t/--expire-time flag and returns the
// function reading it, in seconds.
func expireTimeFlag(c *cobra.Command) func() (int64, error) {
	var tm string
	c.Flags().StringVarP(&tm, "expire-time", "t", "", "age of the messages to expire, e.g. 1h, 30m, 600 (seconds)")
	c.MarkFlagRequired("expire-time")
	return func() (int64, error) {
		secs, err := units.ParseRelativeTimeSeconds(tm)
		if err != nil || secs < 0 {
			return 0, fmt.Errorf("--expire-time %q: want a relative time such as 1h or 600", tm)
		}
		return secs, nil
	}
}

// Each command below has variables of its own: flags of different commands
// bound to one variable would overwrite each other's defaults.
func topicSubscriptionCmds(a *adminConn) []*cobra.Command {
	list := topicCmd(a, "subscriptions TOPIC", "List a topic's subscriptions", func(x *adminCall, t naming.Topic) error {
		all := []string{}
		err := eachPartition(x, t, func(p string) error {
			names, err := x.c.Topics().Subscriptions(x.ctx, p)
			for _, s := range names {
				if !slices.Contains(all, s) {
					all = append(all, s)
				}
			}
			return err
		})
		if err != nil {
			return err
		}
		slices.Sort(all)
		return x.print(all)
	})
	return []*cobra.Command{list, createSubscriptionCmd(a), unsubscribeCmd(a), skipCmd(a), clearBacklogCmd(a),
		expireCmd(a), expireAllCmd(a), resetCursorCmd(a)}
}

func createSubscriptionCmd(a *adminConn) *cobra.Command {
	var sub, msgID string
	cmd := topicCmd(a, "create-subscription TOPIC", "Create a durable subscription at -m (latest by default)", func(x *adminCall, t naming.Topic) error {
		pos, err := admin.ParseMessageID(msgID)
		if err != nil {
			return fmt.Errorf("--message-id: %w", err)
		}
		n, err := partitions(x, t)
		if err != nil {
			return err
		}
		if n == 0 {
			return x.c.Topics().CreateSubscription(x.ctx, t.String(), sub, pos)
		}
		// Partitions come into existence on first use: create those that
		// do not exist yet, then the subscription on each.
		for i := 0; i < n; i++ {
			p := t.Partition(i).String()
			err := x.c.Topics().CreateSubscription(x.ctx, p, sub, pos)
			if admin.IsNotFound(err) {
				if cerr := x.c.Topics().Create(x.ctx, p); cerr != nil && !admin.IsConflict(cerr) {
					return fmt.Errorf("%s: %w", p, cerr)
				}
				err = x.c.Topics().CreateSubscription(x.ctx, p, sub, pos)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	subscriptionFlag(cmd, &sub)
	cmd.Flags().StringVarP(&msgID, "message-id", "m", "latest", "where to start: latest, earliest or ledgerId:entryId")
	return cmd
}

func unsubscribeCmd(a *adminConn) *cobra.Command {
	var sub string
	var force bool
	cmd := topicCmd(a, "unsubscribe TOPIC", "Delete a subscription", func(x *adminCall, t naming.Topic) error {
		return eachPartition(x, t, func(p string) error { return x.c.Topics().DeleteSubscription(x.ctx, p, sub, force) })
	})
	subscriptionFlag(cmd, &sub)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete even with consumers connected")
	return cmd
}

func skipCmd(a *adminConn) *cobra.Command {
	var sub string
	var n int
	cmd := topicCmd(a, "skip TOPIC", "Skip (acknowledge) the next -n messages of a subscription", func(x *adminCall, t naming.Topic) error {
		if n < 0 {
			return errors.New("-n must not be negative")
		}
		return x.c.Topics().Skip(x.ctx, t.String(), sub, n)
	})
	subscriptionFlag(cmd, &sub)
	cmd.Flags().IntVarP(&n, "count", "n", 0, "number of messages to skip")
	cmd.MarkFlagRequired("count")
	return cmd
}

func clearBacklogCmd(a *adminConn) *cobra.Command {
	var sub string
	cmd := topicCmd(a, "clear-backlog TOPIC", "Skip every message of a subscription's backlog", func(x *adminCall, t naming.Topic) error {
		return eachPartition(x, t, func(p string) error { return x.c.Topics().SkipAll(x.ctx, p, sub) })
	})
	subscriptionFlag(cmd, &sub)
	return cmd
}

func expireCmd(a *adminConn) *cobra.Command {
	var sub string
	var expireTime func() (int64, error)
	cmd := topicCmd(a, "expire-messages TOPIC", "Acknowledge a subscription's messages older than -t", func(x *adminCall, t naming.Topic) error {
		secs, err := expireTime()
		if err != nil {
			return err
		}
		return eachPartition(x, t, func(p string) error { return x.c.Topics().ExpireMessages(x.ctx, p, sub, secs) })
	})
	subscriptionFlag(cmd, &sub)
	expireTime = expireTimeFlag(cmd)
	return cmd
}

func expireAllCmd(a *adminConn) *cobra.Command {
	var expireTime func() (int64, error)
	cmd := topicCmd(a, "expire-messages-all-subscriptions TOPIC", "Acknowledge every subscription's messages older than -t", func(x *adminCall, t naming.Topic) error {
		secs, err := expireTime()
		if err != nil {
			return err
		}
		return eachPartition(x, t, func(p string) error { return x.c.Topics().ExpireAllMessages(x.ctx, p, secs) })
	})
	expireTime = expireTimeFlag(cmd)
	return cmd
}

func resetCursorCmd(a *adminConn) *cobra.Command {
	var sub, tm, msgID string
	cmd := topicCmd(a, "reset-cursor TOPIC", "Move a subscription back to -t ago or to message -m", func(x *adminCall, t naming.Topic) error {
		return resetCursor(x, t, sub, tm, msgID)
	})
	subscriptionFlag(cmd, &sub)
	cmd.Flags().StringVarP(&tm, "time", "t", "", "how far back, e.g. 10m, 2h, 1d (messages published since then are redelivered)")
	cmd.Flags().StringVarP(&msgID, "message-id", "m", "", "message id ledgerId:entryId (ledgerId:entryId:partition on a partitioned topic)")
	return cmd
}

// resetCursor implements reset-cursor: by relative time on every
// partition, or to a message id (on the partition it names).
func resetCursor(x *adminCall, t naming.Topic, sub, tm, msgID string) error {
	if (tm == "") == (msgID == "") {
		return errors.New("give exactly one of --time and --message-id")
	}
	if tm != "" {
		d, err := units.ParseRelativeTime(tm)
		if err != nil || d < 0 {
			return fmt.Errorf("--time %q: want a relative time such as 10m, 2h, 3d", tm)
		}
		at := time.Now().Add(-d)
		return eachPartition(x, t, func(p string) error { return x.c.Topics().ResetCursor(x.ctx, p, sub, at) })
	}
	id, err := admin.ParseMessageID(msgID)
	if err != nil || id == admin.Earliest || id == admin.Latest {
		return fmt.Errorf("--message-id %q: want ledgerId:entryId", msgID)
	}
	n, err := partitions(x, t)
	if err != nil {
		return err
	}
	target := t
	if n > 0 {
		if id.PartitionIndex < 0 || int(id.PartitionIndex) >= n {
			return fmt.Errorf("%s has %d partitions: give the partition as ledgerId:entryId:partition, or reset a partition topic", t, n)
		}
		target = t.Partition(int(id.PartitionIndex))
	}
	return x.c.Topics().ResetCursorToMessageID(x.ctx, target.String(), sub, id)
}

func topicPermissionCmds(a *adminConn) []*cobra.Command {
	var role, actions, revokeRole string
	perms := topicCmd(a, "permissions TOPIC", "Show the roles allowed on a topic: role → actions", func(x *adminCall, t naming.Topic) error {
		p, err := x.c.Topics().Permissions(x.ctx, t.String())
		if err != nil {
			return err
		}
		return x.print(p)
	})
	grant := topicCmd(a, "grant-permission TOPIC", "Grant a role actions on a topic", func(x *adminCall, t naming.Topic) error {
		acts, err := parseActions(actions)
		if err != nil {
			return err
		}
		return x.c.Topics().GrantPermission(x.ctx, t.String(), role, acts)
	})
	grant.Flags().StringVar(&role, "role", "", "the role (JWT subject)")
	grant.Flags().StringVar(&actions, "actions", "", "comma-separated actions: produce, consume")
	grant.MarkFlagRequired("role")
	grant.MarkFlagRequired("actions")
	revoke := topicCmd(a, "revoke-permission TOPIC", "Revoke a role's permissions on a topic", func(x *adminCall, t naming.Topic) error {
		return x.c.Topics().RevokePermission(x.ctx, t.String(), revokeRole)
	})
	revoke.Flags().StringVar(&revokeRole, "role", "", "the role (JWT subject)")
	revoke.MarkFlagRequired("role")
	return []*cobra.Command{perms, grant, revoke}
}

func topicOffloadCmds(a *adminConn) []*cobra.Command {
	var (
		threshold string
		wait      bool
	)
	offload := topicCmd(a, "offload TOPIC", "Move a topic's older ledgers to tiered storage, keeping --size-threshold on bookies", func(x *adminCall, t naming.Topic) error {
		keep, err := units.ParseSize(threshold)
		if err != nil || keep < 0 {
			return fmt.Errorf("--size-threshold %q: want a size such as 10M or 1G", threshold)
		}
		st, err := x.c.Topics().InternalStats(x.ctx, t.String())
		if err != nil {
			return err
		}
		before, ok := offloadPoint(st.Ledgers, keep)
		if !ok {
			x.info("nothing to offload: %s keeps at most %s on bookies", t, threshold)
			return nil
		}
		if err := x.c.Topics().Offload(x.ctx, t.String(), before); err != nil {
			return err
		}
		x.info("offload triggered for %s, messages before %d:%d", t, before.LedgerID, before.EntryID)
		return nil
	})
	offload.Flags().StringVarP(&threshold, "size-threshold", "s", "", "data to keep on bookies, e.g. 10M; older ledgers are offloaded")
	offload.MarkFlagRequired("size-threshold")
	status := topicCmd(a, "offload-status TOPIC", "Show the state of a topic's last offload", func(x *adminCall, t naming.Topic) error {
		for {
			st, err := x.c.Topics().OffloadStatus(x.ctx, t.String())
			if err != nil {
				return err
			}
			if wait && st.Status == admin.OffloadRunning {
				select {
				case <-x.ctx.Done():
					return x.ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			}
			if err := x.print(st); err != nil {
				return err
			}
			if st.Status == admin.OffloadError {
				return fmt.Errorf("offload of %s failed: %s", t, st.LastError)
			}
			return nil
		}
	})
	status.Flags().BoolVarP(&wait, "wait-complete", "w", false, "wait until a running offload ends")
	return []*cobra.Command{offload, status}
}

// offloadPoint chooses, like pulsar-admin's offload, the message before
// which ledgers are offloaded so that at most keep bytes of the newest
// ledgers stay on bookies: walking from the newest ledger back, the first
// ledger that takes the total above keep is offloaded with every older one.
// It reports false when everything fits within keep.
func offloadPoint(ledgers []admin.LedgerInfo, keep int64) (admin.MessageID, bool) {
	var total int64
	for i := len(ledgers) - 1; i >= 0; i-- {
		total += ledgers[i].Size
		if total > keep {
			first := ledgers[min(i+1, len(ledgers)-1)].LedgerID
			return admin.MessageID{LedgerID: first, EntryID: 0, PartitionIndex: -1, BatchIndex: -1}, true
		}
	}
	return admin.MessageID{}, false
}
