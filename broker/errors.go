package broker

import (
	"errors"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/schema"
)

// Errors of the broker.
var (
	// ErrNotOwner: this broker does not serve the topic's bundle.
	ErrNotOwner = errors.New("broker: topic not served by this broker")
	// ErrNotReady: the broker is starting, stopping or not initialized.
	ErrNotReady = errors.New("broker: not ready")
	// ErrTopicNotFound: the topic does not exist.
	ErrTopicNotFound = errors.New("broker: topic not found")
	// ErrNamespaceNotFound: the topic's namespace does not exist.
	ErrNamespaceNotFound = errors.New("broker: namespace not found")
	// ErrConsumerBusy: an Exclusive subscription already has a consumer,
	// or the subscription has another type.
	ErrConsumerBusy = errors.New("broker: consumer busy")
	// ErrProducerBusy: a producer with that name (or an exclusive one) is connected.
	ErrProducerBusy = errors.New("broker: producer busy")
	// ErrNotAllowed: the operation is not allowed on this subscription type.
	ErrNotAllowed = errors.New("broker: operation not allowed")
	// ErrTopicClosed: the topic was unloaded while serving.
	ErrTopicClosed = errors.New("broker: topic closed")
)

// serverError maps an error to the client API's error catalog.
func serverError(err error) clientpb.ServerError {
	switch {
	case err == nil:
		return clientpb.ServerError_NONE_ERROR
	case errors.Is(err, naming.ErrInvalidName), errors.Is(err, naming.ErrUnsupportedDomain):
		return clientpb.ServerError_INVALID_TOPIC_NAME
	case errors.Is(err, errSchemaRefused), errors.Is(err, schema.ErrIncompatible), errors.Is(err, schema.ErrInvalid):
		return clientpb.ServerError_INCOMPATIBLE_SCHEMA
	case errors.Is(err, errBadRequest), errors.Is(err, tenants.ErrInvalid):
		return clientpb.ServerError_BAD_REQUEST
	case errors.Is(err, ErrNamespaceNotFound):
		return clientpb.ServerError_NAMESPACE_NOT_FOUND
	case errors.Is(err, ErrTopicNotFound):
		return clientpb.ServerError_TOPIC_NOT_FOUND
	case errors.Is(err, ErrQuotaExceeded):
		return clientpb.ServerError_PRODUCER_BLOCKED_QUOTA_EXCEEDED
	case errors.Is(err, ErrTooManyProducers):
		return clientpb.ServerError_PRODUCER_BUSY
	case errors.Is(err, ErrTooManyConsumers):
		return clientpb.ServerError_CONSUMER_BUSY
	case errors.Is(err, ErrConsumerBusy):
		return clientpb.ServerError_CONSUMER_BUSY
	case errors.Is(err, ErrProducerBusy):
		return clientpb.ServerError_PRODUCER_BUSY
	case errors.Is(err, ErrNotAllowed), errors.Is(err, ErrTooManySubscriptions), errors.Is(err, ErrTooManyTopics):
		return clientpb.ServerError_NOT_ALLOWED
	case errors.Is(err, ErrNotOwner), errors.Is(err, ErrTopicClosed), errors.Is(err, managed.ErrFenced), errors.Is(err, managed.ErrClosed):
		return clientpb.ServerError_TOPIC_MOVED
	case errors.Is(err, ErrNotReady):
		return clientpb.ServerError_SERVICE_NOT_READY
	case errors.Is(err, managed.ErrTerminated):
		return clientpb.ServerError_TOPIC_TERMINATED
	case errors.Is(err, managed.ErrInvalidPosition):
		return clientpb.ServerError_INVALID_MESSAGE_ID
	case errors.Is(err, managed.ErrCursorNotFound):
		return clientpb.ServerError_SUBSCRIPTION_NOT_FOUND
	case errors.Is(err, tenants.ErrUnauthenticated):
		return clientpb.ServerError_AUTHENTICATION_ERROR
	case errors.Is(err, tenants.ErrForbidden):
		return clientpb.ServerError_AUTHORIZATION_ERROR
	case errors.Is(err, managed.ErrNoLedger), errors.Is(err, ledger.ErrNotEnoughBookies), errors.Is(err, ledger.ErrUnavailable):
		return clientpb.ServerError_PERSISTENCE_ERROR
	case errors.Is(err, metadata.ErrClosed), errors.Is(err, metadata.ErrSessionExpired):
		return clientpb.ServerError_METADATA_ERROR
	}
	return clientpb.ServerError_UNKNOWN_ERROR
}

// statusError converts err into a gRPC status carrying its ServerError.
func statusError(err error) error {
	return clientpb.Error(serverError(err), "%v", err)
}
