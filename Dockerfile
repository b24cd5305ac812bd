# syntax=docker/dockerfile:1
# Build: make docker-build (the same flags as make build).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/podguard ./cmd/podguard

# distroless static: no shell, no package manager, runs as nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/podguard /podguard
USER 65532:65532
ENTRYPOINT ["/podguard"]
CMD ["serve"]
