package client

import (
	"errors"
	"fmt"

	"github.com/strata-mq/strata/api/clientpb"
)

// Errors returned by the SDK. Broker failures wrap ServerError values, so
// both errors.Is(err, client.ErrTopicTerminated) and the raw code work.
var (
	ErrClosed             = errors.New("strata: client or handle closed")
	ErrProducerQueueFull  = errors.New("strata: producer queue is full")
	ErrSendTimeout        = errors.New("strata: send timed out")
	ErrMessageTooLarge    = errors.New("strata: message too large")
	ErrInvalidTopicName   = errors.New("strata: invalid topic name")
	ErrTopicNotFound      = errors.New("strata: topic not found")
	ErrNamespaceNotFound  = errors.New("strata: namespace not found")
	ErrConsumerBusy       = errors.New("strata: consumer busy")
	ErrProducerBusy       = errors.New("strata: producer busy")
	ErrNotAllowed         = errors.New("strata: operation not allowed")
	ErrTopicTerminated    = errors.New("strata: topic terminated")
	ErrInvalidMessageID   = errors.New("strata: invalid message id")
	ErrUnauthenticated    = errors.New("strata: authentication failed")
	ErrUnauthorized       = errors.New("strata: not authorized")
	ErrQuotaExceeded      = errors.New("strata: backlog quota exceeded")
	ErrPartitionedTopic   = errors.New("strata: topic is partitioned")
	ErrSubscriptionClosed = errors.New("strata: subscription reset or unsubscribed")
	// ErrIncompatibleSchema: the declared schema may not follow the
	// topic's versions under its compatibility strategy (or is malformed).
	ErrIncompatibleSchema = errors.New("strata: incompatible schema")
	// ErrUndecodable: an entry of the topic cannot be decoded (a count or
	// size its bytes do not back, broken metadata). Receive returns it with
	// the message (raw entry as Payload, DecodeError set), which is
	// acknowledged like any other to skip it; with a dead-letter policy
	// such entries go to the dead-letter topic instead.
	ErrUndecodable = errors.New("strata: undecodable entry")
	// ErrCumulativeAckNotAllowed: AckCumulative on a Shared or Key_Shared
	// subscription (it also matches ErrNotAllowed).
	ErrCumulativeAckNotAllowed = fmt.Errorf("%w: cumulative acknowledgement on a Shared or Key_Shared subscription", ErrNotAllowed)
)

var serverErrors = map[clientpb.ServerError]error{
	clientpb.ServerError_INVALID_TOPIC_NAME:              ErrInvalidTopicName,
	clientpb.ServerError_TOPIC_NOT_FOUND:                 ErrTopicNotFound,
	clientpb.ServerError_NAMESPACE_NOT_FOUND:             ErrNamespaceNotFound,
	clientpb.ServerError_CONSUMER_BUSY:                   ErrConsumerBusy,
	clientpb.ServerError_PRODUCER_BUSY:                   ErrProducerBusy,
	clientpb.ServerError_NOT_ALLOWED:                     ErrNotAllowed,
	clientpb.ServerError_TOPIC_TERMINATED:                ErrTopicTerminated,
	clientpb.ServerError_INCOMPATIBLE_SCHEMA:             ErrIncompatibleSchema,
	clientpb.ServerError_INVALID_MESSAGE_ID:              ErrInvalidMessageID,
	clientpb.ServerError_MESSAGE_TOO_LARGE:               ErrMessageTooLarge,
	clientpb.ServerError_AUTHENTICATION_ERROR:            ErrUnauthenticated,
	clientpb.ServerError_AUTHORIZATION_ERROR:             ErrUnauthorized,
	clientpb.ServerError_PRODUCER_BLOCKED_QUOTA_EXCEEDED: ErrQuotaExceeded,
}

// ServerError is a failure reported by a broker.
type ServerError struct {
	Code    clientpb.ServerError
	Message string
}

func (e *ServerError) Error() string { return fmt.Sprintf("strata: broker: %s: %s", e.Code, e.Message) }

// Unwrap maps the code to the SDK's sentinel.
func (e *ServerError) Unwrap() error { return serverErrors[e.Code] }

// brokerError converts a gRPC error into a *ServerError when it carries a
// broker code; retryable reports whether reconnecting may help.
func brokerError(err error) (out error, retryable bool) {
	code, ok := clientpb.ErrorOf(err)
	if !ok {
		return err, true // transport failure: the broker may be gone
	}
	if code == clientpb.ServerError_NONE_ERROR {
		return nil, false
	}
	return &ServerError{Code: code, Message: statusMessage(err)}, code.Retryable()
}
