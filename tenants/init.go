package tenants

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/metadata"
)

// InitializeCluster prepares the configuration store for a cluster, like
// `pulsar initialize-cluster-metadata`: it registers the cluster (updating
// its service URLs when they changed), creates tenant "public" allowed on
// the cluster (adding the cluster to an existing public tenant) and creates
// namespace "public/default" replicated to the cluster. It is idempotent:
// running it again, or on several brokers at once, is fine.
func InitializeCluster(ctx context.Context, md metadata.Store, cluster string, data ClusterData) error {
	s := NewStore(md, StoreOptions{LocalCluster: cluster})
	err := s.CreateCluster(ctx, cluster, data)
	if errors.Is(err, ErrExists) {
		_, err = s.UpdateCluster(ctx, cluster, func(d *ClusterData) error {
			d.ServiceURL, d.ServiceURLTLS = data.ServiceURL, data.ServiceURLTLS
			d.BrokerServiceURL, d.BrokerServiceURLTLS = data.BrokerServiceURL, data.BrokerServiceURLTLS
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("initialize cluster %s: register cluster: %w", cluster, err)
	}

	err = s.CreateTenant(ctx, naming.DefaultTenant, TenantInfo{AllowedClusters: []string{cluster}})
	if errors.Is(err, ErrExists) {
		_, err = s.UpdateTenant(ctx, naming.DefaultTenant, func(t *TenantInfo) error {
			if !t.AllowsCluster(cluster) {
				t.AllowedClusters = append(t.AllowedClusters, cluster)
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("initialize cluster %s: tenant %s: %w", cluster, naming.DefaultTenant, err)
	}

	ns := naming.MustParseNamespace(naming.DefaultTenant + "/" + naming.DefaultNamespace)
	err = s.CreateNamespace(ctx, ns, Policies{})
	if err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("initialize cluster %s: namespace %s: %w", cluster, ns, err)
	}
	return nil
}
