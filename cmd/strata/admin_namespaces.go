package main

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/units"
	"github.com/strata-mq/strata/tenants"
)

func newAdminNamespacesCmd(a *adminConn) *cobra.Command {
	cmd := group("namespaces", "Create, list and delete namespaces; set and show their policies")
	cmd.AddCommand(
		a.command("list TENANT", "List a tenant's namespaces", 1, func(x *adminCall) error {
			names, err := x.c.Namespaces().List(x.ctx, x.args[0])
			if err != nil {
				return err
			}
			return x.print(nonNil(names))
		}),
		nsCmd(a, "topics NAMESPACE", "List a namespace's topics (partitions included)", func(x *adminCall, ns string) error {
			names, err := x.c.Namespaces().Topics(x.ctx, ns)
			if err != nil {
				return err
			}
			return x.print(nonNil(names))
		}),
		nsCreateCmd(a),
		nsCmd(a, "delete NAMESPACE", "Delete a namespace (it must have no topics)", func(x *adminCall, ns string) error {
			return x.c.Namespaces().Delete(x.ctx, ns)
		}),
		nsCmd(a, "policies NAMESPACE", "Show every policy of a namespace", func(x *adminCall, ns string) error {
			p, err := x.c.Namespaces().Policies(x.ctx, ns)
			if err != nil {
				return err
			}
			return x.print(p)
		}),
	)
	cmd.AddCommand(nsRetentionCmds(a)...)
	cmd.AddCommand(nsTTLCmds(a)...)
	cmd.AddCommand(nsBacklogQuotaCmds(a)...)
	cmd.AddCommand(nsPersistenceCmds(a)...)
	cmd.AddCommand(nsOffloadCmds(a)...)
	cmd.AddCommand(nsClusterCmds(a)...)
	cmd.AddCommand(nsDeduplicationCmds(a)...)
	cmd.AddCommand(nsPermissionCmds(a)...)
	cmd.AddCommand(nsRateCmds(a)...)
	ns := func(x *adminCall) *admin.Namespaces { return x.c.Namespaces() }
	cmd.AddCommand(nsLimitCmds(a, "max-producers-per-topic", "p", "producers per topic",
		func(x *adminCall) policyFuncs[int] {
			return policyFuncs[int]{ns(x).SetMaxProducersPerTopic, ns(x).GetMaxProducersPerTopic, ns(x).RemoveMaxProducersPerTopic}
		})...)
	cmd.AddCommand(nsLimitCmds(a, "max-consumers-per-topic", "c", "consumers per topic",
		func(x *adminCall) policyFuncs[int] {
			return policyFuncs[int]{ns(x).SetMaxConsumersPerTopic, ns(x).GetMaxConsumersPerTopic, ns(x).RemoveMaxConsumersPerTopic}
		})...)
	cmd.AddCommand(nsLimitCmds(a, "max-consumers-per-subscription", "c", "consumers per subscription",
		func(x *adminCall) policyFuncs[int] {
			return policyFuncs[int]{ns(x).SetMaxConsumersPerSubscription, ns(x).GetMaxConsumersPerSubscription, ns(x).RemoveMaxConsumersPerSubscription}
		})...)
	cmd.AddCommand(nsLimitCmds(a, "max-subscriptions-per-topic", "s", "durable subscriptions per topic",
		func(x *adminCall) policyFuncs[int] {
			return policyFuncs[int]{ns(x).SetMaxSubscriptionsPerTopic, ns(x).GetMaxSubscriptionsPerTopic, ns(x).RemoveMaxSubscriptionsPerTopic}
		})...)
	cmd.AddCommand(nsLimitCmds(a, "max-topics-per-namespace", "t", "topics of the namespace",
		func(x *adminCall) policyFuncs[int] {
			return policyFuncs[int]{ns(x).SetMaxTopicsPerNamespace, ns(x).GetMaxTopicsPerNamespace, ns(x).RemoveMaxTopicsPerNamespace}
		})...)
	return cmd
}

// nsCmd builds a command whose one argument is a namespace.
func nsCmd(a *adminConn, use, short string, fn func(x *adminCall, ns string) error) *cobra.Command {
	return a.command(use, short, 1, func(x *adminCall) error {
		ns, err := x.namespace()
		if err != nil {
			return err
		}
		return fn(x, ns)
	})
}

// nsGetCmd builds a command printing one optional policy ("null" when unset).
func nsGetCmd[T any](a *adminConn, use, short string, get func(x *adminCall) func(context.Context, string) (T, error)) *cobra.Command {
	return nsCmd(a, use, short, func(x *adminCall, ns string) error {
		v, err := get(x)(x.ctx, ns)
		if err != nil {
			return err
		}
		return x.print(v)
	})
}

// nsSetCmd builds a command setting one policy to the value that flags
// adds flags for and reads from them.
func nsSetCmd[T any](a *adminConn, use, short string, flags func(cmd *cobra.Command) func() (T, error),
	set func(x *adminCall) func(context.Context, string, T) error) *cobra.Command {
	var value func() (T, error)
	cmd := nsCmd(a, use, short, func(x *adminCall, ns string) error {
		v, err := value()
		if err != nil {
			return err
		}
		return set(x)(x.ctx, ns, v)
	})
	value = flags(cmd)
	return cmd
}

func nsCreateCmd(a *adminConn) *cobra.Command {
	var (
		bundles  int
		clusters string
	)
	cmd := nsCmd(a, "create NAMESPACE", "Create a namespace (tenant/ns)", func(x *adminCall, ns string) error {
		var p *tenants.Policies
		if bundles != 0 || clusters != "" {
			p = &tenants.Policies{ReplicationClusters: splitList(clusters)}
			if bundles != 0 {
				p.Bundles = &tenants.BundlesData{NumBundles: bundles}
			}
		}
		return x.c.Namespaces().Create(x.ctx, ns, p)
	})
	cmd.Flags().IntVarP(&bundles, "bundles", "b", 0, "number of bundles (default: the broker's, 4)")
	cmd.Flags().StringVarP(&clusters, "clusters", "c", "", "comma-separated replication clusters (default: the broker's cluster)")
	return cmd
}

func nsRetentionCmds(a *adminConn) []*cobra.Command {
	var size, tm string
	set := nsCmd(a, "set-retention NAMESPACE", "Keep acknowledged messages for a time and/or size (-1: unlimited)", func(x *adminCall, ns string) error {
		mb, err := units.ParseSizeMB(size)
		if err != nil {
			return fmt.Errorf("--size: %w", err)
		}
		minutes, err := units.ParseRelativeTimeMinutes(tm)
		if err != nil {
			return fmt.Errorf("--time: %w", err)
		}
		if minutes > math.MaxInt32 {
			return fmt.Errorf("--time %s is too long", tm)
		}
		return x.c.Namespaces().SetRetention(x.ctx, ns, tenants.RetentionPolicies{RetentionTimeInMinutes: int(minutes), RetentionSizeInMB: mb})
	})
	set.Flags().StringVarP(&size, "size", "s", "", "retention size per topic, e.g. 10G, 512M, -1 for unlimited")
	set.Flags().StringVarP(&tm, "time", "t", "", "retention time, e.g. 3d, 12h, 90m, -1 for unlimited")
	set.MarkFlagRequired("size")
	set.MarkFlagRequired("time")
	return []*cobra.Command{set,
		nsGetCmd(a, "get-retention NAMESPACE", "Show the retention policy (null: broker default)", func(x *adminCall) func(context.Context, string) (*tenants.RetentionPolicies, error) {
			return x.c.Namespaces().GetRetention
		}),
		nsCmd(a, "remove-retention NAMESPACE", "Remove the retention policy", func(x *adminCall, ns string) error {
			return x.c.Namespaces().RemoveRetention(x.ctx, ns)
		}),
	}
}

// ttlFlag parses --ttl: seconds, or a time such as 1h or 2d.
func ttlFlag(ttl string) (int, error) {
	secs, err := units.ParseRelativeTimeSeconds(ttl)
	if err != nil {
		return 0, fmt.Errorf("--ttl: %w", err)
	}
	if secs > math.MaxInt32 {
		return 0, fmt.Errorf("--ttl %s is too long", ttl)
	}
	return int(secs), nil
}

func nsTTLCmds(a *adminConn) []*cobra.Command {
	return []*cobra.Command{
		nsSetCmd(a, "set-message-ttl NAMESPACE", "Expire unacknowledged messages older than --ttl (0: never)", messageTTLFlags,
			func(x *adminCall) func(context.Context, string, int) error { return x.c.Namespaces().SetMessageTTL }),
		nsGetCmd(a, "get-message-ttl NAMESPACE", "Show the message TTL in seconds (null: broker default)", func(x *adminCall) func(context.Context, string) (*int, error) {
			return x.c.Namespaces().GetMessageTTL
		}),
		nsCmd(a, "remove-message-ttl NAMESPACE", "Remove the message TTL", func(x *adminCall, ns string) error {
			return x.c.Namespaces().RemoveMessageTTL(x.ctx, ns)
		}),
	}
}

func nsBacklogQuotaCmds(a *adminConn) []*cobra.Command {
	var limitSize, limitTime, policy, typ string
	set := nsCmd(a, "set-backlog-quota NAMESPACE", "Limit the backlog by size (destination_storage) or age (message_age)", func(x *adminCall, ns string) error {
		q := tenants.BacklogQuota{LimitSize: -1, LimitTime: -1, Policy: tenants.BacklogPolicy(policy)}
		if limitSize != "" {
			v, err := units.ParseSize(limitSize)
			if err != nil {
				return fmt.Errorf("--limit-size: %w", err)
			}
			q.LimitSize = v
		}
		if limitTime != "" {
			v, err := units.ParseRelativeTimeSeconds(limitTime)
			if err != nil {
				return fmt.Errorf("--limit-time: %w", err)
			}
			q.LimitTime = v
		}
		switch tenants.BacklogQuotaType(typ) {
		case tenants.DestinationStorage:
			if limitSize == "" {
				return errors.New("--limit-size is required for a destination_storage quota")
			}
		case tenants.MessageAge:
			if limitTime == "" {
				return errors.New("--limit-time is required for a message_age quota")
			}
		}
		return x.c.Namespaces().SetBacklogQuota(x.ctx, ns, tenants.BacklogQuotaType(typ), q)
	})
	f := set.Flags()
	f.StringVarP(&limitSize, "limit-size", "l", "", "backlog size limit, e.g. 10G (destination_storage)")
	f.StringVar(&limitTime, "limit-time", "", "age limit of the oldest unacknowledged message, e.g. 1h (message_age)")
	f.StringVarP(&policy, "policy", "p", "", "producer_request_hold, producer_exception or consumer_backlog_eviction")
	f.StringVarP(&typ, "type", "t", string(tenants.DestinationStorage), "quota type: destination_storage or message_age")
	set.MarkFlagRequired("policy")

	var removeType string // not typ: flags sharing a variable overwrite each other's defaults
	remove := nsCmd(a, "remove-backlog-quota NAMESPACE", "Remove a backlog quota", func(x *adminCall, ns string) error {
		return x.c.Namespaces().RemoveBacklogQuota(x.ctx, ns, tenants.BacklogQuotaType(removeType))
	})
	remove.Flags().StringVarP(&removeType, "type", "t", string(tenants.DestinationStorage), "quota type: destination_storage or message_age")
	return []*cobra.Command{set, remove,
		nsGetCmd(a, "get-backlog-quotas NAMESPACE", "Show the backlog quotas by type", func(x *adminCall) func(context.Context, string) (map[tenants.BacklogQuotaType]tenants.BacklogQuota, error) {
			return x.c.Namespaces().GetBacklogQuotaMap
		}),
	}
}

func nsPersistenceCmds(a *adminConn) []*cobra.Command {
	var p tenants.PersistencePolicies
	set := nsCmd(a, "set-persistence NAMESPACE", "Set the ensemble, write quorum and ack quorum of new ledgers", func(x *adminCall, ns string) error {
		return x.c.Namespaces().SetPersistence(x.ctx, ns, p)
	})
	f := set.Flags()
	f.IntVarP(&p.BookkeeperEnsemble, "bookkeeper-ensemble", "e", 0, "number of bookies a ledger is striped over (E)")
	f.IntVarP(&p.BookkeeperWriteQuorum, "bookkeeper-write-quorum", "w", 0, "copies of each entry (Qw)")
	f.IntVarP(&p.BookkeeperAckQuorum, "bookkeeper-ack-quorum", "a", 0, "copies acknowledged before a write succeeds (Qa)")
	f.Float64VarP(&p.ManagedLedgerMaxMarkDeleteRate, "ml-mark-delete-max-rate", "r", 0, "cursor persistence per second per subscription (0: unthrottled)")
	for _, n := range []string{"bookkeeper-ensemble", "bookkeeper-write-quorum", "bookkeeper-ack-quorum"} {
		set.MarkFlagRequired(n)
	}
	return []*cobra.Command{set,
		nsGetCmd(a, "get-persistence NAMESPACE", "Show the persistence policy (null: broker default)", func(x *adminCall) func(context.Context, string) (*tenants.PersistencePolicies, error) {
			return x.c.Namespaces().GetPersistence
		}),
		nsCmd(a, "remove-persistence NAMESPACE", "Remove the persistence policy", func(x *adminCall, ns string) error {
			return x.c.Namespaces().RemovePersistence(x.ctx, ns)
		}),
	}
}

func nsOffloadCmds(a *adminConn) []*cobra.Command {
	var size, lag string
	threshold := nsCmd(a, "set-offload-threshold NAMESPACE", "Offload closed ledgers once a topic keeps more than --size on bookies (0: at once, -1: never)", func(x *adminCall, ns string) error {
		v, err := units.ParseSize(size)
		if err != nil {
			return fmt.Errorf("--size: %w", err)
		}
		return x.c.Namespaces().SetOffloadThreshold(x.ctx, ns, v)
	})
	threshold.Flags().StringVarP(&size, "size", "s", "", "bytes kept on bookies per topic, e.g. 10G, 0, -1")
	threshold.MarkFlagRequired("size")
	setLag := nsCmd(a, "set-offload-deletion-lag NAMESPACE", "Delete offloaded ledgers from bookies after --lag", func(x *adminCall, ns string) error {
		d, err := units.ParseRelativeTime(lag)
		if err != nil {
			return fmt.Errorf("--lag: %w", err)
		}
		if d < 0 {
			return errors.New("--lag must not be negative (use clear-offload-deletion-lag for the broker default)")
		}
		return x.c.Namespaces().SetOffloadDeletionLag(x.ctx, ns, d.Milliseconds())
	})
	setLag.Flags().StringVarP(&lag, "lag", "l", "", "how long offloaded ledgers stay on bookies, e.g. 4h, 1d, 0")
	setLag.MarkFlagRequired("lag")
	return []*cobra.Command{threshold, setLag,
		nsGetCmd(a, "get-offload-threshold NAMESPACE", "Show the offload threshold in bytes (null: broker default)", func(x *adminCall) func(context.Context, string) (*int64, error) {
			return x.c.Namespaces().GetOffloadThreshold
		}),
		nsGetCmd(a, "get-offload-deletion-lag NAMESPACE", "Show the offload deletion lag in milliseconds (null: broker default)", func(x *adminCall) func(context.Context, string) (*int64, error) {
			return x.c.Namespaces().GetOffloadDeletionLag
		}),
		nsCmd(a, "clear-offload-deletion-lag NAMESPACE", "Remove the offload deletion lag (broker default)", func(x *adminCall, ns string) error {
			return x.c.Namespaces().ClearOffloadDeletionLag(x.ctx, ns)
		}),
	}
}

func nsClusterCmds(a *adminConn) []*cobra.Command {
	var clusters string
	set := nsCmd(a, "set-clusters NAMESPACE", "Set the namespace's replication clusters", func(x *adminCall, ns string) error {
		list := splitList(clusters)
		if len(list) == 0 {
			return errors.New("--clusters needs at least one cluster")
		}
		return x.c.Namespaces().SetClusters(x.ctx, ns, list)
	})
	set.Flags().StringVarP(&clusters, "clusters", "c", "", "comma-separated cluster names")
	set.MarkFlagRequired("clusters")
	return []*cobra.Command{set,
		nsGetCmd(a, "get-clusters NAMESPACE", "Show the namespace's replication clusters", func(x *adminCall) func(context.Context, string) ([]string, error) {
			return x.c.Namespaces().GetClusters
		}),
	}
}

func nsDeduplicationCmds(a *adminConn) []*cobra.Command {
	return []*cobra.Command{
		nsSetCmd(a, "set-deduplication NAMESPACE", "Turn producer deduplication on (--enable) or off (--disable)", deduplicationFlags,
			func(x *adminCall) func(context.Context, string, bool) error { return x.c.Namespaces().SetDeduplication }),
		nsGetCmd(a, "get-deduplication NAMESPACE", "Show whether deduplication is on (null: broker default)", func(x *adminCall) func(context.Context, string) (*bool, error) {
			return x.c.Namespaces().GetDeduplication
		}),
	}
}

// parseActions reads --actions produce,consume.
func parseActions(s string) ([]tenants.AuthAction, error) {
	var out []tenants.AuthAction
	for _, a := range splitList(s) {
		out = append(out, tenants.AuthAction(a))
	}
	if len(out) == 0 {
		return nil, errors.New("--actions needs at least one of produce, consume")
	}
	return out, nil
}

func nsPermissionCmds(a *adminConn) []*cobra.Command {
	var role, actions, revokeRole, sub, roles, revokeSub, revokeSubRole string
	grant := nsCmd(a, "grant-permission NAMESPACE", "Grant a role actions on every topic of the namespace", func(x *adminCall, ns string) error {
		acts, err := parseActions(actions)
		if err != nil {
			return err
		}
		return x.c.Namespaces().GrantPermission(x.ctx, ns, role, acts)
	})
	grant.Flags().StringVar(&role, "role", "", "the role (JWT subject)")
	grant.Flags().StringVar(&actions, "actions", "", "comma-separated actions: produce, consume")
	grant.MarkFlagRequired("role")
	grant.MarkFlagRequired("actions")
	revoke := nsCmd(a, "revoke-permission NAMESPACE", "Revoke a role's namespace-wide permissions", func(x *adminCall, ns string) error {
		return x.c.Namespaces().RevokePermission(x.ctx, ns, revokeRole)
	})
	revoke.Flags().StringVar(&revokeRole, "role", "", "the role (JWT subject)")
	revoke.MarkFlagRequired("role")
	grantSub := nsCmd(a, "grant-subscription-permission NAMESPACE", "Restrict a subscription to the given roles", func(x *adminCall, ns string) error {
		list := splitList(roles)
		if len(list) == 0 {
			return errors.New("--roles needs at least one role")
		}
		return x.c.Namespaces().GrantSubscriptionPermission(x.ctx, ns, sub, list)
	})
	grantSub.Flags().StringVarP(&sub, "subscription", "s", "", "the subscription")
	grantSub.Flags().StringVar(&roles, "roles", "", "comma-separated roles allowed on it")
	grantSub.MarkFlagRequired("subscription")
	grantSub.MarkFlagRequired("roles")
	revokeSubCmd := nsCmd(a, "revoke-subscription-permission NAMESPACE", "Remove a role from a subscription's roles", func(x *adminCall, ns string) error {
		return x.c.Namespaces().RevokeSubscriptionPermission(x.ctx, ns, revokeSub, revokeSubRole)
	})
	revokeSubCmd.Flags().StringVarP(&revokeSub, "subscription", "s", "", "the subscription")
	revokeSubCmd.Flags().StringVar(&revokeSubRole, "role", "", "the role")
	revokeSubCmd.MarkFlagRequired("subscription")
	revokeSubCmd.MarkFlagRequired("role")
	return []*cobra.Command{grant, revoke, grantSub, revokeSubCmd,
		nsGetCmd(a, "permissions NAMESPACE", "Show the namespace-wide permissions: role → actions", func(x *adminCall) func(context.Context, string) (map[string][]tenants.AuthAction, error) {
			return x.c.Namespaces().Permissions
		}),
		nsGetCmd(a, "subscription-permissions NAMESPACE", "Show the restricted subscriptions: subscription → roles", func(x *adminCall) func(context.Context, string) (map[string][]string, error) {
			return x.c.Namespaces().SubscriptionPermissions
		}),
	}
}

// sizeFlag parses a byte rate or size flag value ("-1" unlimited).
func sizeFlag(name, v string) (int64, error) {
	n, err := units.ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("--%s: %w", name, err)
	}
	return n, nil
}

// publishRateFlags adds --msg-publish-rate (-m) and --byte-publish-rate
// (-b) to cmd and returns the function reading them.
func publishRateFlags(cmd *cobra.Command) func() (tenants.PublishRate, error) {
	var (
		msgs  int
		bytes string
	)
	cmd.Flags().IntVarP(&msgs, "msg-publish-rate", "m", -1, "messages per second per topic")
	cmd.Flags().StringVarP(&bytes, "byte-publish-rate", "b", "-1", "bytes per second per topic, e.g. 10M")
	return func() (tenants.PublishRate, error) {
		b, err := sizeFlag("byte-publish-rate", bytes)
		return tenants.PublishRate{PublishThrottlingRateInMsg: msgs, PublishThrottlingRateInByte: b}, err
	}
}

// dispatchRateFlags adds --msg-dispatch-rate, --byte-dispatch-rate,
// --dispatch-rate-period and --relative-to-publish-rate to cmd and returns
// the function reading them.
func dispatchRateFlags(cmd *cobra.Command) func() (tenants.DispatchRate, error) {
	var (
		msgs     int
		bytes    string
		period   int
		relative bool
	)
	f := cmd.Flags()
	f.IntVar(&msgs, "msg-dispatch-rate", -1, "messages per period")
	f.StringVar(&bytes, "byte-dispatch-rate", "-1", "bytes per period, e.g. 1M")
	f.IntVar(&period, "dispatch-rate-period", 1, "period in seconds")
	f.BoolVar(&relative, "relative-to-publish-rate", false, "limits are relative to the publish rate")
	return func() (tenants.DispatchRate, error) {
		b, err := sizeFlag("byte-dispatch-rate", bytes)
		return tenants.DispatchRate{DispatchThrottlingRateInMsg: msgs, DispatchThrottlingRateInByte: b,
			RatePeriodInSecond: period, RelativeToPublishRate: relative}, err
	}
}

func nsRateCmds(a *adminConn) []*cobra.Command {
	return []*cobra.Command{
		nsSetCmd(a, "set-publish-rate NAMESPACE", "Limit publishing per topic (-1: no limit)", publishRateFlags,
			func(x *adminCall) func(context.Context, string, tenants.PublishRate) error {
				return x.c.Namespaces().SetPublishRate
			}),
		nsGetCmd(a, "get-publish-rate NAMESPACE", "Show the publish rate (null: no limit set)", func(x *adminCall) func(context.Context, string) (*tenants.PublishRate, error) {
			return x.c.Namespaces().GetPublishRate
		}),
		nsCmd(a, "remove-publish-rate NAMESPACE", "Remove the publish rate", func(x *adminCall, ns string) error {
			return x.c.Namespaces().RemovePublishRate(x.ctx, ns)
		}),
		nsSetCmd(a, "set-dispatch-rate NAMESPACE", "Limit dispatch per topic (-1: no limit)", dispatchRateFlags, func(x *adminCall) func(context.Context, string, tenants.DispatchRate) error {
			return x.c.Namespaces().SetDispatchRate
		}),
		nsGetCmd(a, "get-dispatch-rate NAMESPACE", "Show the per-topic dispatch rate (null: no limit set)", func(x *adminCall) func(context.Context, string) (*tenants.DispatchRate, error) {
			return x.c.Namespaces().GetDispatchRate
		}),
		nsCmd(a, "remove-dispatch-rate NAMESPACE", "Remove the per-topic dispatch rate", func(x *adminCall, ns string) error {
			return x.c.Namespaces().RemoveDispatchRate(x.ctx, ns)
		}),
		nsSetCmd(a, "set-subscription-dispatch-rate NAMESPACE", "Limit dispatch per subscription (-1: no limit)", dispatchRateFlags, func(x *adminCall) func(context.Context, string, tenants.DispatchRate) error {
			return x.c.Namespaces().SetSubscriptionDispatchRate
		}),
		nsGetCmd(a, "get-subscription-dispatch-rate NAMESPACE", "Show the per-subscription dispatch rate (null: no limit set)", func(x *adminCall) func(context.Context, string) (*tenants.DispatchRate, error) {
			return x.c.Namespaces().GetSubscriptionDispatchRate
		}),
		nsCmd(a, "remove-subscription-dispatch-rate NAMESPACE", "Remove the per-subscription dispatch rate", func(x *adminCall, ns string) error {
			return x.c.Namespaces().RemoveSubscriptionDispatchRate(x.ctx, ns)
		}),
		nsSetCmd(a, "set-replicator-dispatch-rate NAMESPACE", "Limit what each replicator sends to another cluster (-1: no limit)", dispatchRateFlags, func(x *adminCall) func(context.Context, string, tenants.DispatchRate) error {
			return x.c.Namespaces().SetReplicatorDispatchRate
		}),
		nsGetCmd(a, "get-replicator-dispatch-rate NAMESPACE", "Show the replicator dispatch rate (null: no limit set)", func(x *adminCall) func(context.Context, string) (*tenants.DispatchRate, error) {
			return x.c.Namespaces().GetReplicatorDispatchRate
		}),
		nsCmd(a, "remove-replicator-dispatch-rate NAMESPACE", "Remove the replicator dispatch rate", func(x *adminCall, ns string) error {
			return x.c.Namespaces().RemoveReplicatorDispatchRate(x.ctx, ns)
		}),
	}
}

// nsLimitCmds builds set-NAME (flag --NAME/-short), get-NAME and remove-NAME.
func nsLimitCmds(a *adminConn, name, short, what string, funcs func(x *adminCall) policyFuncs[int]) []*cobra.Command {
	return []*cobra.Command{
		nsSetCmd(a, "set-"+name+" NAMESPACE", "Limit "+what+" (0: unlimited)", limitFlag(name, short, "maximum "+what),
			func(x *adminCall) func(context.Context, string, int) error { return funcs(x).set }),
		nsGetCmd(a, "get-"+name+" NAMESPACE", "Show the limit of "+what+" (null: broker default)", func(x *adminCall) func(context.Context, string) (*int, error) {
			return funcs(x).get
		}),
		nsCmd(a, "remove-"+name+" NAMESPACE", "Remove the limit of "+what, func(x *adminCall, ns string) error {
			return funcs(x).remove(x.ctx, ns)
		}),
	}
}
