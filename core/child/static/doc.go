// Package static is the built-in static file handler that phased's children
// serve when the config names no application: the document_root of the
// config, served the way Apache's core handler serves a DocumentRoot with its
// default configuration.
//
// # A request's path
//
// A child builds one handler with [New] and serves every request with it.
// Only GET and HEAD reach the file system; OPTIONS is answered with the Allow
// list and every other method with 405. The decoded URL path is checked
// before it becomes a file name: a NUL byte or a path that does not start
// with "/" is 400; a backslash, an encoded slash, or a "." or ".." segment is
// 404, whether it arrived plain or percent-encoded; a segment starting with
// ".ht" is 403, as Apache's default <Files ".ht*"> denies them. Other
// dotfiles are served, as Apache does.
//
// The path is then opened below the document root. On Linux the kernel is
// first asked to open it refusing every symlink on the way (openat2 with
// RESOLVE_NO_SYMLINKS): what it opens that way is inside the root by
// construction. A path through a symlink is opened again, following it, and
// the kernel is asked where the open descriptor really is (through
// /proc/self/fd). A file outside the resolved document root is 404, so a
// symlink may point anywhere inside the root, by a relative or an absolute
// target, but never out of it; and because the check is on the descriptor
// that is then served, a symlink swapped in between cannot slip another file
// through. A ".ht" segment in where the symlink led is 403, as in the URL.
//
// A document root that is itself reached through a symlink may be repointed
// at any time, as deploys do: its resolution is trusted for a second, and a
// file that seems missing or outside it makes the handler resolve it again.
//
// # What is served
//
// A regular file goes through [net/http.ServeContent] with a strong ETag
// made of its modification time and size, so ranges (206, multipart for
// several ranges, 416), If-Range and the conditional headers (304, 412) all
// work. The Range header is first read as Apache's byterange filter reads
// it: overlapping and adjacent ranges are merged, and more than 200 ranges,
// more than 20 merges or reversals, ranges adding up to more than the file,
// or a header that does not parse get the whole file with 200; a range
// asking for nothing ("bytes=-0") is unsatisfiable (416). So a Range header
// amplifies a response no more than Apache lets it. Its Content-Type comes
// from the extension, or is sniffed from the first bytes when the
// extension is unknown, and every response carries
// "X-Content-Type-Options: nosniff". A directory requested without its
// trailing slash is redirected (301) to the slash form, query kept; with the
// slash it is answered with its first index file, or an HTML listing when
// [Options.DirectoryListing] is set, or 403 as Apache's "Options -Indexes".
// FIFOs, sockets and devices are 403. Errors are small HTML pages: 404 for
// what does not exist, 403 for what the child may not read, and a 5xx only
// when the server itself is in trouble, never because of what a client sent.
//
// # Before there is a site
//
// A fresh install has no document root yet. Rather than a wall of 404s, the
// handler then serves a welcome page titled "phased is running" at "/" and
// "/index.html", naming the directory the operator should create; it serves
// files from the first request after that directory appears.
//
// # Small files from memory
//
// A regular file of up to [Options.MaxCachedFile] bytes (64 KiB by default)
// is read whole the first time it is served and kept, with the headers of
// its 200 response, in a cache of at most [Options.CacheBytes] (16 MiB) per
// handler: nginx's open_file_cache and its small-file body in one. A plain
// GET or HEAD is then answered from memory with no system call and no
// allocation; a request with a Range or a condition goes through
// ServeContent over the cached bytes, so it is answered exactly as before.
// An entry is trusted for half a second: the first request after that opens
// the path again, through every check above, and compares device, inode,
// size and modification time, so a file that changed, was renamed over or
// was deleted is seen within half a second, and a symlink repointed out of
// the root is refused at that check. Files not hit since the last eviction
// sweep are evicted first when a new one does not fit.
//
// The handler is also the child's [github.com/phasedhq/phased/internal/childrt.FastResponder]:
// a phased child with no access log reads the plainest GET and HEAD
// requests with its own strict parser and asks ServeFast for the cached
// header block and body, so that a small file goes out without net/http at
// all; every other request, and every path ServeFast declines (anything
// not cacheable: errors, redirects, listings, large files), is served by
// ServeHTTP as described above.
//
// # Cost
//
// Uncached, the hot path makes four system calls for a file (openat2,
// fstat, pread or sendfile, close) and a handful of small allocations, most
// of them ServeContent's headers. It opens files as bare descriptors rather
// than *os.File, which on Linux would try to register each with the
// netpoller, and answers ServeContent's seeks without the kernel; a large
// body goes out through sendfile. A path through a symlink adds an open and
// a readlink.
package static
