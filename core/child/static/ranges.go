package static

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Apache's limits on a Range header (MaxRanges, MaxRangeOverlaps,
// MaxRangeReversals, at their defaults): past any of them the whole
// representation is served with 200.
const (
	maxRanges    = 200
	maxOverlaps  = 20
	maxReversals = 20
)

// byteRange is a satisfiable range of a representation, first and last
// byte included.
type byteRange struct{ first, last int64 }

// rangePlan is what planRanges makes of a Range header.
type rangePlan int

const (
	rangeIgnore        rangePlan = iota // serve the whole representation (200)
	rangeUnsatisfiable                  // 416
	rangeServe                          // 206 with the ranges returned
)

// planRanges reads a Range header for a representation of size bytes as
// Apache's byterange filter does (ap_set_byterange): a header that is not
// "bytes=" or holds a range it cannot parse is ignored; ranges past the end
// are left out, and when none is left, the answer is 416; each range that
// overlaps or touches the run of ranges before it is merged into it (a
// range before the run is a reversal); then the whole representation is
// served, with 200, when the ranges add up to more than it, or are more
// than maxRanges, or took more than maxOverlaps merges or maxReversals
// reversals. "0-" anywhere asks for the whole representation as one range.
// Unlike Apache, which ignores it, a suffix range of zero bytes ("-0") is
// unsatisfiable, as RFC 9110 14.1.1 has it.
func planRanges(header string, size int64) ([]byteRange, rangePlan) {
	spec, ok := cutPrefixFold(header, "bytes=")
	if !ok {
		return nil, rangeIgnore
	}
	var (
		out                 []byteRange
		cur                 byteRange
		inRun, unsatisfied  bool
		overlaps, reversals int
		sum                 int64
	)
parts:
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.Trim(part, " \t")
		if part == "" {
			continue // an empty list element
		}
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return nil, rangeIgnore
		}
		var r byteRange
		switch {
		case first == "": // "-N": the last N bytes
			n, ok := parseOffset(last)
			if !ok {
				return nil, rangeIgnore
			}
			if n == 0 || size == 0 {
				unsatisfied = true
				continue
			}
			r = byteRange{max(size-n, 0), size - 1}
		default:
			f, ok := parseOffset(first)
			if !ok {
				return nil, rangeIgnore
			}
			r = byteRange{f, size - 1}
			if last != "" {
				l, ok := parseOffset(last)
				if !ok || l < f {
					return nil, rangeIgnore
				}
				r.last = min(l, size-1)
			} else if f == 0 && size > 0 {
				// "0-": the whole representation, whatever else was asked.
				out, cur, inRun, sum = nil, r, true, 0
				overlaps, reversals = 0, 0
				break parts
			}
			if f >= size {
				unsatisfied = true
				continue
			}
		}
		if !inRun {
			cur, inRun = r, true
			continue
		}
		merged := false
		if r.first >= cur.first && r.last <= cur.last {
			merged = true // inside the run
		}
		if r.first < cur.first && r.last >= cur.first-1 {
			cur.first = r.first // before the run, touching it
			reversals++
			merged = true
		}
		if r.last >= cur.last && r.first <= cur.last+1 {
			cur.last = r.last // after the run, touching it
			merged = true
		}
		if merged {
			overlaps++
			continue
		}
		out = append(out, cur)
		sum += cur.last - cur.first + 1
		cur = r
	}
	if !inRun {
		if unsatisfied {
			return nil, rangeUnsatisfiable
		}
		return nil, rangeIgnore
	}
	out = append(out, cur)
	sum += cur.last - cur.first + 1
	if sum > size || len(out) > maxRanges || overlaps > maxOverlaps || reversals > maxReversals {
		return nil, rangeIgnore
	}
	return out, rangeServe
}

// parseOffset parses a byte offset: decimal digits only.
func parseOffset(s string) (int64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// cutPrefixFold is strings.CutPrefix, ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// serveRanges serves content (size bytes, modified at mtime) with
// http.ServeContent, which answers the conditional headers and If-Range
// as before, after putting the request's Range header in the form
// planRanges makes of it: none when the whole representation is to be
// served, the merged ranges, or one that ServeContent finds unsatisfiable
// (it answers 416 with "Content-Range: bytes */size"). The request itself
// is left as it came; the Range ServeContent reads is on a copy.
func serveRanges(w http.ResponseWriter, r *http.Request, mtime time.Time, content io.ReadSeeker, size int64) {
	if vs := r.Header["Range"]; len(vs) > 0 {
		r2 := new(http.Request)
		*r2 = *r
		r2.Header = r.Header.Clone()
		ranges, plan := planRanges(vs[0], size) // ServeContent too reads the first
		switch plan {
		case rangeIgnore:
			delete(r2.Header, "Range")
		case rangeUnsatisfiable:
			r2.Header["Range"] = []string{"bytes=" + strconv.FormatInt(size, 10) + "-"}
		case rangeServe:
			b := []byte("bytes=")
			for i, br := range ranges {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, br.first, 10)
				b = append(b, '-')
				b = strconv.AppendInt(b, br.last, 10)
			}
			r2.Header["Range"] = []string{string(b)}
		}
		r = r2
	}
	http.ServeContent(w, r, "", mtime, content)
}
