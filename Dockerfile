# phased's container image: a static binary on distroless, run as a
# non-root user, stopped gracefully by SIGTERM, health-checked on its
# liveness endpoint. See docs/cluster.md.
#
#   docker build -t phased .
#   docker run --rm -p 8080:8080 --stop-timeout 40 phased
#
# Serve your own files by mounting them on /etc/phased/public, or build an
# image FROM this one that copies them there; replace the configuration by
# mounting a file on /etc/phased/phased.yaml.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# A static binary: no libc, nothing to link at run time.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/phased ./cmd/phased \
 && /out/phased -f examples/container/phased.yaml -t \
 && mkdir -p /out/etc/phased/run

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/phased /usr/local/bin/phased
COPY examples/container/phased.yaml /etc/phased/phased.yaml
COPY examples/container/public /etc/phased/public
# The pid file, control socket and runtime folder: the one place the
# non-root user writes.
COPY --from=build --chown=65532:65532 /out/etc/phased/run /etc/phased/run
ENV LISTEN_HOST=0.0.0.0 TMPDIR=/etc/phased/run
USER 65532:65532
EXPOSE 8080
# With sigterm: graceful-stop in the configuration, SIGTERM (what docker
# stop and Kubernetes send) drains instead of cutting requests.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/phased", "-f", "/etc/phased/phased.yaml", "health"]
ENTRYPOINT ["/usr/local/bin/phased", "-f", "/etc/phased/phased.yaml"]
