package main

import (
	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/tenants"
)

func newAdminTenantsCmd(a *adminConn) *cobra.Command {
	list := a.command("list", "List the tenants (those the role administers, all for superusers)", 0, func(x *adminCall) error {
		names, err := x.c.Tenants().List(x.ctx)
		if err != nil {
			return err
		}
		return x.print(nonNil(names))
	})
	get := a.command("get TENANT", "Show a tenant's admin roles and allowed clusters", 1, func(x *adminCall) error {
		info, err := x.c.Tenants().Get(x.ctx, x.args[0])
		if err != nil {
			return err
		}
		return x.print(info)
	})
	del := a.command("delete TENANT", "Delete a tenant (it must have no namespaces)", 1, func(x *adminCall) error {
		return x.c.Tenants().Delete(x.ctx, x.args[0])
	})
	return group("tenants", "Create, update, show, list and delete tenants",
		tenantWriteCmd(a, false), tenantWriteCmd(a, true), get, list, del)
}

// tenantWriteCmd is `tenants create` or, with update, `tenants update`,
// which changes only the fields given.
func tenantWriteCmd(a *adminConn, update bool) *cobra.Command {
	var roles, clusters string
	use, short := "create TENANT", "Create a tenant (allowed clusters default to the broker's cluster)"
	if update {
		use, short = "update TENANT", "Change a tenant's admin roles and/or allowed clusters"
	}
	cmd := a.command(use, short, 1, func(x *adminCall) error {
		f := x.cmd.Flags()
		var info tenants.TenantInfo
		if update {
			cur, err := x.c.Tenants().Get(x.ctx, x.args[0])
			if err != nil {
				return err
			}
			info = cur
		}
		if !update || f.Changed("admin-roles") {
			info.AdminRoles = nonNil(splitList(roles))
		}
		if !update || f.Changed("allowed-clusters") {
			info.AllowedClusters = nonNil(splitList(clusters))
		}
		if update {
			return x.c.Tenants().Update(x.ctx, x.args[0], info)
		}
		return x.c.Tenants().Create(x.ctx, x.args[0], info)
	})
	cmd.Flags().StringVarP(&roles, "admin-roles", "r", "", "comma-separated roles that administer the tenant")
	cmd.Flags().StringVarP(&clusters, "allowed-clusters", "c", "", "comma-separated clusters the tenant may use")
	return cmd
}

func newAdminClustersCmd(a *adminConn) *cobra.Command {
	list := a.command("list", "List the clusters", 0, func(x *adminCall) error {
		names, err := x.c.Clusters().List(x.ctx)
		if err != nil {
			return err
		}
		return x.print(nonNil(names))
	})
	get := a.command("get CLUSTER", "Show a cluster's service URLs (superusers)", 1, func(x *adminCall) error {
		d, err := x.c.Clusters().Get(x.ctx, x.args[0])
		if err != nil {
			return err
		}
		return x.print(d)
	})
	del := a.command("delete CLUSTER", "Delete a cluster (no namespace may replicate to it)", 1, func(x *adminCall) error {
		return x.c.Clusters().Delete(x.ctx, x.args[0])
	})
	return group("clusters", "Create, update, show, list and delete clusters",
		clusterWriteCmd(a, false), clusterWriteCmd(a, true), get, list, del)
}

// clusterWriteCmd is `clusters create` or, with update, `clusters update`,
// which changes only the URLs given.
func clusterWriteCmd(a *adminConn, update bool) *cobra.Command {
	var d tenants.ClusterData
	use, short := "create CLUSTER", "Register a cluster"
	if update {
		use, short = "update CLUSTER", "Change a cluster's service URLs"
	}
	cmd := a.command(use, short, 1, func(x *adminCall) error {
		if !update {
			return x.c.Clusters().Create(x.ctx, x.args[0], d)
		}
		cur, err := x.c.Clusters().Get(x.ctx, x.args[0])
		if err != nil {
			return err
		}
		f := x.cmd.Flags()
		for flag, field := range map[string]*string{"url": &cur.ServiceURL, "url-secure": &cur.ServiceURLTLS,
			"broker-url": &cur.BrokerServiceURL, "broker-url-secure": &cur.BrokerServiceURLTLS} {
			if f.Changed(flag) {
				v, _ := f.GetString(flag)
				*field = v
			}
		}
		return x.c.Clusters().Update(x.ctx, x.args[0], cur)
	})
	f := cmd.Flags()
	f.StringVar(&d.ServiceURL, "url", "", "the cluster's admin (HTTP) URL, e.g. http://broker:8080")
	f.StringVar(&d.ServiceURLTLS, "url-secure", "", "the cluster's admin HTTPS URL")
	f.StringVar(&d.BrokerServiceURL, "broker-url", "", "the cluster's broker service URL, e.g. pulsar://broker:6650 (replicators of other clusters dial it)")
	f.StringVar(&d.BrokerServiceURLTLS, "broker-url-secure", "", "the cluster's service URL with TLS")
	return cmd
}

// nonNil makes a nil list an empty one, so it prints and encodes as [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
