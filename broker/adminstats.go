package broker

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/internal/naming"
)

// Topic stats in the JSON shape of Pulsar's TopicStats.

type publisherStats struct {
	ProducerName    string  `json:"producerName"`
	MsgRateIn       float64 `json:"msgRateIn"`
	MsgThroughputIn float64 `json:"msgThroughputIn"`
	AverageMsgSize  float64 `json:"averageMsgSize"`
	AccessMode      string  `json:"accessMode"`
	ConnectedSince  string  `json:"connectedSince"`
	Address         string  `json:"address,omitempty"`
	ClientVersion   string  `json:"clientVersion,omitempty"`
	// Metadata are the producer's own properties.
	Metadata map[string]string `json:"metadata,omitempty"`
}

type consumerStats struct {
	ConsumerName     string  `json:"consumerName"`
	MsgRateOut       float64 `json:"msgRateOut"`
	MsgThroughputOut float64 `json:"msgThroughputOut"`
	MsgOutCounter    int64   `json:"msgOutCounter"`
	BytesOutCounter  int64   `json:"bytesOutCounter"`
	AvailablePermits int64   `json:"availablePermits"`
	UnackedMessages  int     `json:"unackedMessages"`
	ConnectedSince   string  `json:"connectedSince"`
	Address          string  `json:"address,omitempty"`
	ClientVersion    string  `json:"clientVersion,omitempty"`
	// Metadata are the consumer's own properties.
	Metadata map[string]string `json:"metadata,omitempty"`
}

type subscriptionStats struct {
	MsgRateOut       float64         `json:"msgRateOut"`
	MsgThroughputOut float64         `json:"msgThroughputOut"`
	MsgOutCounter    int64           `json:"msgOutCounter"`
	BytesOutCounter  int64           `json:"bytesOutCounter"`
	MsgBacklog       int64           `json:"msgBacklog"`
	UnackedMessages  int             `json:"unackedMessages"`
	MsgRateRedeliver float64         `json:"msgRateRedeliver"`
	Type             string          `json:"type"`
	IsDurable        bool            `json:"isDurable"`
	IsReplicated     bool            `json:"isReplicated"`
	Consumers        []consumerStats `json:"consumers"`
}

type topicStatsJSON struct {
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
	Publishers           []publisherStats             `json:"publishers"`
	Subscriptions        map[string]subscriptionStats `json:"subscriptions"`
	Replication          map[string]replicatorStats   `json:"replication"`
	DeduplicationStatus  string                       `json:"deduplicationStatus"`
}

func subTypeName(t clientpb.SubscriptionType) string {
	return map[clientpb.SubscriptionType]string{
		clientpb.SubscriptionType_EXCLUSIVE: "Exclusive", clientpb.SubscriptionType_SHARED: "Shared",
		clientpb.SubscriptionType_FAILOVER: "Failover", clientpb.SubscriptionType_KEY_SHARED: "Key_Shared",
	}[t]
}

// stats builds the topic's stats.
func (t *Topic) statsJSON() topicStatsJSON {
	r := t.rates()
	ms := t.ml.Stats()
	out := topicStatsJSON{
		MsgRateIn: r.rateIn, MsgThroughputIn: r.thrIn, MsgRateOut: r.rateOut, MsgThroughputOut: r.thrOut,
		MsgInCounter: t.stats.in.msgs.Load(), BytesInCounter: t.stats.in.bytes.Load(),
		MsgOutCounter: t.stats.out.msgs.Load(), BytesOutCounter: t.stats.out.bytes.Load(),
		StorageSize: ms.Size, OffloadedStorageSize: ms.OffloadedSize,
		Publishers: []publisherStats{}, Subscriptions: map[string]subscriptionStats{}, Replication: map[string]replicatorStats{},
		DeduplicationStatus: t.dedup.status(),
	}
	if out.MsgInCounter > 0 {
		out.AverageMsgSize = float64(out.BytesInCounter) / float64(out.MsgInCounter)
	}
	t.mu.Lock()
	for _, p := range t.mu.producers {
		mode := "Shared"
		if p.accessExclusive {
			mode = "Exclusive"
		}
		ps := publisherStats{ProducerName: p.name, AccessMode: mode, ConnectedSince: p.since.Format(time.RFC3339),
			Address: p.conn.address, ClientVersion: p.conn.version, Metadata: p.metadata}
		ps.MsgRateIn, ps.MsgThroughputIn = p.stored.rates()
		if n := p.stored.msgs.Load(); n > 0 {
			ps.AverageMsgSize = float64(p.stored.bytes.Load()) / float64(n)
		}
		out.Publishers = append(out.Publishers, ps)
	}
	subs := t.allSubsLocked() // readers too, as Pulsar's non-durable subscriptions
	t.mu.Unlock()
	backlogs := map[string]int64{}
	for _, c := range ms.Cursors {
		backlogs[c.Name] = c.Backlog
	}
	for _, s := range subs {
		backlog, ok := backlogs[s.name]
		if !s.durable || !ok {
			backlog = s.cursor.Backlog()
		}
		ss := subscriptionStats{IsDurable: s.durable, IsReplicated: s.replicated.Load(), MsgBacklog: backlog, Consumers: []consumerStats{}}
		s.mu.Lock()
		ss.Type = subTypeName(s.mu.subType)
		for _, c := range s.mu.consumers {
			cs := consumerStats{ConsumerName: c.name, MsgOutCounter: c.sent.msgs.Load(), BytesOutCounter: c.sent.bytes.Load(),
				AvailablePermits: max(c.permits, 0), UnackedMessages: c.unacked, ConnectedSince: c.since.Format(time.RFC3339),
				Address: c.conn.address, ClientVersion: c.conn.version, Metadata: c.metadata}
			cs.MsgRateOut, cs.MsgThroughputOut = c.sent.rates()
			ss.Consumers = append(ss.Consumers, cs)
			ss.MsgOutCounter += cs.MsgOutCounter
			ss.BytesOutCounter += cs.BytesOutCounter
			ss.MsgRateOut += cs.MsgRateOut
			ss.MsgThroughputOut += cs.MsgThroughputOut
			ss.UnackedMessages += cs.UnackedMessages
		}
		s.mu.Unlock()
		ss.MsgRateRedeliver, _ = s.redelivered.rates()
		out.Subscriptions[s.name] = ss
	}
	t.replicationStats(out.Replication)
	// Pulsar's backlogSize: bytes from the slowest subscription on.
	_, _, out.BacklogSize = t.backlog(ms)
	return out
}

func (b *Broker) topicStats(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tp.statsJSON())
	return nil
}

// partitionedStats sums the stats of every partition (each fetched from
// the broker serving it) and lists them per partition with ?perPartition=true.
func (b *Broker) partitionedStats(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	pm, err := b.cfg.GetPartitionedTopic(ctx, t)
	if err != nil {
		return err
	}
	type partitioned struct {
		topicStatsJSON
		Metadata   map[string]int            `json:"metadata"`
		Partitions map[string]topicStatsJSON `json:"partitions,omitempty"`
	}
	agg := partitioned{topicStatsJSON: topicStatsJSON{Publishers: []publisherStats{}, Subscriptions: map[string]subscriptionStats{}, Replication: map[string]replicatorStats{}, DeduplicationStatus: "Disabled"},
		Metadata: map[string]int{"partitions": pm.Partitions}}
	per := r.URL.Query().Get("perPartition") == "true"
	if per {
		agg.Partitions = map[string]topicStatsJSON{}
	}
	for i := 0; i < pm.Partitions; i++ {
		p := t.Partition(i)
		st, ok, err := b.partitionStats(ctx, r, p)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		a := &agg.topicStatsJSON
		a.MsgRateIn += st.MsgRateIn
		a.MsgThroughputIn += st.MsgThroughputIn
		a.MsgRateOut += st.MsgRateOut
		a.MsgThroughputOut += st.MsgThroughputOut
		a.MsgInCounter += st.MsgInCounter
		a.BytesInCounter += st.BytesInCounter
		a.MsgOutCounter += st.MsgOutCounter
		a.BytesOutCounter += st.BytesOutCounter
		a.StorageSize += st.StorageSize
		a.BacklogSize += st.BacklogSize
		a.OffloadedStorageSize += st.OffloadedStorageSize
		a.Publishers = append(a.Publishers, st.Publishers...)
		for name, ss := range st.Subscriptions {
			cur := a.Subscriptions[name]
			cur.Type, cur.IsDurable = ss.Type, ss.IsDurable
			cur.MsgBacklog += ss.MsgBacklog
			cur.MsgOutCounter += ss.MsgOutCounter
			cur.BytesOutCounter += ss.BytesOutCounter
			cur.UnackedMessages += ss.UnackedMessages
			cur.Consumers = append(cur.Consumers, ss.Consumers...)
			a.Subscriptions[name] = cur
		}
		for remote, rs := range st.Replication {
			if cur, ok := a.Replication[remote]; ok {
				rs = rs.plus(cur)
			}
			a.Replication[remote] = rs
		}
		if per {
			agg.Partitions[p.String()] = st
		}
	}
	if agg.MsgInCounter > 0 {
		agg.AverageMsgSize = float64(agg.BytesInCounter) / float64(agg.MsgInCounter)
	}
	writeJSON(w, http.StatusOK, agg)
	return nil
}

// partitionStats returns one partition's stats; ok is false if it has no
// managed ledger yet.
func (b *Broker) partitionStats(ctx context.Context, r *http.Request, p naming.Topic) (topicStatsJSON, bool, error) {
	ok, err := b.topicExists(ctx, p)
	if err != nil || !ok {
		return topicStatsJSON{}, false, err
	}
	bi, _, err := b.lookup(ctx, p, true)
	if err != nil {
		return topicStatsJSON{}, false, err
	}
	if bi.ID == b.id {
		tp, err := b.getTopic(ctx, p)
		if err != nil {
			return topicStatsJSON{}, false, err
		}
		return tp.statsJSON(), true, nil
	}
	resp, err := b.forward(ctx, r, http.MethodGet, bi.HTTPURL+"/admin/v2/persistent/"+p.Path()+"/stats?authoritative=true")
	if err != nil {
		return topicStatsJSON{}, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return topicStatsJSON{}, false, httpErr(resp.StatusCode, "stats of %s at %s: %s", p, bi.HTTPURL, resp.Status)
	}
	var st topicStatsJSON
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return topicStatsJSON{}, false, err
	}
	return st, true, nil
}

// Internal stats in the shape of Pulsar's PersistentTopicInternalStats.

type ledgerInfoJSON struct {
	LedgerID  int64 `json:"ledgerId"`
	Entries   int64 `json:"entries"`
	Size      int64 `json:"size"`
	Offloaded bool  `json:"offloaded"`
}

type cursorJSON struct {
	MarkDeletePosition                       string `json:"markDeletePosition"`
	ReadPosition                             string `json:"readPosition"`
	IndividuallyDeletedMessages              string `json:"individuallyDeletedMessages"`
	NumberOfEntriesSinceFirstNotAckedMessage int64  `json:"numberOfEntriesSinceFirstNotAckedMessage"`
	TotalNonContiguousDeletedMessagesRange   int    `json:"totalNonContiguousDeletedMessagesRange"`
	CursorLedger                             int64  `json:"cursorLedger"`
	State                                    string `json:"state"`
	Active                                   bool   `json:"active"`
}

type internalStatsJSON struct {
	EntriesAddedCounter  int64                 `json:"entriesAddedCounter"`
	NumberOfEntries      int64                 `json:"numberOfEntries"`
	TotalSize            int64                 `json:"totalSize"`
	CurrentLedgerEntries int64                 `json:"currentLedgerEntries"`
	CurrentLedgerSize    int64                 `json:"currentLedgerSize"`
	LastConfirmedEntry   string                `json:"lastConfirmedEntry"`
	State                string                `json:"state"`
	Ledgers              []ledgerInfoJSON      `json:"ledgers"`
	Cursors              map[string]cursorJSON `json:"cursors"`
}

func (b *Broker) internalStats(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	ms := tp.ml.Stats()
	out := internalStatsJSON{
		EntriesAddedCounter: tp.stats.entriesIn.Load(), NumberOfEntries: ms.Entries, TotalSize: ms.Size,
		LastConfirmedEntry: ms.LastConfirmed.String(), State: ms.State, Ledgers: []ledgerInfoJSON{}, Cursors: map[string]cursorJSON{},
	}
	for _, l := range ms.Ledgers {
		out.Ledgers = append(out.Ledgers, ledgerInfoJSON{LedgerID: l.LedgerID, Entries: l.Entries, Size: l.Size, Offloaded: l.Offloaded})
		if l.State == "open" {
			out.CurrentLedgerEntries, out.CurrentLedgerSize = l.Entries, l.Size
		}
	}
	for _, c := range ms.Cursors {
		var acked string
		if cur, ok := tp.ml.Cursor(c.Name); ok {
			acked, _ = cur.AckedRangesString(maxListedAckRanges)
		}
		state := "Open"
		if !c.Active {
			state = "NoLedger"
		}
		out.Cursors[c.Name] = cursorJSON{
			MarkDeletePosition: c.MarkDelete.String(), ReadPosition: c.ReadPosition.String(),
			NumberOfEntriesSinceFirstNotAckedMessage: c.Backlog, TotalNonContiguousDeletedMessagesRange: c.AckRanges,
			CursorLedger: -1, State: state, Active: c.Active, IndividuallyDeletedMessages: acked,
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// maxListedAckRanges bounds the acknowledged ranges internal stats list per
// cursor (the count is always exact).
const maxListedAckRanges = 1000
