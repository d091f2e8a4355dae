package admin

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/strata-mq/strata/tenants"
)

// MessageID identifies a message (Pulsar's MessageId JSON). PartitionIndex
// and BatchIndex are -1 when not applicable.
type MessageID struct {
	// LedgerID is the ledger holding the message.
	LedgerID int64 `json:"ledgerId"`
	// EntryID is the entry within the ledger.
	EntryID int64 `json:"entryId"`
	// PartitionIndex is the partition of a partitioned topic, else -1.
	PartitionIndex int32 `json:"partitionIndex"`
	// BatchIndex is the message's index within a batch entry, else -1.
	BatchIndex int32 `json:"batchIndex"`
}

var (
	// Earliest is the position before the first message of a topic.
	Earliest = MessageID{LedgerID: -1, EntryID: -1, PartitionIndex: -1, BatchIndex: -1}
	// Latest is the position after the last message of a topic.
	Latest = MessageID{LedgerID: math.MaxInt64, EntryID: math.MaxInt64, PartitionIndex: -1, BatchIndex: -1}
)

// UnmarshalJSON decodes a MessageId, taking -1 for an absent partitionIndex
// or batchIndex.
func (m *MessageID) UnmarshalJSON(b []byte) error {
	type plain MessageID
	v := plain{PartitionIndex: -1, BatchIndex: -1}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = MessageID(v)
	return nil
}

// String returns "ledger:entry", followed by ":partition" and ":batch" when
// they are set, or "earliest" / "latest".
func (m MessageID) String() string {
	switch m {
	case Earliest:
		return "earliest"
	case Latest:
		return "latest"
	}
	s := fmt.Sprintf("%d:%d", m.LedgerID, m.EntryID)
	if m.PartitionIndex >= 0 || m.BatchIndex >= 0 {
		s += fmt.Sprintf(":%d", m.PartitionIndex)
	}
	if m.BatchIndex >= 0 {
		s += fmt.Sprintf(":%d", m.BatchIndex)
	}
	return s
}

// ParseMessageID parses "earliest", "latest" or "ledger:entry" with an
// optional ":partition" and ":batch" (as pulsar-admin's -m flags take).
func ParseMessageID(s string) (MessageID, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "earliest":
		return Earliest, nil
	case "latest":
		return Latest, nil
	}
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) < 2 || len(parts) > 4 {
		return MessageID{}, fmt.Errorf("admin: message id %q: want ledgerId:entryId[:partition[:batch]], earliest or latest", s)
	}
	nums := []int64{-1, -1, -1, -1}
	for i, p := range parts {
		bits := 64
		if i >= 2 {
			bits = 32
		}
		n, err := strconv.ParseInt(p, 10, bits)
		if err != nil || n < -1 {
			return MessageID{}, fmt.Errorf("admin: message id %q: %q is not a valid number", s, p)
		}
		nums[i] = n
	}
	if nums[0] < 0 || nums[1] < 0 {
		return MessageID{}, fmt.Errorf("admin: message id %q: ledger and entry ids must not be negative", s)
	}
	return MessageID{LedgerID: nums[0], EntryID: nums[1], PartitionIndex: int32(nums[2]), BatchIndex: int32(nums[3])}, nil
}

// PublisherStats describes one producer (part of TopicStats).
type PublisherStats struct {
	ProducerName    string  `json:"producerName"`
	MsgRateIn       float64 `json:"msgRateIn"`
	MsgThroughputIn float64 `json:"msgThroughputIn"`
	AverageMsgSize  float64 `json:"averageMsgSize"`
	AccessMode      string  `json:"accessMode"`
	ConnectedSince  string  `json:"connectedSince"`
}

// ConsumerStats describes one consumer of a subscription.
type ConsumerStats struct {
	ConsumerName     string  `json:"consumerName"`
	MsgRateOut       float64 `json:"msgRateOut"`
	MsgThroughputOut float64 `json:"msgThroughputOut"`
	MsgOutCounter    int64   `json:"msgOutCounter"`
	BytesOutCounter  int64   `json:"bytesOutCounter"`
	AvailablePermits int64   `json:"availablePermits"`
	UnackedMessages  int     `json:"unackedMessages"`
	ConnectedSince   string  `json:"connectedSince"`
}

// SubscriptionStats describes one subscription of a topic.
type SubscriptionStats struct {
	MsgRateOut       float64 `json:"msgRateOut"`
	MsgThroughputOut float64 `json:"msgThroughputOut"`
	MsgOutCounter    int64   `json:"msgOutCounter"`
	BytesOutCounter  int64   `json:"bytesOutCounter"`
	// MsgBacklog is the number of messages not yet acknowledged.
	MsgBacklog       int64   `json:"msgBacklog"`
	UnackedMessages  int     `json:"unackedMessages"`
	MsgRateRedeliver float64 `json:"msgRateRedeliver"`
	// Type is Exclusive, Shared, Failover or Key_Shared ("" with no consumer yet).
	Type      string `json:"type"`
	IsDurable bool   `json:"isDurable"`
	// IsReplicated: the subscription's position follows the other clusters'.
	IsReplicated bool            `json:"isReplicated"`
	Consumers    []ConsumerStats `json:"consumers"`
}

// TopicStats are a topic's statistics (Pulsar's TopicStats). Rates are per
// second, throughputs in bytes per second, sizes in bytes.
type TopicStats struct {
	MsgRateIn            float64                      `json:"msgRateIn"`
	MsgThroughputIn      float64                      `json:"msgThroughputIn"`
	MsgRateOut           float64                      `json:"msgRateOut"`
	MsgThroughputOut     float64                      `json:"msgThroughputOut"`
	MsgInCounter         int64                        `json:"msgInCounter"`
	BytesInCounter       int64                        `json:"bytesInCounter"`
	MsgOutCounter        int64                        `json:"msgOutCounter"`
	BytesOutCounter      int64                        `json:"bytesOutCounter"`
	AverageMsgSize       float64                      `json:"averageMsgSize"`
	StorageSize          int64                        `json:"storageSize"`
	BacklogSize          int64                        `json:"backlogSize"`
	OffloadedStorageSize int64                        `json:"offloadedStorageSize"`
	Publishers           []PublisherStats             `json:"publishers"`
	Subscriptions        map[string]SubscriptionStats `json:"subscriptions"`
	Replication          map[string]ReplicatorStats   `json:"replication"`
	DeduplicationStatus  string                       `json:"deduplicationStatus"`
}

// ReplicatorStats are a topic's replication figures for one remote cluster
// (Pulsar's ReplicatorStats): Out is this cluster's replicator sending
// there, In that cluster's replicator sending here.
type ReplicatorStats struct {
	MsgRateIn                 float64 `json:"msgRateIn"`
	MsgThroughputIn           float64 `json:"msgThroughputIn"`
	MsgRateOut                float64 `json:"msgRateOut"`
	MsgThroughputOut          float64 `json:"msgThroughputOut"`
	MsgOutCounter             int64   `json:"msgOutCounter"`
	BytesOutCounter           int64   `json:"bytesOutCounter"`
	MsgRateExpired            float64 `json:"msgRateExpired"`
	ReplicationBacklog        int64   `json:"replicationBacklog"`
	Connected                 bool    `json:"connected"`
	ReplicationDelayInSeconds int64   `json:"replicationDelayInSeconds"`
	InboundConnection         string  `json:"inboundConnection,omitempty"`
	InboundConnectedSince     string  `json:"inboundConnectedSince,omitempty"`
	OutboundConnection        string  `json:"outboundConnection,omitempty"`
	OutboundConnectedSince    string  `json:"outboundConnectedSince,omitempty"`
	// LastError says why the replicator is not connected.
	LastError string `json:"lastError,omitempty"`
}

// PartitionedTopicStats are the sums over a partitioned topic's partitions
// (Pulsar's PartitionedTopicStats); Partitions is filled when asked for.
type PartitionedTopicStats struct {
	TopicStats
	Metadata   tenants.PartitionedTopicMetadata `json:"metadata"`
	Partitions map[string]TopicStats            `json:"partitions,omitempty"`
}

// LedgerInfo describes one ledger of a topic (part of InternalStats).
type LedgerInfo struct {
	LedgerID  int64 `json:"ledgerId"`
	Entries   int64 `json:"entries"`
	Size      int64 `json:"size"`
	Offloaded bool  `json:"offloaded"`
}

// CursorStats describes one cursor (subscription) of a topic's managed
// ledger; positions are "ledger:entry".
type CursorStats struct {
	MarkDeletePosition string `json:"markDeletePosition"`
	ReadPosition       string `json:"readPosition"`
	// IndividuallyDeletedMessages lists the acknowledged ranges above the
	// mark-delete position, "[(3:4..3:7],...]" (the first 1,000).
	IndividuallyDeletedMessages              string `json:"individuallyDeletedMessages"`
	NumberOfEntriesSinceFirstNotAckedMessage int64  `json:"numberOfEntriesSinceFirstNotAckedMessage"`
	TotalNonContiguousDeletedMessagesRange   int    `json:"totalNonContiguousDeletedMessagesRange"`
	CursorLedger                             int64  `json:"cursorLedger"`
	State                                    string `json:"state"`
	Active                                   bool   `json:"active"`
}

// InternalStats describe a topic's storage (Pulsar's
// PersistentTopicInternalStats).
type InternalStats struct {
	EntriesAddedCounter  int64                  `json:"entriesAddedCounter"`
	NumberOfEntries      int64                  `json:"numberOfEntries"`
	TotalSize            int64                  `json:"totalSize"`
	CurrentLedgerEntries int64                  `json:"currentLedgerEntries"`
	CurrentLedgerSize    int64                  `json:"currentLedgerSize"`
	LastConfirmedEntry   string                 `json:"lastConfirmedEntry"`
	State                string                 `json:"state"`
	Ledgers              []LedgerInfo           `json:"ledgers"`
	Cursors              map[string]CursorStats `json:"cursors"`
}

// LookupData says which broker serves a topic.
type LookupData struct {
	// BrokerURL is the broker's client port as a Pulsar URL
	// (pulsar://host:port, or pulsar+ssl:// with TLS), for Strata's SDK and
	// Pulsar clients alike.
	BrokerURL string `json:"brokerUrl"`
	// BrokerURLTLS is its TLS variant, when reported.
	BrokerURLTLS string `json:"brokerUrlTls,omitempty"`
	// NativeURL is the broker's native protocol URL.
	NativeURL string `json:"nativeUrl"`
	// HTTPURL is the broker's admin/HTTP URL.
	HTTPURL string `json:"httpUrl"`
	// HTTPURLTLS is its TLS variant, when reported.
	HTTPURLTLS string `json:"httpUrlTls,omitempty"`
}

// Offload process states (Pulsar's LongRunningProcessStatus).
const (
	OffloadNotRun  = "NOT_RUN"
	OffloadRunning = "RUNNING"
	OffloadSuccess = "SUCCESS"
	OffloadError   = "ERROR"
)

// OffloadStatus is the state of a topic's last manual offload (Pulsar's
// OffloadProcessStatus).
type OffloadStatus struct {
	// Status is OffloadNotRun, OffloadRunning, OffloadSuccess or OffloadError.
	Status string `json:"status"`
	// LastError describes the failure when Status is OffloadError.
	LastError string `json:"lastError,omitempty"`
	// FirstUnoffloadedMessage is the first message kept on bookies.
	FirstUnoffloadedMessage *MessageID `json:"firstUnoffloadedMessage,omitempty"`
}
