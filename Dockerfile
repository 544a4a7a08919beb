# quarry_exporter container images, from one Dockerfile:
#   default (last stage): Debian slim, coreutils kept (command sources often run `df`, `stat`
#                          and friends);
#   --target minimal:      no shell, no package manager: the binary and the shared libraries
#                          it links (glibc, libgcc), as distroless/cc has; for configs without
#                          command sources.
# Both run as a numeric non-root user (65532) and carry the OCI labels. The binary is stripped
# in the image (symbols stay in local builds: `debug = 1` in Cargo.toml).
#
# Base images are build arguments so the image can be built from local stand-ins where no
# registry is reachable (scripts/container-test does that).

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
ARG QUARRY_REVISION=unknown
ARG QUARRY_BRANCH=unknown
ARG SOURCE_DATE_EPOCH
ENV QUARRY_REVISION=${QUARRY_REVISION} \
    QUARRY_BRANCH=${QUARRY_BRANCH} \
    QUARRY_BUILD_USER=container-build \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH}
WORKDIR /src
# Dependencies first: this layer is rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
# The catalog's module files are embedded in the binary (src/catalog.rs).
COPY catalog ./catalog
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && strip target/release/quarry_exporter

# The minimal image's root: the binary, exactly the libraries `ldd` says it needs, a writable
# checkpoint directory and /tmp.
FROM ${RUNTIME_IMAGE} AS minimal-root
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=builder /src/target/release/quarry_exporter /out/usr/local/bin/quarry_exporter
RUN ldd /out/usr/local/bin/quarry_exporter | grep -o '/[^ ]*' | xargs -I{} cp --parents -L {} /out \
    && mkdir -p /out/var/lib/quarry /out/tmp /out/etc/quarry \
    && chown 65532:65532 /out/var/lib/quarry \
    && chmod 1777 /out/tmp

FROM scratch AS minimal
ARG QUARRY_REVISION=unknown
ARG QUARRY_VERSION=unknown
ARG QUARRY_CREATED=unknown
LABEL org.opencontainers.image.title="quarry_exporter (minimal)" \
      org.opencontainers.image.description="Prometheus exporter that turns logs and status pages into metrics; no shell (configs without command sources)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${QUARRY_VERSION}" \
      org.opencontainers.image.revision="${QUARRY_REVISION}" \
      org.opencontainers.image.created="${QUARRY_CREATED}" \
      org.opencontainers.image.documentation="README.md"
COPY --from=minimal-root /out/ /
COPY exporter.yaml /etc/quarry/exporter.yaml
COPY examples /etc/quarry/examples
COPY catalog /etc/quarry/catalog
USER 65532:65532
EXPOSE 9847
ENTRYPOINT ["/usr/local/bin/quarry_exporter"]
CMD ["--config.file=/etc/quarry/exporter.yaml"]

FROM ${RUNTIME_IMAGE} AS debian
ARG QUARRY_REVISION=unknown
ARG QUARRY_VERSION=unknown
ARG QUARRY_CREATED=unknown
LABEL org.opencontainers.image.title="quarry_exporter" \
      org.opencontainers.image.description="Prometheus exporter that turns logs and status pages into metrics" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${QUARRY_VERSION}" \
      org.opencontainers.image.revision="${QUARRY_REVISION}" \
      org.opencontainers.image.created="${QUARRY_CREATED}" \
      org.opencontainers.image.documentation="README.md"
COPY --from=builder /src/target/release/quarry_exporter /usr/local/bin/quarry_exporter
# A config that works out of the box (the repository's examples); mount your own over it.
COPY exporter.yaml /etc/quarry/exporter.yaml
COPY examples /etc/quarry/examples
COPY catalog /etc/quarry/catalog
# Where checkpoints go with --storage.path=/var/lib/quarry (a named volume mounted there takes
# this ownership, so the non-root user can write it).
RUN mkdir -p /var/lib/quarry && chown 65532:65532 /var/lib/quarry
USER 65532:65532
EXPOSE 9847
ENTRYPOINT ["/usr/local/bin/quarry_exporter"]
CMD ["--config.file=/etc/quarry/exporter.yaml"]
