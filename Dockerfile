# syntax=docker/dockerfile:1
# The switchboard edge: one static Go binary on distroless, running as non-root.
#   docker build -t switchboard .
#   docker run --rm -p 8080:8080 switchboard            # development mode, memory broker
#   docker run --rm -p 8080:8080 -e SWITCHBOARD_JWT_SECRET=... \
#     -e SWITCHBOARD_BROKER=redis -e SWITCHBOARD_BROKER_URL=redis://host:6379/0 switchboard
# Three edges behind a load balancer: docker-compose.yml and docs/deploy.md.

# The golang image sets GOTOOLCHAIN=local: its Go must satisfy go.mod's
# "go" line (1.26.8); the 1.26 tag is the newest 1.26 patch release.
ARG GO_VERSION=1.26

# Build on the builder's own platform and cross-compile (pure Go, no cgo),
# so `docker buildx build --platform linux/amd64,linux/arm64` needs no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# The binary's whole module-internal closure (go list -deps ./edge):
# edge wires adapters/websocket, the broker/... drivers and core.
COPY core ./core
COPY broker ./broker
COPY adapters ./adapters
COPY edge ./edge
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/switchboard ./edge

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Real-time push edge (WebSocket) on a pluggable broker" \
      org.opencontainers.image.source="https://github.com/switchboard-dev/switchboard"
COPY --from=build /out/switchboard /usr/local/bin/switchboard
# A static busybox wget (about 1 MB), only so that container health checks
# can probe /healthz and /readyz: distroless has no shell and no HTTP client.
COPY --from=busybox:1.37-musl /bin/wget /usr/local/bin/wget
ENV SWITCHBOARD_ADDR=:8080
EXPOSE 8080
USER nonroot:nonroot
# SIGTERM drains: clients get 1012 "service restart" within
# SWITCHBOARD_SHUTDOWN_TIMEOUT and resume elsewhere with since=<last id>.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
