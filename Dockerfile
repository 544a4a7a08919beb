# quarry_exporter container image: a Rust builder stage with a dependency-caching layer, then a
# small Debian runtime (coreutils kept: command sources often run `df`, `stat` and friends),
# running as a numeric non-root user.
#
# Base images are build arguments so the image can be built from local stand-ins where no
# registry is reachable (scripts/container-test does that).

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
ARG QUARRY_REVISION=unknown
ENV QUARRY_REVISION=${QUARRY_REVISION}
WORKDIR /src
# Dependencies first: this layer is rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && strip target/release/quarry_exporter

FROM ${RUNTIME_IMAGE}
ARG QUARRY_REVISION=unknown
LABEL org.opencontainers.image.title="quarry_exporter" \
      org.opencontainers.image.description="Prometheus exporter that turns logs and status pages into metrics" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${QUARRY_REVISION}" \
      org.opencontainers.image.documentation="README.md"
COPY --from=builder /src/target/release/quarry_exporter /usr/local/bin/quarry_exporter
# A config that works out of the box (the repository's examples); mount your own over it.
COPY exporter.yaml /etc/quarry/exporter.yaml
COPY examples /etc/quarry/examples
# Where checkpoints go with --storage.path=/var/lib/quarry (a named volume mounted there takes
# this ownership, so the non-root user can write it).
RUN mkdir -p /var/lib/quarry && chown 65532:65532 /var/lib/quarry
USER 65532:65532
EXPOSE 9847
ENTRYPOINT ["/usr/local/bin/quarry_exporter"]
CMD ["--config.file=/etc/quarry/exporter.yaml"]
