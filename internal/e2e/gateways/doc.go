// Package gateways holds the end-to-end tests of the examples that run apps
// in other languages: examples/app-php (FastCGI, with each child's own
// php-cgi and with a php-fpm pool the test starts itself),
// examples/app-cgi (CGI scripts in sh and Python) and examples/app-node (a
// node app on its child's socket). Each test copies an example into its
// own folder and runs the built binary on the example's config as shipped,
// but for its listen address (a free loopback port) and a JSON error log
// the test can read; what each test overrides beyond that, it says. It
// also holds the check that docs/apps.md documents every app.* key that
// phased -S prints, with its default. A machine without php-cgi,
// php-fpm, python3 or node skips the tests that need them loudly (and
// fails them under CI=true); the tests skip under go test -short.
package gateways
