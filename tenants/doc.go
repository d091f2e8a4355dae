// Package tenants owns Strata's multi-tenancy configuration: clusters,
// tenants, namespaces and their policies, kept in the configuration store
// (etcd, see package metadata) under
//
//	/clusters/{cluster}                        ClusterData
//	/tenants/{tenant}                          TenantInfo
//	/namespaces/{tenant}/{ns}                  Policies
//	/partitioned-topics/{tenant}/{ns}/{topic}  PartitionedTopicMetadata
//
// All JSON uses the field names of Pulsar's admin REST API, so documents can
// be exchanged with Pulsar tooling.
//
// Store reads and writes those keys (every update is a compare-and-swap loop
// on the key's ModRevision); Cache keeps a watched in-memory copy so every
// broker sees changes without restarting; NewAdminHandler serves the
// clusters/tenants/namespaces part of Pulsar's /admin/v2 REST API. Package
// tenants/auth holds JWT authentication and role-based authorization.
package tenants
