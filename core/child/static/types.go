package static

import (
	"mime"
	"os"
	"strings"
	"sync"
	"unsafe"
)

// The Content-Type of an extension, as mime.TypeByExtension gives it, from a
// table that costs a child about a sixth of the memory: the mime package
// keeps the system's database (some 1,100 extensions on Debian) in three
// sync.Maps, about 700 KB allocated and 430 KB live in every child, the
// largest item of an idle child's heap (bench/compare/MEMORY.md). The table
// is built as the mime package builds its own, in the same order and by the
// same rules (type_unix.go, Go 1.26): Go's built-in types, then the first
// shared-mime-info globs2 file found, else every mime.types file; text types
// get "; charset=utf-8"; an exact-case lookup, then a lower-case one. The
// tests compare it with mime.TypeByExtension for every extension of the
// system's files.
//
// Its strings are substrings of the file read whole (one allocation, not
// one a line and two an entry), and the lower-case lookup has a map of its
// own only for the few extensions whose lower-case form differs from the
// exact one: 125 KB live and 130 KB allocated, where two maps of strings
// cut line by line held 200 KB and allocated 325 KB.
var types struct {
	once sync.Once
	// exact holds every extension's type; lower, by lower-case extension,
	// the type last set for an extension with capitals when no lower-case
	// one came after it (e.g. ".C" after ".c").
	exact, lower map[string]string
}

// The mime package's files (type_unix.go).
var (
	mimeGlobs = []string{"/usr/local/share/mime/globs2", "/usr/share/mime/globs2"}
	typeFiles = []string{"/etc/mime.types", "/etc/apache2/mime.types", "/etc/apache/mime.types", "/etc/httpd/conf/mime.types"}
)

// typeByExtension is mime.TypeByExtension.
func typeByExtension(ext string) string {
	types.once.Do(loadTypes)
	if t, ok := types.exact[ext]; ok {
		return t
	}
	lower := strings.ToLower(ext)
	if t, ok := types.lower[lower]; ok {
		return t
	}
	// A lower-case extension set at all is in exact; lower lacks it only
	// when the two agree.
	return types.exact[lower]
}

func loadTypes() {
	types.exact = make(map[string]string, 1200)
	types.lower = make(map[string]string)
	for ext, t := range builtinTypes {
		types.exact[ext] = t
	}
	// The lower-case lookup finds the type last set for any case of the
	// extension: the lower-case extension's own entry in exact when it was
	// the last, else an entry of lower.
	set := func(ext, mimeType string) {
		t, ok := mediaType(mimeType)
		if !ok {
			return
		}
		types.exact[ext] = t
		if lower := strings.ToLower(ext); lower == ext {
			delete(types.lower, ext)
		} else {
			types.lower[lower] = t
		}
	}
	loaded := false
	for _, name := range mimeGlobs {
		if loaded = loadGlobs(name, set); loaded {
			break
		}
	}
	if !loaded {
		for _, name := range typeFiles {
			loadTypesFile(name, set)
		}
	}
}

// mediaType is what the mime package's setExtensionType stores for a type
// read from a file: the type as written, text types with "; charset=utf-8"
// (formatted by mime.FormatMediaType, so lower-cased), nothing (false) for
// one mime.ParseMediaType rejects. The plain types of the files (a
// lower-case token, "/", a lower-case token) need neither function, which
// allocate a parameter map each.
func mediaType(t string) (string, bool) {
	if plainType(t) {
		if strings.HasPrefix(t, "text/") {
			return t + "; charset=utf-8", true
		}
		return t, true
	}
	_, param, err := mime.ParseMediaType(t)
	if err != nil {
		return "", false
	}
	if strings.HasPrefix(t, "text/") && param["charset"] == "" {
		param["charset"] = "utf-8"
		t = mime.FormatMediaType(t, param)
	}
	return t, true
}

// plainType reports whether t is a lower-case token, "/", a lower-case
// token (RFC 2045 token characters), which mime.ParseMediaType accepts with
// no parameter and mime.FormatMediaType writes unchanged.
func plainType(t string) bool {
	major, minor, ok := strings.Cut(t, "/")
	return ok && plainToken(major) && plainToken(minor)
}

func plainToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || 'A' <= c && c <= 'Z' || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// readShared reads a whole file into one string whose substrings the
// table keeps: one allocation instead of one a line and two an entry. The
// string is the bytes read, not a copy: nothing writes them afterwards.
func readShared(name string) (string, bool) {
	b, err := os.ReadFile(name)
	if err != nil || len(b) == 0 {
		return "", err == nil
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), true
}

// loadGlobs reads a globs2 file (weight:type:glob lines, in weight order:
// the first type of an extension wins); false if it cannot be read.
func loadGlobs(name string, set func(ext, mimeType string)) bool {
	data, ok := readShared(name)
	if !ok {
		return false
	}
	for line := range strings.Lines(data) {
		line = strings.TrimRight(line, "\r\n")
		weight, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		mimeType, glob, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		glob, _, _ = strings.Cut(glob, ":")
		if len(weight) < 1 || len(glob) < 3 || weight[0] == '#' || glob[0] != '*' || glob[1] != '.' {
			continue
		}
		ext := glob[1:]
		if strings.ContainsAny(ext, "?*[") {
			continue
		}
		if _, seen := types.exact[ext]; seen {
			continue
		}
		set(ext, mimeType)
	}
	return true
}

// loadTypesFile reads a mime.types file ("type ext ext..." lines; a later
// line wins).
func loadTypesFile(name string, set func(ext, mimeType string)) {
	data, ok := readShared(name)
	if !ok {
		return
	}
	for line := range strings.Lines(data) {
		fields := strings.Fields(line)
		if len(fields) <= 1 || fields[0][0] == '#' {
			continue
		}
		for _, ext := range fields[1:] {
			if ext[0] == '#' {
				break
			}
			set("."+ext, fields[0])
		}
	}
}

// builtinTypes is the mime package's builtinTypesLower (type.go, Go 1.26).
var builtinTypes = map[string]string{
	".ai":    "application/postscript",
	".apk":   "application/vnd.android.package-archive",
	".apng":  "image/apng",
	".avif":  "image/avif",
	".bin":   "application/octet-stream",
	".bmp":   "image/bmp",
	".com":   "application/octet-stream",
	".css":   "text/css; charset=utf-8",
	".csv":   "text/csv; charset=utf-8",
	".doc":   "application/msword",
	".docx":  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".ehtml": "text/html; charset=utf-8",
	".eml":   "message/rfc822",
	".eps":   "application/postscript",
	".exe":   "application/octet-stream",
	".flac":  "audio/flac",
	".gif":   "image/gif",
	".gz":    "application/gzip",
	".htm":   "text/html; charset=utf-8",
	".html":  "text/html; charset=utf-8",
	".ico":   "image/vnd.microsoft.icon",
	".ics":   "text/calendar; charset=utf-8",
	".jfif":  "image/jpeg",
	".jpeg":  "image/jpeg",
	".jpg":   "image/jpeg",
	".js":    "text/javascript; charset=utf-8",
	".json":  "application/json",
	".m4a":   "audio/mp4",
	".mjs":   "text/javascript; charset=utf-8",
	".mp3":   "audio/mpeg",
	".mp4":   "video/mp4",
	".oga":   "audio/ogg",
	".ogg":   "audio/ogg",
	".ogv":   "video/ogg",
	".opus":  "audio/ogg",
	".pdf":   "application/pdf",
	".pjp":   "image/jpeg",
	".pjpeg": "image/jpeg",
	".png":   "image/png",
	".ppt":   "application/vnd.ms-powerpoint",
	".pptx":  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
	".ps":    "application/postscript",
	".rdf":   "application/rdf+xml",
	".rtf":   "application/rtf",
	".shtml": "text/html; charset=utf-8",
	".svg":   "image/svg+xml",
	".text":  "text/plain; charset=utf-8",
	".tif":   "image/tiff",
	".tiff":  "image/tiff",
	".txt":   "text/plain; charset=utf-8",
	".vtt":   "text/vtt; charset=utf-8",
	".wasm":  "application/wasm",
	".wav":   "audio/wav",
	".webm":  "audio/webm",
	".webp":  "image/webp",
	".xbl":   "text/xml; charset=utf-8",
	".xbm":   "image/x-xbitmap",
	".xht":   "application/xhtml+xml",
	".xhtml": "application/xhtml+xml",
	".xls":   "application/vnd.ms-excel",
	".xlsx":  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".xml":   "text/xml; charset=utf-8",
	".xsl":   "text/xml; charset=utf-8",
	".zip":   "application/zip",
}
