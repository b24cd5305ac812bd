# syntax=docker/dockerfile:1
# Build: make docker-build (the same flags as make build). The release
# workflow builds linux/amd64 and linux/arm64 in one go: the build stage runs
# on the builder's own platform and cross-compiles (no emulation), and the
# final stage only copies the binary.

FROM --platform=$BUILDPLATFORM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
ARG COMMIT=
# The version and commit come from the build args: .git is not in the
# context, so no VCS stamp.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/podguard ./cmd/podguard

# distroless static: no shell, no package manager, runs as nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/podguard /podguard
USER 65532:65532
ENTRYPOINT ["/podguard"]
CMD ["serve"]
