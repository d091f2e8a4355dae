package clientpb

import (
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the ErrorInfo domain of errors returned by brokers.
const ErrorDomain = "broker.strata"

// GRPCCode is the gRPC status code for a ServerError: the one table mapping
// broker failures to gRPC codes (HTTP statuses are derived from gRPC codes
// by the admin API).
func (e ServerError) GRPCCode() codes.Code {
	switch e {
	case ServerError_NONE_ERROR:
		return codes.OK
	case ServerError_INVALID_TOPIC_NAME, ServerError_MESSAGE_TOO_LARGE, ServerError_INVALID_MESSAGE,
		ServerError_INVALID_MESSAGE_ID, ServerError_CHECKSUM_ERROR, ServerError_BAD_REQUEST:
		return codes.InvalidArgument
	case ServerError_TOPIC_NOT_FOUND, ServerError_SUBSCRIPTION_NOT_FOUND, ServerError_CONSUMER_NOT_FOUND,
		ServerError_NAMESPACE_NOT_FOUND:
		return codes.NotFound
	case ServerError_AUTHENTICATION_ERROR:
		return codes.Unauthenticated
	case ServerError_AUTHORIZATION_ERROR:
		return codes.PermissionDenied
	case ServerError_CONSUMER_BUSY, ServerError_PRODUCER_BUSY:
		return codes.AlreadyExists
	case ServerError_TOPIC_TERMINATED, ServerError_NOT_ALLOWED:
		return codes.FailedPrecondition
	case ServerError_PRODUCER_BLOCKED_QUOTA_EXCEEDED, ServerError_TOO_MANY_REQUESTS:
		return codes.ResourceExhausted
	case ServerError_SERVICE_NOT_READY, ServerError_TOPIC_MOVED, ServerError_METADATA_ERROR, ServerError_PERSISTENCE_ERROR:
		return codes.Unavailable
	default:
		return codes.Internal
	}
}

// Retryable reports whether a client should reconnect (after a new lookup)
// and try again.
func (e ServerError) Retryable() bool { return e.GRPCCode() == codes.Unavailable }

// Error returns a gRPC status error for e whose ErrorInfo reason names e.
func Error(e ServerError, format string, args ...any) error {
	st := status.New(e.GRPCCode(), fmt.Sprintf(format, args...))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: e.String(), Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// ErrorOf extracts the ServerError of an error returned by a broker call; ok
// is false when err is not a broker outcome (a transport failure).
func ErrorOf(err error) (e ServerError, ok bool) {
	if err == nil {
		return ServerError_NONE_ERROR, true
	}
	st, isStatus := status.FromError(err)
	if !isStatus {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.Domain == ErrorDomain {
			if v, known := ServerError_value[info.Reason]; known {
				return ServerError(v), true
			}
		}
	}
	return 0, false
}
