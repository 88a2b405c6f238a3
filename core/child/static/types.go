package static

import (
	"bufio"
	"mime"
	"os"
	"strings"
	"sync"
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
var types struct {
	once         sync.Once
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
	return types.lower[strings.ToLower(ext)]
}

func loadTypes() {
	types.exact = make(map[string]string, 1200)
	types.lower = make(map[string]string, 1200)
	for ext, t := range builtinTypes {
		types.exact[ext] = t
		types.lower[ext] = t
	}
	for _, name := range mimeGlobs {
		if loadGlobs(name) {
			return
		}
	}
	for _, name := range typeFiles {
		loadTypesFile(name)
	}
}

// setType is the mime package's setExtensionType.
func setType(ext, mimeType string) {
	_, param, err := mime.ParseMediaType(mimeType)
	if err != nil {
		return
	}
	if strings.HasPrefix(mimeType, "text/") && param["charset"] == "" {
		param["charset"] = "utf-8"
		mimeType = mime.FormatMediaType(mimeType, param)
	}
	types.exact[ext] = mimeType
	types.lower[strings.ToLower(ext)] = mimeType
}

// loadGlobs reads a globs2 file (weight:type:glob lines, in weight order:
// the first type of an extension wins); false if it cannot be opened.
func loadGlobs(name string) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		weight, rest, ok := strings.Cut(sc.Text(), ":")
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
		setType(ext, mimeType)
	}
	return true
}

// loadTypesFile reads a mime.types file ("type ext ext..." lines; a later
// line wins).
func loadTypesFile(name string) {
	f, err := os.Open(name)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) <= 1 || fields[0][0] == '#' {
			continue
		}
		for _, ext := range fields[1:] {
			if ext[0] == '#' {
				break
			}
			setType("."+ext, fields[0])
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
