// Package offload is Strata's tiered storage: it moves closed ledgers from
// the bookies to an object store and reads them back.
//
// It has three layers:
//
//   - BlobStore, a small object-store interface with two drivers: S3Store
//     (any S3-compatible store, through minio-go) and FSStore (a local
//     directory, the standalone default).
//   - The offloaded-ledger object format (format.go): a data object of
//     checksummed blocks of entry frames, and an index object with the
//     ledger's metadata and the block table. docs/tiered-storage.md
//     specifies it byte by byte.
//   - WriteLedger, which streams a closed ledger from a LedgerSource into
//     the two objects, and LedgerReader (OpenLedger), which serves entry
//     ranges with ranged GETs and background read-ahead.
//
// The package does not decide when to offload or record that a ledger was
// offloaded; the managed ledger does, keeping the object keys (ObjectKeys)
// in its ledger metadata.
package offload
