package client

import (
	"fmt"
	"math"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
)

// MessageID identifies a message: its entry (ledger, entry), its index in a
// batch entry, and its partition.
type MessageID struct {
	LedgerID   int64
	EntryID    int64
	BatchIndex int32 // -1 when not batched
	BatchSize  int32
	Partition  int32 // -1 for non-partitioned topics
}

var (
	// EarliestMessageID starts a reader at the oldest retained message.
	EarliestMessageID = MessageID{LedgerID: -1, EntryID: -1, BatchIndex: -1, Partition: -1}
	// LatestMessageID starts a reader after the last message.
	LatestMessageID = MessageID{LedgerID: math.MaxInt64, EntryID: math.MaxInt64, BatchIndex: -1, Partition: -1}
)

func (id MessageID) String() string {
	return fmt.Sprintf("%d:%d:%d:%d", id.LedgerID, id.EntryID, id.Partition, id.BatchIndex)
}

// Less orders ids within one partition.
func (id MessageID) Less(o MessageID) bool {
	if id.LedgerID != o.LedgerID {
		return id.LedgerID < o.LedgerID
	}
	if id.EntryID != o.EntryID {
		return id.EntryID < o.EntryID
	}
	return id.BatchIndex < o.BatchIndex
}

func (id MessageID) pb() *clientpb.MessageId {
	return &clientpb.MessageId{LedgerId: id.LedgerID, EntryId: id.EntryID, BatchIndex: id.BatchIndex, Partition: id.Partition, BatchSize: id.BatchSize}
}

func messageIDFromPB(p *clientpb.MessageId) MessageID {
	return MessageID{LedgerID: p.GetLedgerId(), EntryID: p.GetEntryId(), BatchIndex: p.GetBatchIndex(), BatchSize: p.GetBatchSize(), Partition: p.GetPartition()}
}

// ProducerMessage is a message to send.
type ProducerMessage struct {
	Payload []byte
	// Key routes the message to a partition and, on Key_Shared
	// subscriptions, to a consumer.
	Key string
	// OrderingKey overrides Key for Key_Shared routing.
	OrderingKey string
	Properties  map[string]string
	// EventTime is application-defined (zero: unset).
	EventTime time.Time
	// DeliverAt / DeliverAfter delay delivery on Shared and Key_Shared
	// subscriptions.
	DeliverAt    time.Time
	DeliverAfter time.Duration
	// SequenceID overrides the producer's sequence (for deduplication);
	// nil: the next one.
	SequenceID *int64
	// ReplicationClusters, when set, limits geo-replication of this
	// message to these clusters (of the namespace's); DisableReplication
	// keeps it in the local cluster. Such a message is sent in an entry of
	// its own.
	ReplicationClusters []string
	DisableReplication  bool
}

// replicateTo returns the message's replicate_to list (nil: the
// namespace's clusters).
func (m *ProducerMessage) replicateTo() []string {
	if m.DisableReplication {
		return []string{localOnly}
	}
	return m.ReplicationClusters
}

// localOnly is the replicate_to value that names no cluster (Pulsar's).
const localOnly = "__local__"

// Message is a received message.
type Message struct {
	ID              MessageID
	Payload         []byte
	Key             string
	OrderingKey     string
	Properties      map[string]string
	EventTime       time.Time
	PublishTime     time.Time
	ProducerName    string
	SequenceID      int64
	RedeliveryCount uint32
	Topic           string
	// ReplicatedFrom names the cluster the message was produced in when
	// geo-replication brought it here ("" for a message produced here).
	ReplicatedFrom string
	// DecodeError is set (wrapping ErrUndecodable) when the entry could not
	// be decoded: Payload is then the raw entry and ID names the entry
	// (BatchIndex -1); acknowledging it skips it.
	DecodeError error
	consumer    *partitionConsumer
	gen         int
}
