package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/internal/units"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/offload"
)

// offloadFlags are the tiered-storage flags of brokers.
type offloadFlags struct {
	driver, fsDir, prefix           string
	s3                              offload.S3Options
	s3CreateBucket                  bool
	blockSize, readAhead, threshold string
	thresholdSeconds                int64
	deletionLag, checkInterval      time.Duration
}

// register adds the flags; driver and fsDir are the defaults of
// --offload-driver and --offload-fs-dir.
func (o *offloadFlags) register(f *pflag.FlagSet, driver, fsDir string) {
	f.StringVar(&o.driver, "offload-driver", driver, `tiered storage driver: "s3", "filesystem", or "" for none`)
	f.StringVar(&o.fsDir, "offload-fs-dir", fsDir, "directory of the filesystem driver (strata standalone: DATA-DIR/offload)")
	f.StringVar(&o.prefix, "offload-key-prefix", "", "prefix of every offloaded object's key")
	f.StringVar(&o.s3.Endpoint, "offload-s3-endpoint", "", "S3 endpoint, host:port or http(s)://host:port (default: AWS S3)")
	f.StringVar(&o.s3.Bucket, "offload-s3-bucket", "", "S3 bucket holding offloaded ledgers")
	f.StringVar(&o.s3.Region, "offload-s3-region", offload.DefaultS3Region, "S3 region of the bucket")
	f.StringVar(&o.s3.AccessKey, "offload-s3-access-key", "", "S3 access key (default: AWS_ACCESS_KEY_ID, the AWS credentials file or the IAM role)")
	f.StringVar(&o.s3.SecretKey, "offload-s3-secret-key", "", "S3 secret key (default: AWS_SECRET_ACCESS_KEY, ...)")
	f.BoolVar(&o.s3.PathStyle, "offload-s3-path-style", false, "use path-style requests (MinIO, Ceph, versitygw)")
	f.StringVar(&o.s3.CAFile, "offload-s3-ca-file", "", "PEM bundle of a private CA trusted for the S3 endpoint")
	f.BoolVar(&o.s3CreateBucket, "offload-s3-create-bucket", true, "create the bucket at start-up when it is missing")
	f.StringVar(&o.blockSize, "offload-block-size", "64M", "size of the blocks of an offloaded ledger (ranged reads fetch whole blocks)")
	f.StringVar(&o.readAhead, "offload-read-ahead", "16M", "bytes read ahead per offloaded ledger being replayed")
	f.StringVar(&o.threshold, "offload-threshold", "-1", "default offload threshold: bytes a topic keeps on bookies before older ledgers are offloaded (0: at once, -1: off); namespaces override it")
	f.Int64Var(&o.thresholdSeconds, "offload-threshold-seconds", -1, "default age in seconds after which closed ledgers are offloaded (-1: off); namespaces override it")
	f.DurationVar(&o.deletionLag, "offload-deletion-lag", 4*time.Hour, "default time an offloaded ledger stays on bookies; namespaces override it")
	f.DurationVar(&o.checkInterval, "offload-check-interval", time.Minute, "how often topics check their offload policy (also at every ledger rollover)")
}

// apply builds the store and fills the broker's offload options.
func (o *offloadFlags) apply(bo *broker.Options) error {
	var err error
	switch o.driver {
	case "":
		return nil
	case "filesystem":
		if o.fsDir == "" {
			return fmt.Errorf("--offload-driver filesystem needs --offload-fs-dir")
		}
		if bo.Offload.Store, err = offload.NewFSStore(o.fsDir); err != nil {
			return err
		}
	case "s3":
		if o.s3.Bucket == "" {
			return fmt.Errorf("--offload-driver s3 needs --offload-s3-bucket")
		}
		s3 := o.s3
		s3.DisableCreateBucket = !o.s3CreateBucket
		if bo.Offload.Store, err = offload.NewS3Store(s3); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--offload-driver %q: want s3, filesystem or empty", o.driver)
	}
	bo.Offload.Driver, bo.Offload.KeyPrefix, bo.Offload.CheckInterval = o.driver, o.prefix, o.checkInterval
	block, err := units.ParseSize(o.blockSize)
	if err != nil || block < offload.MinBlockSize || block > offload.MaxBlockSize {
		return fmt.Errorf("--offload-block-size %q: want a size between %d and 1G", o.blockSize, offload.MinBlockSize)
	}
	bo.Offload.Write.BlockSize = int(block)
	ra, err := units.ParseSize(o.readAhead)
	if err != nil || ra < 0 {
		return fmt.Errorf("--offload-read-ahead %q: want a size such as 16M (0 turns read-ahead off)", o.readAhead)
	}
	if ra == 0 {
		bo.Offload.Read.DisableReadAhead = true
	}
	bo.Offload.Read.ReadAheadBytes = ra
	threshold, err := units.ParseSize(o.threshold)
	if err != nil {
		return fmt.Errorf("--offload-threshold: %w", err)
	}
	bo.Offload.Policy = &managed.OffloadPolicy{ThresholdBytes: threshold, ThresholdSeconds: o.thresholdSeconds, DeletionLag: o.deletionLag}
	return nil
}
