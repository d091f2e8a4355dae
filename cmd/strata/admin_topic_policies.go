package main

import (
	"context"
	"errors"
	"slices"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
)

// pulsar-admin's topic-level policy commands: set-X, get-X and remove-X of
// each policy a topic can override. A get prints null when the topic does
// not set the policy (its namespace's applies); a partitioned topic's
// policies apply to every partition.

// policyFuncs are the client calls of one policy (of a topic or a
// namespace).
type policyFuncs[T any] struct {
	set    func(context.Context, string, T) error
	get    func(context.Context, string) (*T, error)
	remove func(context.Context, string) error
}

// policyCmds builds set-NAME, get-NAME and remove-NAME of one topic
// policy (what names it in the help). flags adds set-NAME's flags and
// returns the function reading the value from them.
func policyCmds[T any](a *adminConn, name, setShort, what string,
	flags func(set *cobra.Command) func() (T, error), funcs func(tp *admin.Topics) policyFuncs[T]) []*cobra.Command {
	var value func() (T, error)
	set := topicCmd(a, "set-"+name+" TOPIC", setShort, func(x *adminCall, t naming.Topic) error {
		v, err := value()
		if err != nil {
			return err
		}
		return funcs(x.c.Topics()).set(x.ctx, t.String(), v)
	})
	value = flags(set)
	get := topicCmd(a, "get-"+name+" TOPIC", "Show a topic's "+what+" (null: the namespace's applies)", func(x *adminCall, t naming.Topic) error {
		v, err := funcs(x.c.Topics()).get(x.ctx, t.String())
		if err != nil {
			return err
		}
		return x.print(v)
	})
	remove := topicCmd(a, "remove-"+name+" TOPIC", "Remove a topic's "+what+" (the namespace's applies)", func(x *adminCall, t naming.Topic) error {
		return funcs(x.c.Topics()).remove(x.ctx, t.String())
	})
	return []*cobra.Command{set, get, remove}
}

// deduplicationFlags adds --enable (-e) and --disable (-d); exactly one
// must be given.
func deduplicationFlags(cmd *cobra.Command) func() (bool, error) {
	var enable, disable bool
	cmd.Flags().BoolVarP(&enable, "enable", "e", false, "enable deduplication")
	cmd.Flags().BoolVarP(&disable, "disable", "d", false, "disable deduplication")
	return func() (bool, error) {
		if enable == disable {
			return false, errors.New("give exactly one of --enable and --disable")
		}
		return enable, nil
	}
}

// limitFlag returns a flags function adding the required integer flag
// --name (-short).
func limitFlag(name, short, usage string) func(cmd *cobra.Command) func() (int, error) {
	return func(cmd *cobra.Command) func() (int, error) {
		var n int
		cmd.Flags().IntVarP(&n, name, short, 0, usage)
		cmd.MarkFlagRequired(name)
		return func() (int, error) { return n, nil }
	}
}

// messageTTLFlags adds the required --ttl (-t): seconds, or a time such as 1h.
func messageTTLFlags(cmd *cobra.Command) func() (int, error) {
	var ttl string
	cmd.Flags().StringVarP(&ttl, "ttl", "t", "", "time to live, e.g. 1h, 30m, 3600 (seconds)")
	cmd.MarkFlagRequired("ttl")
	return func() (int, error) { return ttlFlag(ttl) }
}

func topicPolicyCmds(a *adminConn) []*cobra.Command {
	return slices.Concat(
		policyCmds(a, "deduplication", "Turn producer deduplication on a topic on (--enable) or off (--disable)", "deduplication setting",
			deduplicationFlags, func(tp *admin.Topics) policyFuncs[bool] {
				return policyFuncs[bool]{tp.SetDeduplication, tp.GetDeduplication, tp.RemoveDeduplication}
			}),
		policyCmds(a, "publish-rate", "Limit publishing on a topic (-1: no limit)", "publish rate",
			publishRateFlags, func(tp *admin.Topics) policyFuncs[tenants.PublishRate] {
				return policyFuncs[tenants.PublishRate]{tp.SetPublishRate, tp.GetPublishRate, tp.RemovePublishRate}
			}),
		policyCmds(a, "dispatch-rate", "Limit dispatch on a topic, shared by its subscriptions (-1: no limit)", "dispatch rate",
			dispatchRateFlags, func(tp *admin.Topics) policyFuncs[tenants.DispatchRate] {
				return policyFuncs[tenants.DispatchRate]{tp.SetDispatchRate, tp.GetDispatchRate, tp.RemoveDispatchRate}
			}),
		policyCmds(a, "subscription-dispatch-rate", "Limit dispatch on each subscription of a topic (-1: no limit)", "per-subscription dispatch rate",
			dispatchRateFlags, func(tp *admin.Topics) policyFuncs[tenants.DispatchRate] {
				return policyFuncs[tenants.DispatchRate]{tp.SetSubscriptionDispatchRate, tp.GetSubscriptionDispatchRate, tp.RemoveSubscriptionDispatchRate}
			}),
		policyCmds(a, "max-producers", "Limit a topic's producers (0: unlimited)", "producer limit",
			limitFlag("max-producers", "p", "maximum producers"), func(tp *admin.Topics) policyFuncs[int] {
				return policyFuncs[int]{tp.SetMaxProducers, tp.GetMaxProducers, tp.RemoveMaxProducers}
			}),
		policyCmds(a, "max-consumers", "Limit a topic's consumers (0: unlimited)", "consumer limit",
			limitFlag("max-consumers", "c", "maximum consumers"), func(tp *admin.Topics) policyFuncs[int] {
				return policyFuncs[int]{tp.SetMaxConsumers, tp.GetMaxConsumers, tp.RemoveMaxConsumers}
			}),
		policyCmds(a, "max-consumers-per-subscription", "Limit the consumers of each subscription of a topic (0: unlimited)", "per-subscription consumer limit",
			limitFlag("max-consumers-per-subscription", "c", "maximum consumers per subscription"), func(tp *admin.Topics) policyFuncs[int] {
				return policyFuncs[int]{tp.SetMaxConsumersPerSubscription, tp.GetMaxConsumersPerSubscription, tp.RemoveMaxConsumersPerSubscription}
			}),
		policyCmds(a, "message-ttl", "Expire a topic's unacknowledged messages older than --ttl (0: never)", "message TTL",
			messageTTLFlags, func(tp *admin.Topics) policyFuncs[int] {
				return policyFuncs[int]{tp.SetMessageTTL, tp.GetMessageTTL, tp.RemoveMessageTTL}
			}),
		policyCmds(a, "replication-clusters", "Set the clusters a topic replicates to, in place of its namespace's", "replication clusters",
			clustersFlags, func(tp *admin.Topics) policyFuncs[[]string] {
				return policyFuncs[[]string]{tp.SetReplicationClusters, tp.GetReplicationClusters, tp.RemoveReplicationClusters}
			}),
	)
}

// clustersFlags adds the required --clusters (-c), comma-separated.
func clustersFlags(cmd *cobra.Command) func() ([]string, error) {
	var clusters string
	cmd.Flags().StringVarP(&clusters, "clusters", "c", "", "comma-separated cluster names")
	cmd.MarkFlagRequired("clusters")
	return func() ([]string, error) {
		list := splitList(clusters)
		if len(list) == 0 {
			return nil, errors.New("--clusters needs at least one cluster")
		}
		return list, nil
	}
}
