// Package cgi runs CGI scripts for a phased child, one process per
// request, as Apache's mod_cgi does: the child stays the HTTP server and
// each request under a script alias runs a program that reads the request
// from its environment and standard input and writes the response to its
// standard output. The CGI work proper (the process's environment and
// input, the parsing of its header block, the copying of its output) is
// net/http/cgi's Handler; this package decides which file runs, with what
// environment, and bounds the process it becomes.
//
// # Which files run
//
// Each Alias maps a URL path prefix to a folder, as Apache's ScriptAlias:
// the longest prefix that matches a request's path wins, and a request
// that matches none goes to Options.Next. The rest of the path is walked
// below the folder: the first file on the way is the script and what
// follows is its PATH_INFO ("/cgi-bin/app.pl/a/b" runs app.pl with
// PATH_INFO "/a/b"). A path with a "." or ".." segment, a NUL byte or a
// backslash names nothing (404), as does a symlink leading out of the
// folder; a missing file is 404. A folder (the alias's own included), a
// FIFO or a device is 403, and so is a regular file with no execute
// permission bit, as mod_cgi answers "attempt to invoke directory as
// script" and "file permissions deny server execution": the file is
// there, and the server refuses to run it.
//
// # The environment
//
// A script gets RFC 3875's meta-variables (GATEWAY_INTERFACE,
// SERVER_SOFTWARE, SERVER_NAME, SERVER_PORT, SERVER_ADDR, SERVER_PROTOCOL,
// REMOTE_ADDR, REMOTE_PORT, REQUEST_METHOD, REQUEST_URI, QUERY_STRING,
// CONTENT_TYPE, CONTENT_LENGTH, SCRIPT_NAME, SCRIPT_FILENAME, PATH_INFO and
// PATH_TRANSLATED, DOCUMENT_ROOT, REQUEST_SCHEME, HTTPS), each request
// header as HTTP_* (but Proxy, and names with anything but letters,
// digits and '-'), what Apache adds for a ScriptAlias (CONTEXT_PREFIX,
// CONTEXT_DOCUMENT_ROOT), and REMOTE_HOST, which net/http/cgi sets to the
// client's address. Of the child's own environment it gets only the
// variables of the allow-list Options.InheritEnv (PATH and TZ by default)
// that are set; PATH is /usr/local/bin:/usr/bin:/bin when it is not.
// net/http/cgi copies LD_LIBRARY_PATH from the child's environment
// whatever it is told: unless the allow-list has it, it reaches the
// launcher empty, and the launcher removes it. Options.Env comes last and
// overrides any of these. The script runs in its own folder, with its
// file name as its only argument.
//
// # The process
//
// net/http/cgi starts the process itself and offers no way to give it a
// process group or to kill it at a deadline. So the program it is told to
// run is the running binary again (/proc/self/exe, which still works
// after the binary file was replaced), with the argument
// "phased-cgi-launch" and the script's file name: an init function of
// this package, in every binary that links it, then makes the process the
// launcher. It calls setsid, which gives it a session and a process group
// of its own and no controlling terminal, writes the group's id as the
// first line of its stderr, and execs the script, which keeps its PID. The
// handler owns that stderr pipe: it reads the group's id from the first
// line and logs every other line at warn as "cgi stderr", tagged with the
// script, never sending any to the client. The launcher costs one more
// exec of the binary per request; BenchmarkHello and BenchmarkHelloBare
// measure it.
//
// A script that runs past Options.Timeout, or whose client goes away, is
// killed with SIGKILL sent to its whole process group, so that what it
// started goes too. The client then gets 504 Gateway Timeout if nothing
// was sent yet, or a cut connection if the headers were out (the handler
// panics with http.ErrAbortHandler), so that a truncated body is never
// taken for a whole one. Two things escape that bound: a descendant that
// leaves the group by itself (setsid) and keeps the script's output open
// holds the request until it exits, and what a script that ends in time
// leaves running in the background keeps running, as under Apache.
//
// # The output
//
// net/http/cgi reads the header block: a Status header sets the status, a
// Location header without one is 302 (a local "Location: /path" is sent
// to the client as it is, not redirected inside the server), and a script
// that sends no header block, a header line over 1 KiB or a bad Status is
// 500. Each piece of the body is flushed to the client as the script
// writes it. A request body of unknown length (chunked), which
// net/http/cgi refuses, is read whole first to learn CONTENT_LENGTH, up to
// Options.MaxBufferedBody (413 past it).
package cgi
