package bookiepb

import (
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the ErrorInfo domain of errors returned by bookies.
const ErrorDomain = "bookie.strata"

// GRPCCode is the gRPC status code a failed unary call carries for c. It is
// the single table that maps bookie outcomes to gRPC codes.
func (c Code) GRPCCode() codes.Code {
	switch c {
	case Code_OK:
		return codes.OK
	case Code_NO_LEDGER, Code_NO_ENTRY:
		return codes.NotFound
	case Code_BAD_REQUEST, Code_TOO_LARGE:
		return codes.InvalidArgument
	case Code_FENCED, Code_READ_ONLY:
		return codes.FailedPrecondition
	case Code_UNAUTHORIZED:
		return codes.PermissionDenied
	case Code_SHUTTING_DOWN:
		return codes.Unavailable
	default:
		return codes.Internal
	}
}

// Error returns a gRPC status error for c whose ErrorInfo reason names c, so
// the caller can recover the exact outcome with CodeOf.
func Error(c Code, format string, args ...any) error {
	st := status.New(c.GRPCCode(), fmt.Sprintf(format, args...))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: c.String(), Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// CodeOf extracts the bookie Code from an error returned by a unary call. ok
// is false when err is not a bookie outcome (a transport failure, a timeout).
func CodeOf(err error) (c Code, ok bool) {
	if err == nil {
		return Code_OK, true
	}
	st, isStatus := status.FromError(err)
	if !isStatus {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.Domain == ErrorDomain {
			if v, known := Code_value[info.Reason]; known {
				return Code(v), true
			}
		}
	}
	return 0, false
}
