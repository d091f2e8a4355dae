package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/ledger/managed"
)

// getMessageByID is Pulsar's GET .../{topic}/ledger/{ledger}/entry/{entry}:
// the entry's payload (a batch's messages in their batch layout, the
// payload uncompressed) with its metadata in X-Pulsar-* headers, as
// pulsar-admin and pulsaradmin read it.
func (b *Broker) getMessageByID(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	ledgerID, err1 := strconv.ParseInt(r.PathValue("ledger"), 10, 64)
	entryID, err2 := strconv.ParseInt(r.PathValue("entry"), 10, 64)
	if err1 != nil || err2 != nil || ledgerID < 0 || entryID < 0 {
		return httpErr(http.StatusBadRequest, "ledger and entry must be numbers from 0, got %q and %q", r.PathValue("ledger"), r.PathValue("entry"))
	}
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	pos := managed.Position{LedgerID: ledgerID, EntryID: entryID}
	es, _, err := tp.ml.Read(ctx, pos, 1, int64(maxEntrySize(b.opts.MaxMessageSize)))
	if err != nil && !errors.Is(err, managed.ErrInvalidPosition) {
		return err
	}
	if len(es) == 0 || es[0].Position != pos {
		return httpErr(http.StatusNotFound, "message %d:%d not found in %s", ledgerID, entryID, t)
	}
	md, payload, err := pulsarpb.DecodeEntry(es[0].Data)
	if err != nil {
		return fmt.Errorf("stored entry %d:%d of %s: %w", ledgerID, entryID, t, err)
	}
	if !md.Encrypted() {
		if payload, err = pulsarpb.Decompress(md, payload, maxUncompressed(b.opts.MaxMessageSize)); err != nil {
			return fmt.Errorf("stored entry %d:%d of %s: %w", ledgerID, entryID, t, err)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Pulsar-Message-ID", fmt.Sprintf("%d:%d", ledgerID, entryID))
	h.Set("X-Pulsar-Publish-Time", time.UnixMilli(int64(md.GetPublishTime())).UTC().Format(time.RFC3339Nano))
	h.Set("X-Pulsar-Producer-Name", md.GetProducerName())
	h.Set("X-Pulsar-Sequence-Id", strconv.FormatUint(md.GetSequenceId(), 10))
	if md.IsBatch() {
		h.Set("X-Pulsar-Num-Batch-Message", strconv.Itoa(md.NumMessages()))
	} else {
		if k := md.GetPartitionKey(); k != "" {
			h.Set("X-Pulsar-Key", k)
		}
		if len(md.Properties) > 0 {
			props := make(map[string]string, len(md.Properties))
			for _, kv := range md.Properties {
				props[kv.GetKey()] = kv.GetValue()
			}
			js, _ := json.Marshal(props)
			h.Set("X-Pulsar-Property", string(js))
		}
	}
	w.WriteHeader(http.StatusOK)
	w.Write(payload)
	return nil
}
