package config

import (
	"errors"
	"strings"
)

// ErrUnknownKey is the Err of an *Error that reports a key phased does not
// know. Match it with errors.Is.
var ErrUnknownKey = errors.New("unknown key")

// Error is a configuration problem together with where it came from. Load and
// FromJSON return every problem they find, joined with errors.Join; each one
// is an *Error, so callers can pick them out with errors.As.
//
// Error formats as "Source: Key: Msg", for example
//
//	/etc/phased/phased.yaml: listen[1]: "127.0.0.1:99999": port out of range
//	environment PHASED_LISTEN_BACKLOG: listen_backlog: must be between 1 and 65535, got 0
//
// except for an unknown key, whose message already names the key:
//
//	-c listn=127.0.0.1:80: unknown key "listn" (did you mean "listen"?)
type Error struct {
	// Source says where the offending value came from: the absolute path of
	// the config file, "environment PHASED_NAME" for an environment
	// variable, "-c key=value" for a command-line override, "default" for
	// the embedded default, or "json" for FromJSON. It is "" only when no
	// source can be named.
	Source string

	// Key is the configuration key at fault, dotted, with list indices, as
	// in "listen[1]" or "hooks[0].phase". It is "" when the problem is not
	// about one key, such as a YAML syntax error.
	Key string

	// Msg says what is wrong. When it is "", Error uses Err's text.
	Msg string

	// Err is the underlying error, or nil: ErrUnknownKey for an unknown key,
	// the YAML or JSON decoder's error for a syntax error.
	Err error
}

// Error implements the error interface.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Key != "" && !errors.Is(e.Err, ErrUnknownKey) {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	switch {
	case e.Msg != "":
		b.WriteString(e.Msg)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }
