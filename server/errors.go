package server

import (
	"math"
	"net/http"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/embedd/embedd/core"
)

// grpcCodes maps the core's error kinds to gRPC codes: the gRPC table.
var grpcCodes = [...]codes.Code{
	core.Internal:           codes.Internal,
	core.InvalidArgument:    codes.InvalidArgument,
	core.NotFound:           codes.NotFound,
	core.AlreadyExists:      codes.AlreadyExists,
	core.FailedPrecondition: codes.FailedPrecondition,
	core.Overloaded:         codes.ResourceExhausted,
	core.NoSpace:            codes.ResourceExhausted,
	core.Unavailable:        codes.Unavailable,
	core.DeadlineExceeded:   codes.DeadlineExceeded,
	core.Canceled:           codes.Canceled,
}

// httpStatus is one row of the HTTP table: the status and OpenAI's error
// type.
type httpStatus struct {
	code int
	typ  string
}

// httpCodes maps the core's error kinds to HTTP statuses: the HTTP table.
var httpCodes = [...]httpStatus{
	core.Internal:           {http.StatusInternalServerError, "server_error"},
	core.InvalidArgument:    {http.StatusBadRequest, "invalid_request_error"},
	core.NotFound:           {http.StatusNotFound, "invalid_request_error"},
	core.AlreadyExists:      {http.StatusConflict, "invalid_request_error"},
	core.FailedPrecondition: {http.StatusConflict, "invalid_request_error"},
	core.Overloaded:         {http.StatusTooManyRequests, "rate_limit_error"},
	core.NoSpace:            {http.StatusInsufficientStorage, "server_error"},
	core.Unavailable:        {http.StatusServiceUnavailable, "server_error"},
	core.DeadlineExceeded:   {http.StatusGatewayTimeout, "server_error"},
	core.Canceled:           {499, "invalid_request_error"}, // client closed the request
}

// grpcError turns an error from the core (or a status error of this
// package) into a gRPC status error; an Overloaded error carries its hint
// as a RetryInfo. nil stays nil.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	e := core.AsError(err)
	st := status.New(grpcCodes[e.Kind], e.Error())
	if e.RetryAfter > 0 {
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// writeError writes err (from the core) as OpenAI's error body with the
// HTTP table's status; an Overloaded error's hint goes out as Retry-After
// (whole seconds, rounded up, as RFC 9110 has it) and retry-after-ms (the
// same hint to the millisecond, which OpenAI's SDKs read first).
func writeError(w http.ResponseWriter, err error) {
	e := core.AsError(err)
	row := httpCodes[e.Kind]
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
		w.Header().Set("Retry-After-Ms", strconv.FormatInt(e.RetryAfter.Milliseconds(), 10))
	}
	writeOpenAIError(w, row.code, row.typ, e.Field, e.Error())
}
