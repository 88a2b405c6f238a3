# phased: the two set-up commands are `make run` and `make test`.
GO       ?= go
BIN      := bin/phased
PKGS     := ./...
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test test-short lint bench bench-mpm soak clean proto proto-check

all: build

build:
	$(GO) build -o $(BIN) ./cmd/phased

## run: the server on its embedded default config (worker MPM on 127.0.0.1:8080)
run: build
	./$(BIN)

## test: the whole suite with the race detector, end-to-end suites included, in one go test run through internal/testreport, which ends with the skipped tests and their reasons. As root it first installs, once, the Debian packages the suite runs against (.ci/deps --list: real clients such as curl, h2load, testssl.sh, chromium, apache_exporter, pebble, HAProxy, and real app servers such as gunicorn, puma, Starman, php-cgi, node); what cannot be installed makes its tests skip loudly
test:
	@.ci/deps --soft
	$(GO) vet $(PKGS)
	$(GO) run ./internal/testreport -race -count=1 -timeout 9m $(PKGS)

## test-short: unit tests only (skips process-level suites)
test-short:
	$(GO) test -short -count=1 $(PKGS)

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

## bench: Go benchmarks of the request path, startup, then phased (each MPM) against a bare Go server, nginx and Apache httpd side by side: two files under keep-alive, then connections (50 to 10,000 keep-alive, Connection: close, slowloris, idle PSS per child) (QUICK=1 bench/compare/run.sh for the connection suite in a few minutes); writes BENCHMARKS.md; then phased's TLS listener against nginx with the same certificate (keep-alive HTTPS, full and resumed handshakes, HTTP/2), bench/tls/RESULTS.md; then apps behind phased against their standard deployments (gunicorn behind nginx, Rack under Apache + Passenger, PHP under Apache + mod_fcgid), bench/apps/RESULTS.md (root; about 50 min)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./bench/startup -n 10 -bin $(BIN)
	bench/compare/run.sh
	bench/tls/run.sh
	bench/apps/run.sh

## soak: reliability suite, long form: phased, Apache and nginx under ab, wrk and a Go client through every operation, then a rolling deploy of three instances behind HAProxy, then the Rack app under phased vs Apache + Passenger vs the app servers' own rolling restarts while app processes are recycled (root; about 35 min); tables in bench/reliability/RESULTS.md, bench/cluster/RESULTS.md and bench/apps/RESULTS.md
soak: build
	@.ci/deps
	$(GO) run ./bench/reliability
	$(GO) run ./bench/reliability -cluster
	$(GO) run ./bench/reliability -apps

## bench-mpm: req/s, p99 and RSS of each MPM vs one Go process and Apache prefork (root; about 7 min)
bench-mpm: build
	bench/mpm/run.sh

## proto: regenerate the plugin protocol's Go code (protoc from Debian's protobuf-compiler)
proto:
	@command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
	./sdk/internal/proto/gen.sh

## proto-check: fail when the committed generated code differs from what `make proto` makes
proto-check: proto
	git diff --exit-code -- proto sdk/internal/proto
	test -z "$$(git status --porcelain -- proto sdk/internal/proto)"

clean:
	rm -rf bin
