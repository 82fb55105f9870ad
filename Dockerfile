# syntax=docker/dockerfile:1
# Build: docker build -t ghcr.io/lintel-dev/lintel:0.1.0 .

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and build artifacts between builds (BuildKit);
# target/ is a cache, so the binary is copied out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/lintel /lintel

# glibc, libgcc and CA certificates, no shell; runs as 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /lintel /usr/local/bin/lintel
USER 65532:65532
# http, https, admin (/metrics, /healthz, /readyz, /routes)
EXPOSE 8080 8443 10254
ENTRYPOINT ["/usr/local/bin/lintel"]
CMD ["run"]
