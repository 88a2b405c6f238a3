// Package langs holds the end-to-end tests of the apps in other languages
// that phased serves with their own app servers, from Debian's packages:
// examples/app-python (a WSGI app under gunicorn, with a PostgreSQL pool
// per app process), examples/app-rack (a Rack app under puma and under
// unicorn) and examples/app-perl (a PSGI app under Starman, with a Perl
// startup script at post-config). Each test starts an example's own
// configuration on the real binary (only its listen address changed, and
// a few settings named by -c where a test needs them), drives requests
// through it, restarts it gracefully under load without losing one, and
// checks that each app server stops gracefully on the stop signal its
// example sets; and an app server that boots slower than the master's own
// bound for a generation (testdata/slowboot.py) is waited for up to its
// app.start_timeout. A missing package skips a test loudly (e2e.Program), and
// fails it under CI=true; the tests skip under go test -short.
package langs
