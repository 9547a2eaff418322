package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/embedd/embedd/core/batch"
	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/models"
)

// Kind is what went wrong, in the terms every surface maps to its own
// codes (gRPC and HTTP each in one table).
type Kind uint8

// The kinds of error; the zero value is Internal.
const (
	// Internal is a failure of embedd or of what it runs on.
	Internal Kind = iota
	// InvalidArgument is a request at fault; Error.Field names the part.
	InvalidArgument
	// NotFound is an unknown model or collection.
	NotFound
	// AlreadyExists is a collection created twice.
	AlreadyExists
	// FailedPrecondition is a request the current state refuses (a
	// read-only or damaged collection).
	FailedPrecondition
	// Overloaded means retry after Error.RetryAfter (a full queue).
	Overloaded
	// NoSpace means the disk under the data dir is full; writes succeed
	// again once space is freed.
	NoSpace
	// Unavailable means loading, draining or closed; retry elsewhere or
	// later.
	Unavailable
	// DeadlineExceeded is the caller's deadline passing.
	DeadlineExceeded
	// Canceled is the caller giving up.
	Canceled
)

var kindNames = [...]string{
	Internal: "internal", InvalidArgument: "invalid argument", NotFound: "not found",
	AlreadyExists: "already exists", FailedPrecondition: "failed precondition", Overloaded: "overloaded", NoSpace: "no space",
	Unavailable: "unavailable", DeadlineExceeded: "deadline exceeded", Canceled: "canceled",
}

// String names the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error is the core's error: every error a Core method returns is one, or
// wraps one (use AsError).
type Error struct {
	Kind Kind
	// Field names the request field at fault for InvalidArgument
	// ("texts[3]", "dimensions", "k"), or is empty.
	Field string
	// Msg says what is wrong and, where it helps, what to do.
	Msg string
	// RetryAfter is when an Overloaded request may be retried.
	RetryAfter time.Duration
	// Err is the cause, for errors.Is; may be nil.
	Err error
}

// Error is "field: message", or the message alone.
func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an Error of kind k for field.
func Errorf(k Kind, field, format string, args ...any) *Error {
	return &Error{Kind: k, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Unavailablef is an Unavailable Error, for surfaces that know the core is
// not there yet (loading) or any more (draining).
func Unavailablef(format string, args ...any) *Error {
	return Errorf(Unavailable, "", format, args...)
}

// AsError returns err as an *Error: itself (or the one it wraps), or the
// error the engines' sentinels mean (models, index, batch, context), or
// Internal. nil stays nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if ie, ok := errors.AsType[*models.InputError](err); ok {
		return &Error{Kind: InvalidArgument, Field: fmt.Sprintf("texts[%d]", ie.Index), Msg: ie.Reason, Err: err}
	}
	k := Internal
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: DeadlineExceeded, Msg: "deadline exceeded before the work was done", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Kind: Canceled, Msg: "request cancelled", Err: err}
	case errors.Is(err, models.ErrUnknownModel), errors.Is(err, index.ErrNotFound):
		k = NotFound
	case errors.Is(err, models.ErrInvalidInput), errors.Is(err, index.ErrInvalid):
		k = InvalidArgument
	case errors.Is(err, index.ErrExists):
		k = AlreadyExists
	case errors.Is(err, index.ErrNoSpace):
		k = NoSpace
	case errors.Is(err, index.ErrReadOnly), errors.Is(err, index.ErrLocked), errors.Is(err, index.ErrUnavailable), errors.Is(err, index.ErrCorrupt):
		k = FailedPrecondition
	case errors.Is(err, models.ErrClosed), errors.Is(err, batch.ErrClosed), errors.Is(err, index.ErrClosed):
		return &Error{Kind: Unavailable, Msg: "shutting down", Err: err}
	}
	return &Error{Kind: k, Msg: err.Error(), Err: err}
}

// fail is AsError for a result that may be nil: it returns a nil error
// then, not a nil *Error in an error.
func fail(err error) error {
	if err == nil {
		return nil
	}
	return AsError(err)
}
