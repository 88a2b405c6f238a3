// Package logging builds phased's error log: the one place where the master,
// its phases and its plugins report what happened, as Apache's ErrorLog does.
//
// # Lifecycle
//
// The open-logs phase of every config pass calls [Open] with the error_log
// section of the config. Open parses the level, opens the destination
// ("stderr", "stdout" or a file opened for appending, so an unwritable path is
// an error on the terminal during the first pass) and returns a [*Log]. The
// master hands [Log.Logger] to everything it runs; nothing in phased logs
// through a package global.
//
// When logrotate renames the file and sends SIGHUP (or the control socket asks
// for a reopen), the master calls [Log.Reopen]: the file at the configured
// path is opened again and swapped in atomically, so lines logged during the
// swap land in the old file or the new one, never nowhere. At the end of the
// pass the master calls [Log.Close]; closing stderr or stdout does nothing.
//
// # Levels
//
// Levels are slog's (debug, info, warn, error) plus [LevelNotice], which sits
// between info and warn and, as Apache's notice, is emitted whatever the
// configured level: it is how the master reports a start, a graceful restart
// or a child that died abnormally, which an operator must see even at
// "error". [ParseLevel] reads the level names used in the config.
//
// # Formats
//
// "json" writes one slog JSON object per line (time, level, msg, attributes),
// for machines. "text" writes tint's compact text with the time as
// "2006-01-02 15:04:05.000", coloured when the output is a terminal. "auto",
// the default, picks coloured text on a terminal and JSON otherwise. In both
// formats the notice level prints as NOTICE.
//
// [New] builds the same logger over any io.Writer, for tests and for child
// processes that log to the stderr their master collects.
package logging
