package fastcgi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Record types of FastCGI 1.0.
const (
	typeBeginRequest    = 1
	typeAbortRequest    = 2
	typeEndRequest      = 3
	typeParams          = 4
	typeStdin           = 5
	typeStdout          = 6
	typeStderr          = 7
	typeData            = 8
	typeGetValues       = 9
	typeGetValuesResult = 10
	typeUnknownType     = 11
)

const (
	version1      = 1
	headerLen     = 8
	maxContent    = 65535
	roleResponder = 1
	flagKeepConn  = 1
	requestID     = 1 // the one request a connection carries at a time
)

// Protocol status of an END_REQUEST record.
const (
	statusRequestComplete = 0
	statusCantMpxConn     = 1
	statusOverloaded      = 2
	statusUnknownRole     = 3
)

// ErrProtocol is wrapped by every error about bytes from the FastCGI
// server that break the protocol. A connection that saw one is closed.
var ErrProtocol = errors.New("fastcgi protocol error")

// ErrOverloaded is returned when the FastCGI server ends a request with
// FCGI_OVERLOADED: it is out of a resource, such as worker processes.
var ErrOverloaded = errors.New("fastcgi server overloaded")

// ErrRefused is returned when the FastCGI server ends a request with
// FCGI_CANT_MPX_CONN or FCGI_UNKNOWN_ROLE: it will not serve it as asked.
var ErrRefused = errors.New("fastcgi server refused the request")

// header is a record header.
type header struct {
	typ     uint8
	id      uint16
	length  uint16 // content length
	padding uint8
}

// parseHeader decodes a record header from the 8 bytes of b.
func parseHeader(b []byte) (header, error) {
	if b[0] != version1 {
		return header{}, fmt.Errorf("%w: record version %d", ErrProtocol, b[0])
	}
	return header{
		typ:     b[1],
		id:      binary.BigEndian.Uint16(b[2:4]),
		length:  binary.BigEndian.Uint16(b[4:6]),
		padding: b[6],
	}, nil
}

// appendRecord appends a record of type typ with content c (at most 65535
// bytes) to dst, padded to a multiple of 8 bytes as the spec recommends.
func appendRecord(dst []byte, typ uint8, id uint16, c []byte) []byte {
	pad := -len(c) & 7
	dst = append(dst, version1, typ, byte(id>>8), byte(id), byte(len(c)>>8), byte(len(c)), byte(pad), 0)
	dst = append(dst, c...)
	var zero [8]byte
	return append(dst, zero[:pad]...)
}

// appendStream appends stream s as records of type typ of at most 65535
// bytes each, without the empty record that ends a stream.
func appendStream(dst []byte, typ uint8, id uint16, s []byte) []byte {
	for len(s) > 0 {
		n := min(len(s), maxContent)
		dst = appendRecord(dst, typ, id, s[:n])
		s = s[n:]
	}
	return dst
}

// Param is a FastCGI name-value pair: a CGI meta-variable of a request, or
// a value asked of the server with FCGI_GET_VALUES.
type Param struct {
	// Name is the variable's name.
	Name string

	// Value is its value, "" in a FCGI_GET_VALUES question.
	Value string
}

// maxPairLen is the largest name or value length the four-byte form holds.
const maxPairLen = 1<<31 - 1

// appendPair appends the name-value pair encoding of p to dst.
func appendPair(dst []byte, p Param) []byte {
	dst = appendLen(dst, len(p.Name))
	dst = appendLen(dst, len(p.Value))
	dst = append(dst, p.Name...)
	return append(dst, p.Value...)
}

// appendLen appends a name-value pair length: one byte below 128, four
// bytes with the high bit set otherwise.
func appendLen(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
}

// parsePairs decodes the name-value pairs that fill b. It returns an error
// for a length that runs past the end of b, never reading or allocating
// more than b holds.
func parsePairs(b []byte) ([]Param, error) {
	var ps []Param
	for len(b) > 0 {
		nlen, rest, err := parseLen(b)
		if err != nil {
			return nil, err
		}
		vlen, rest, err := parseLen(rest)
		if err != nil {
			return nil, err
		}
		if uint64(nlen)+uint64(vlen) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: name-value pair longer than its record", ErrProtocol)
		}
		ps = append(ps, Param{Name: string(rest[:nlen]), Value: string(rest[nlen : nlen+vlen])})
		b = rest[nlen+vlen:]
	}
	return ps, nil
}

// parseLen decodes one name-value pair length from the start of b.
func parseLen(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: truncated name-value pair", ErrProtocol)
	}
	if b[0] < 128 {
		return int(b[0]), b[1:], nil
	}
	if len(b) < 4 {
		return 0, nil, fmt.Errorf("%w: truncated name-value pair length", ErrProtocol)
	}
	return int(binary.BigEndian.Uint32(b) &^ (1 << 31)), b[4:], nil
}
