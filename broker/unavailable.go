package broker

import (
	"errors"
	"strings"
)

// ErrUnavailable is wrapped by every broker's errors caused by the broker
// being unreachable: from New when it cannot be reached at start, from
// Publish and History during an outage, and from Healthy while the reader
// cannot read. Callers branch on it, whatever the broker; the message
// names the driver and its address.
var ErrUnavailable = errors.New("switchboard/broker: unavailable")

// Unavailable returns an error that reads msg, on one line (a cause's
// newlines become "; "), and matches both ErrUnavailable and cause (a
// context error, a network error, the client library's).
func Unavailable(msg string, cause error) error {
	return &unavailableError{msg: strings.ReplaceAll(msg, "\n", "; "), cause: cause}
}

type unavailableError struct {
	msg   string
	cause error
}

func (e *unavailableError) Error() string   { return e.msg }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }
