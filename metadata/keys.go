package metadata

import (
	"fmt"
	"strconv"
	"strings"
)

// Key layout, relative to the store root (see docs/metadata.md). Configuration
// store keys are global (shared by geo-replicated clusters); local store keys
// belong to one cluster. By default both live in the same etcd.
const (
	// Configuration store.
	ClustersPrefix          = "/clusters/"           // {cluster} -> ClusterData JSON
	TenantsPrefix           = "/tenants/"            // {tenant} -> TenantInfo JSON
	NamespacesPrefix        = "/namespaces/"         // {tenant}/{ns} -> Policies JSON
	PartitionedTopicsPrefix = "/partitioned-topics/" // {tenant}/{ns}/{topic} -> {partitions}
	TopicPoliciesPrefix     = "/topic-policies/"     // {tenant}/{ns}/{topic} -> TopicPolicies JSON

	// Local store.
	LedgersPrefix        = "/ledgers/"         // {id} -> ledger metadata JSON
	ManagedLedgersPrefix = "/managed-ledgers/" // {tenant}/{ns}/{topic} -> ledger list
	CursorsPrefix        = "/cursors/"         // {tenant}/{ns}/{topic}/{sub} -> cursor state
	BookiesPrefix        = "/bookies/"         // {id} -> lease-bound registration
	CookiesPrefix        = "/cookies/"         // {bookie id} -> cookie JSON
	SchemasPrefix        = "/schemas/"         // {tenant}/{ns}/{topic}/{version} -> schema version JSON
	BrokersPrefix        = "/brokers/"         // {id} -> lease-bound registration
	OwnershipPrefix      = "/ownership/"       // {tenant}/{ns}/{bundle} -> lease-bound owner
	LedgerIDKey          = "/id/ledger"        // ledger id counter
	InstanceIDKey        = "/instanceid"       // cluster instance id (checked by bookie cookies)

	// Auto-recovery (local store).
	AuditorKey            = "/autorecovery/auditor"          // lease-bound id of the elected auditor
	UnderreplicatedPrefix = "/autorecovery/underreplicated/" // {ledger id} -> missing replicas JSON
	ReplicationLockPrefix = "/autorecovery/locks/"           // {ledger id} -> lease-bound worker id
	MissingBookiesPrefix  = "/autorecovery/missing/"         // {bookie id} -> when first seen missing
	DecommissionPrefix    = "/autorecovery/decommission/"    // {bookie id} -> decommission request
)

// LedgerKey is the key of a ledger's metadata. Ids are zero-padded so that
// keys list in numeric order.
func LedgerKey(id int64) string { return fmt.Sprintf("%s%019d", LedgersPrefix, id) }

// ParseLedgerKey extracts the id from a key returned by listing LedgersPrefix.
func ParseLedgerKey(key string) (int64, error) {
	return strconv.ParseInt(strings.TrimPrefix(key, LedgersPrefix), 10, 64)
}

// UnderreplicatedKey is the under-replication mark of a ledger; ids are
// zero-padded as in LedgerKey.
func UnderreplicatedKey(id int64) string { return fmt.Sprintf("%s%019d", UnderreplicatedPrefix, id) }

// ReplicationLockKey is the lock a worker holds while re-replicating a ledger.
func ReplicationLockKey(id int64) string { return fmt.Sprintf("%s%019d", ReplicationLockPrefix, id) }

// BookieKey is the registration key of a bookie.
func BookieKey(id string) string { return BookiesPrefix + id }

// CookieKey is the cookie key of a bookie.
func CookieKey(id string) string { return CookiesPrefix + id }
