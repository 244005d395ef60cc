# syntax=docker/dockerfile:1
# The switchboard edge: a static binary on distroless, running as non-root.
#   docker build -t switchboard .
#   docker run --rm -p 8080:8080 switchboard            # development mode
#   docker run --rm -p 8080:8080 -e SWITCHBOARD_JWT_SECRET=... switchboard

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# The binary's whole dependency closure: edge wires adapters, broker and core.
COPY core ./core
COPY broker ./broker
COPY adapters ./adapters
COPY edge ./edge
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/switchboard ./edge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchboard /usr/local/bin/switchboard
# A static busybox wget, only so that health checks can probe /healthz
# (distroless has no shell and no HTTP client).
COPY --from=busybox:1.37-musl /bin/wget /usr/local/bin/wget
ENV SWITCHBOARD_ADDR=:8080
EXPOSE 8080
USER nonroot:nonroot
# SIGTERM drains: clients get 1012 "service restart" within SWITCHBOARD_SHUTDOWN_TIMEOUT.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
