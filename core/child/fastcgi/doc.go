// Package fastcgi runs scripts on a FastCGI server for a phased child, as
// nginx's fastcgi_pass and Apache's mod_fcgid do: the child stays the HTTP
// server (it parses requests, applies timeouts, keeps the scoreboard and
// the access log) and hands each request for a script to an app server in
// the FastCGI responder role: an external php-fpm pool, or a "php-cgi -b"
// that the child runs itself. The standard library has only the server
// side of FastCGI (net/http/fcgi); this package is the client side,
// written against the FastCGI 1.0 specification.
//
// # Which requests run a script
//
// A Handler serves one document root. The decoded URL path is walked
// below it, as Apache finds a CGI script: the first file on the way is the
// script, and the rest of the path is its PATH_INFO, so that
// "/index.php/foo/bar?x=1" runs Root/index.php with SCRIPT_NAME
// "/index.php" and PATH_INFO "/foo/bar" (nginx's fastcgi_split_path_info).
// A path that names a folder, with its trailing slash, runs the folder's
// first index script (Options.Index, "index.php" by default); without the
// slash it is redirected to the slash form (by Options.Static when there
// is one). The file is a script when its name ends in one of
// Options.Extensions (".php" by default); any other file, and a folder
// with no index script, is handed to Options.Static: phased serves static
// files itself, as nginx does in front of php-fpm.
//
// Nothing that is not an existing script is ever sent to the FastCGI
// server. A path with a segment ending in a script extension that names
// no file ("/missing.php", "/upload.png/x.php" where upload.png is not a
// folder) is 404, here, so that the server's path fixing (PHP's
// cgi.fix_pathinfo) cannot be made to run an uploaded image as a script. A
// path with a "." or ".." segment, a NUL byte or a backslash names
// nothing, and symlinks are resolved and must stay inside the document
// root: what leads out of it is 404. A script that exists but is not a
// regular file is 403. Options.FrontController names the script that
// serves the paths that name nothing at all, as a PHP framework's
// "try_files $uri $uri/ /index.php?$query_string" does; a missing path
// with a script extension is still 404.
//
// Files that hold source or settings without being scripts are 403 rather
// than sent as they are: PHP's per-folder settings ".user.ini" (which
// php-cgi and php-fpm read), a copy of a script whose name goes on after
// the script extension with anything but a letter ("config.php.bak",
// "index.php~", "old.php5", ".index.php.swp"), and, when ".php" is a
// script extension, PHP's other source extensions (.phtml, .pht, .phps,
// .phar, .inc). The name in the URL and the name the file resolves to
// are both checked, case aside.
//
// SCRIPT_FILENAME and DOCUMENT_ROOT are sent with their symlinks resolved
// (nginx's $realpath_root), so that the file the app server opens is the
// one checked here, and a deploy that repoints a "current" symlink is
// picked up by the next request, with no stale opcode cache entry.
//
// # What the script gets
//
// The params are RFC 3875's meta-variables: GATEWAY_INTERFACE,
// SERVER_SOFTWARE, SERVER_NAME (from Host), SERVER_PORT and SERVER_ADDR
// (of the socket the request came on), SERVER_PROTOCOL, REMOTE_ADDR,
// REMOTE_PORT, REQUEST_METHOD, REQUEST_URI, QUERY_STRING, CONTENT_TYPE,
// CONTENT_LENGTH, SCRIPT_NAME, SCRIPT_FILENAME, PATH_INFO and
// PATH_TRANSLATED when there is a path info, DOCUMENT_ROOT, REQUEST_SCHEME,
// HTTPS=on over TLS, and each request header as HTTP_*. Headers named with
// anything but letters, digits and '-' are not passed (an "X_Real_IP"
// cannot pose as "X-Real-IP"), nor is Proxy (httpoxy). REDIRECT_STATUS=200
// is always set, without which a php-cgi built with force-cgi-redirect
// runs nothing. Options.Params come last and override any of these.
//
// The request body is streamed into STDIN records as it is read. FastCGI
// needs CONTENT_LENGTH first, so a body of unknown length (chunked) is read
// whole before the request is sent, up to Options.MaxBufferedBody (413
// past it), in memory up to 1 MiB and in an unlinked temporary file past
// that. With Options.BufferBody every body is read whole first (that much
// in memory, the rest in a temporary file in Options.TempDir), so that a
// client that sends slowly holds no FastCGI worker, and any body over
// MaxBufferedBody is 413; a phased child sets it to app.body_buffer_size.
//
// # The answer
//
// The FastCGI server's STDOUT is a CGI response: a header block, an empty
// line, the body. The block is read up to Options.MaxHeaderBytes (64 KiB)
// and 1000 lines; past that, or when a line is not a valid header, the
// client gets 502. "Status: 404 Not Found" sets the status (200 to 599); a
// Location header without a Status is 302, whether the location is
// absolute or local. RFC 3875 would have a local redirect ("Location:
// /path" alone) served by an internal redirect; this package, like nginx,
// returns it to the client as 302 instead, which every browser follows the
// same way and which cannot loop inside the server. Hop-by-hop headers
// (Connection, Transfer-Encoding...) are dropped, and so is a
// Content-Length that is not one decimal number.
//
// The body is copied to the client as it comes, and flushed whenever the
// FastCGI server has nothing more at hand, so that a PHP flush() reaches
// the client at once. With Options.ResponseBuffer (a phased child sets it
// to app.response_buffer_size, and MaxTempFileSize to
// app.max_temp_file_size) the body is read from the server as fast as it
// sends it, in memory and then in an unlinked temporary file, while the
// client reads it at its own pace: a slow client holds no PHP worker
// (nginx's fastcgi_buffering); what the client has read up to what came
// is flushed, so a flush() still reaches it at once. STDERR never goes into the response: each line is
// logged at warn as "fastcgi stderr", tagged with the script, at most 100
// lines of 4 KiB a request.
//
// # When the FastCGI server fails
//
//   - it cannot be reached: 503 when the socket refuses the connection, is
//     missing or its backlog is full (the server is not up, or restarting),
//     502 for any other failure, a connect timeout included;
//   - it answers FCGI_OVERLOADED: 503;
//   - it sends nothing for Options.ReadTimeout: 504;
//   - it breaks the protocol, sends a bad header block, or closes the
//     connection before the end of the header block: 502;
//   - it breaks off after the headers went out: the client's connection is
//     cut (the handler panics with http.ErrAbortHandler, which net/http
//     turns into a closed connection or a reset stream), so that a
//     truncated body is never taken for a whole one.
//
// Each failure is logged once, at error, with the address ("addr"), the
// script ("script") and the error ("err"). A client that goes away closes
// the connection to the FastCGI server, which sees the request aborted.
//
// # Connections
//
// Without Options.KeepConn, each request has a connection of its own,
// which the server closes after it. With KeepConn the request asks the
// server to keep it (FCGI_KEEP_CONN) and up to Options.MaxIdleConns (2)
// idle connections are kept for Options.IdleTimeout (30 s). A kept
// connection is checked without blocking before it is reused, and a
// request without a body that finds it closed anyway (php-cgi's workers
// exit after PHP_FCGI_MAX_REQUESTS) is sent again on a new one. A
// connection that saw any error, a request answered before its body was
// sent in full, or an answer not read to its end is closed, never reused.
// KeepConn is off by default: php-cgi and php-fpm give each connection a
// worker of its own for as long as it stays open, so every idle connection
// is a worker that no other phased child can use.
//
// # Bounds on what the server sends
//
// Every byte from the FastCGI server is parsed without trust. A record is
// read through a 16 KiB buffer whatever its announced length; name-value
// pairs are decoded within their record; records the request has no use
// for (unknown types, management records, other request ids) are skipped,
// up to 1 MiB a request; STDERR passes through without being gathered. The
// record, name-value pair and header block parsers have fuzz tests.
//
// # The client on its own
//
// Client, Request and Response are the FastCGI client the Handler uses,
// for a caller that builds the params itself: Client.Do sends a Request
// and returns the Response, whose Read returns the STDOUT stream. Client
// also asks a server for its FCGI_MAX_CONNS and the like with GetValues.
package fastcgi
