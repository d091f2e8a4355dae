package ledger

import (
	"encoding/json"
	"fmt"
)

// State is a ledger's lifecycle state in metadata.
type State string

// Ledger states. A ledger goes OPEN -> CLOSED (writer closed it) or
// OPEN -> IN_RECOVERY -> CLOSED (another client recovered it).
const (
	StateOpen       State = "OPEN"
	StateInRecovery State = "IN_RECOVERY"
	StateClosed     State = "CLOSED"
)

// DigestCRC32C is the only digest type: CRC32C over header and payload.
const DigestCRC32C = "CRC32C"

// Segment is the ensemble used from FirstEntryID until the next segment.
type Segment struct {
	FirstEntryID int64    `json:"firstEntryId"`
	Ensemble     []string `json:"ensemble"` // bookie ids, ensemble slot order
}

// Metadata is a ledger's metadata record in etcd (/ledgers/{id}).
type Metadata struct {
	ID           int64 `json:"-"`
	State        State `json:"state"`
	EnsembleSize int   `json:"ensembleSize"`
	WriteQuorum  int   `json:"writeQuorum"`
	AckQuorum    int   `json:"ackQuorum"`
	// LastEntryID is the last entry of a CLOSED ledger; -1 while open or empty.
	LastEntryID int64 `json:"lastEntryId"`
	// Length is the total payload bytes of a CLOSED ledger.
	Length int64 `json:"length"`
	// CTime is the creation time, Unix milliseconds.
	CTime      int64             `json:"ctime"`
	Segments   []Segment         `json:"segments"`
	DigestType string            `json:"digestType"`
	Password   []byte            `json:"password,omitempty"`
	Custom     map[string]string `json:"customMetadata,omitempty"`

	// Version is the etcd ModRevision this copy was read at (for CAS).
	Version int64 `json:"-"`
}

func (m *Metadata) clone() Metadata {
	c := *m
	c.Segments = make([]Segment, len(m.Segments))
	for i, s := range m.Segments {
		c.Segments[i] = Segment{FirstEntryID: s.FirstEntryID, Ensemble: append([]string(nil), s.Ensemble...)}
	}
	return c
}

func (m *Metadata) encode() []byte {
	b, _ := json.Marshal(m)
	return b
}

// DecodeMetadata decodes a ledger's metadata record as stored under
// metadata.LedgerKey(id); version is the record's ModRevision.
func DecodeMetadata(id int64, data []byte, version int64) (Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("ledger %d: corrupt metadata: %w", id, err)
	}
	m.ID, m.Version = id, version
	if m.DigestType != DigestCRC32C {
		return m, fmt.Errorf("ledger %d: unsupported digest type %q", id, m.DigestType)
	}
	if len(m.Segments) == 0 || m.EnsembleSize < 1 {
		return m, fmt.Errorf("ledger %d: metadata has no ensemble", id)
	}
	return m, nil
}

// segmentFor returns the segment holding entryID: the one with the greatest
// FirstEntryID <= entryID.
func (m Metadata) segmentFor(entryID int64) Segment {
	s := m.Segments[0]
	for _, seg := range m.Segments[1:] {
		if seg.FirstEntryID > entryID {
			break
		}
		s = seg
	}
	return s
}

// lastSegment returns the current (last) segment.
func (m Metadata) lastSegment() Segment { return m.Segments[len(m.Segments)-1] }

// writeSet returns the ensemble slots that store entryID: (entryID+k) mod E
// for k = 0..Qw-1. Striping uses the absolute entry id.
func writeSet(entryID int64, e, qw int) []int {
	ws := make([]int, qw)
	for k := 0; k < qw; k++ {
		ws[k] = int((entryID + int64(k)) % int64(e))
	}
	return ws
}

// WriteSet returns the bookie ids that store entryID, in replica order.
func (m Metadata) WriteSet(entryID int64) []string {
	seg := m.segmentFor(entryID)
	ws := writeSet(entryID, m.EnsembleSize, m.WriteQuorum)
	out := make([]string, len(ws))
	for i, slot := range ws {
		out[i] = seg.Ensemble[slot]
	}
	return out
}

// covered implements the quorum-coverage rule used to finish fencing and
// LAC reads: for every write set (i..i+Qw-1 mod E), at least Qw-Qa+1 of its
// bookies must have answered definitively, so that no ack quorum of unknown
// bookies remains. known[slot] is true for definitive answers.
func covered(known []bool, e, qw, qa int) bool {
	need := qw - qa + 1
	for i := 0; i < e; i++ {
		n := 0
		for k := 0; k < qw; k++ {
			if known[(i+k)%e] {
				n++
			}
		}
		if n < need {
			return false
		}
	}
	return true
}

// MaxEnsembleSize is the largest ensemble a ledger may have (acks are
// tracked in a 64-bit set, one bit per ensemble slot).
const MaxEnsembleSize = 64

func validQuorums(e, qw, qa int) error {
	if e < 1 || qw < 1 || qa < 1 || qw > e || qa > qw || e > MaxEnsembleSize {
		return fmt.Errorf("%w: ensemble %d, write quorum %d, ack quorum %d (need %d >= E >= Qw >= Qa >= 1)", ErrInvalid, e, qw, qa, MaxEnsembleSize)
	}
	return nil
}
