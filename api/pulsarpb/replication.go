package pulsarpb

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
)

// ReplSourcePositionProperty is the message property a replicator adds to
// every entry it copies to another cluster: the entry's position in the
// source cluster, "ledgerId:entryId" (Pulsar's name for it). The
// receiving broker drops an entry whose source position is not past the
// last one it stored from that cluster, so a replicator that resends
// after a restart stores nothing twice.
const ReplSourcePositionProperty = "__MSG_PROP_REPL_SOURCE_POSITION"

// ReplSourcePosition returns the source position a replicated entry
// carries; ok is false when it carries none.
func (m *MessageMetadata) ReplSourcePosition() (ledgerID, entryID int64, ok bool, err error) {
	for _, kv := range m.GetProperties() {
		if kv.GetKey() != ReplSourcePositionProperty {
			continue
		}
		l, e, found := strings.Cut(kv.GetValue(), ":")
		if !found {
			return 0, 0, false, fmt.Errorf("%s %q is not ledgerId:entryId", ReplSourcePositionProperty, kv.GetValue())
		}
		ledgerID, lerr := strconv.ParseInt(l, 10, 64)
		entryID, eerr := strconv.ParseInt(e, 10, 64)
		if lerr != nil || eerr != nil || ledgerID < 0 || entryID < 0 {
			return 0, 0, false, fmt.Errorf("%s %q is not ledgerId:entryId", ReplSourcePositionProperty, kv.GetValue())
		}
		return ledgerID, entryID, true, nil
	}
	return 0, 0, false, nil
}

// SetReplicated marks the metadata as copied from cluster from, entry
// (ledgerID, entryID) there, replacing any source position it had.
func (m *MessageMetadata) SetReplicated(from string, ledgerID, entryID int64) {
	m.ReplicatedFrom = proto.String(from)
	props := m.Properties[:0]
	for _, kv := range m.Properties {
		if kv.GetKey() != ReplSourcePositionProperty {
			props = append(props, kv)
		}
	}
	v := strconv.FormatInt(ledgerID, 10) + ":" + strconv.FormatInt(entryID, 10)
	m.Properties = append(props, &KeyValue{Key: proto.String(ReplSourcePositionProperty), Value: proto.String(v)})
}
