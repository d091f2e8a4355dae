package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/ledger/managed"
)

// offloadStatusBody is Pulsar's OffloadProcessStatus.
type offloadStatusBody struct {
	Status                  string         `json:"status"`
	LastError               string         `json:"lastError"`
	FirstUnoffloadedMessage *messageIDBody `json:"firstUnoffloadedMessage,omitempty"`
}

// offloadTopic is PUT .../offload with a message id: every closed ledger
// before the id's ledger is offloaded in the background; GET .../offload
// reports progress. Like Pulsar, it answers 409 while a manual offload of
// the topic runs.
func (b *Broker) offloadTopic(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	if err := b.rejectPartitionedParent(ctx, t, "offloading"); err != nil {
		return err
	}
	id, err := readMessageID(r)
	if err != nil {
		return err
	}
	if id == nil || id.LedgerID < 0 || id.EntryID < 0 {
		return httpErr(http.StatusBadRequest, "a message id {\"ledgerId\":..,\"entryId\":..} is required: ledgers before it are offloaded")
	}
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	if err := tp.ml.TriggerOffloadPrefix(managed.Position{LedgerID: id.LedgerID, EntryID: id.EntryID}); err != nil {
		return offloadErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) offloadStatus(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	if err := b.rejectPartitionedParent(ctx, t, "offload status of"); err != nil {
		return err
	}
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	if b.opts.Offload.Store == nil {
		return offloadErr(managed.ErrOffloadDisabled)
	}
	st := tp.ml.OffloadStatus()
	writeJSON(w, http.StatusOK, offloadStatusBody{
		Status: string(st.State), LastError: st.LastError,
		FirstUnoffloadedMessage: &messageIDBody{LedgerID: st.FirstUnoffloaded.LedgerID, EntryID: st.FirstUnoffloaded.EntryID,
			PartitionIndex: tp.partition, BatchIndex: -1},
	})
	return nil
}

func (b *Broker) rejectPartitionedParent(ctx context.Context, t naming.Topic, what string) error {
	if pm, err := b.cfg.GetPartitionedTopic(ctx, t); err == nil && pm.Partitions > 0 {
		return httpErr(http.StatusMethodNotAllowed, "%s a partitioned topic is not supported; use its partitions (%s)", what, t.Partition(0))
	}
	return nil
}

func offloadErr(err error) error {
	switch {
	case errors.Is(err, managed.ErrOffloadDisabled):
		return httpErr(http.StatusPreconditionFailed, "tiered storage is not configured on this broker (start it with --offload-driver)")
	case errors.Is(err, managed.ErrOffloadInProgress):
		return httpErr(http.StatusConflict, "an offload of this topic is already running")
	}
	return fmt.Errorf("offload: %w", err)
}
