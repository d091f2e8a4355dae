#!/usr/bin/env bash
# Runs pulsar-client-go's own integration tests (the unmodified v0.19.0
# module, copied out of the module cache) against a Strata standalone on
# 127.0.0.1:6650 / :8080, the addresses those tests hard-code, and prints
# "N passed, M failed" with each test's outcome.
#
#   scripts/pulsar-client-compat.sh            # the tests listed below
#   scripts/pulsar-client-compat.sh TestA TestB  # just these
#   VERBOSE=1 LOGDIR=/tmp/compat scripts/pulsar-client-compat.sh  # failure details, logs kept
#   ALL=1 scripts/pulsar-client-compat.sh      # every test of the client's ./pulsar package, 60 s each
#                                              # (many need TLS, auth, transactions or docker)
#
# Needs Go and network access to the module proxy the first time; ports
# 6650, 8080, 2379, 2380 and 3181 must be free.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=v0.19.0
cache=${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}
src=$cache/pulsar-client-go-$version
bin=$cache/pulsar-client-go-$version.test

default_tests=(
  TestProducerConsumer TestBatchMessageReceive TestBatchingDisabled TestConsumerAck TestAckWithResponse
  TestCumulativeAckWithResponse TestConsumerBatchCumulativeAck TestConsumerNack TestGetDeliveryCount
  TestConsumerKeyShared TestConsumerSeek TestConsumerSeekByTime TestReaderOnSpecificMessage
  TestReaderOnSpecificMessageWithBatching TestReaderHasNext TestReaderHasNextAgainstEmptyTopic
  TestReaderLatestInclusiveHasNext TestReaderSeek TestProducerDuplicateNameOnSameTopic TestConsumerNonDurable
  # beyond the issue's list
  TestSimpleProducer TestProducerAsyncSend TestBatchMessageFlushing TestConsumerFlow
  TestConsumerSubscriptionEarliestPosition TestConsumerEventTime TestProducerLastSequenceID
  TestExactlyOnceWithProducerNameSpecified TestConsumerUnSubscribe TestConsumerNoBatchCumulativeAck
  TestDLQ TestDLQWithProducerOptions TestDeadLetterTopicWithInitialSubscription
  TestReader TestReaderOnLatestWithBatching TestReaderWithSeekByID TestReaderWithSeekByTime
  TestReaderOnPartitionedTopic TestReaderReadFromLatest
  TestProducerCompression TestConsumerCompression TestConsumerCompressionWithBatches TestConsumerMultiCompressions
  TestPartitionTopicsConsumerPubSub TestConsumerSeekByTimeOnPartitionedTopic TestKeyBasedBatchProducerConsumerKeyShared
  TestRoundRobinRouterPartitionedProducer TestBatchDelayMessage TestBatchIndexAck TestConsumerBatchIndexAckDisabled
  TestLargeMessage TestMaxPendingChunkMessages TestSeekChunkMessages TestChunkAckAndNAck TestChunkSize
  TestChunkWithReconnection TestResendChunkMessages TestResendChunkWithAckHoleMessages
  TestProducerConsumerRSAEncryption TestBatchProducerConsumerRSAEncryptionWithCompression TestProducerWithRSAEncryption
  TestConsumerMetadata TestProducerMetadata TestClientVersion TestConsumerGetLastMessageIDs
  TestPartitionConsumerGetLastMessageIDs TestMultiTopicGetLastMessageIDs TestZeroQueueConsumer_Nack
  TestZeroQueueConsumer_Seek TestExclusiveProducer TestWaitForExclusiveProducer TestConsumerWithBackoffPolicy
  TestSelectConnectionForSameConsumer
  # schemas
  TestBytesSchema TestJsonSchema TestProtoSchema TestAvroSchema TestStringSchema TestInt8Schema TestInt16Schema
  TestInt32Schema TestInt64Schema TestFloatSchema TestDoubleSchema TestReaderWithSchema TestMultipleSchemaProducerConsumer
  TestProducerWithSchemaAndConsumerSchemaNotFound TestHTTPLookupJsonSchema TestHTTPLookupAvroSchema TestTableView
)
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then tests=("${default_tests[@]}"); fi

if [ ! -x "$bin" ]; then
  mod=$(cd "$root/compat/pulsar" && go list -m -f '{{.Dir}}' github.com/apache/pulsar-client-go)
  rm -rf "$src" && mkdir -p "$cache" && cp -r "$mod" "$src" && chmod -R u+w "$src"
  echo "building the client's test binary (a few minutes the first time)..." >&2
  (cd "$src" && GOFLAGS=-mod=mod go test -c -o "$bin" ./pulsar/) >&2
fi

if [ -n "${ALL:-}" ]; then
  mapfile -t tests < <("$bin" -test.list '^Test' | grep '^Test')
fi
per_test=${ALL:+60s}
per_test=${per_test:-240s}

work=$(mktemp -d)
# Each test's output goes to $LOGDIR/<test>.log (kept), else to a
# temporary directory removed at the end.
logs=${LOGDIR:-$work}
mkdir -p "$logs"
go build -o "$work/strata" ./cmd/strata
"$work/strata" standalone --data-dir "$work/data" --grpc-addr 127.0.0.1:6650 --http-addr 127.0.0.1:8080 \
  --max-message-size 1048576 >"$work/standalone.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 150); do
  curl -sf http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf http://127.0.0.1:8080/readyz >/dev/null || { echo "standalone not ready" >&2; tail -20 "$work/standalone.log" >&2; exit 1; }

passed=0 failed=0 skipped=0 failures=()
for t in "${tests[@]}"; do
  if (cd "$src/pulsar" && timeout 300 "$bin" -test.run "^${t}\$" -test.v -test.count 1 -test.timeout "$per_test" >"$logs/$t.log" 2>&1) \
      && grep -q -- "^--- PASS: $t " "$logs/$t.log"; then
    passed=$((passed + 1)); echo "PASS $t"
  elif grep -q -- "^--- SKIP: $t " "$logs/$t.log"; then
    skipped=$((skipped + 1)); echo "SKIP $t"
  else
    failed=$((failed + 1)); failures+=("$t"); echo "FAIL $t"
    if [ -n "${VERBOSE:-}" ]; then grep -E "Error Trace|Error:|panic|--- FAIL" "$logs/$t.log" | head -8 || true; fi
  fi
done
summary="$passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then summary="$summary, $skipped skipped by the client"; fi
echo "$summary"
[ "$failed" -eq 0 ]
