# syntax=docker/dockerfile:1
# kubegate container image: the release binary on distroless (glibc, no shell).
#   docker build -t kubegate:dev .
# The build stage caches the cargo registry and target dir (BuildKit), so a
# source change rebuilds only kubegate itself.

# Same Debian release as the runtime stage, so glibc matches.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
# Cargo.toml declares the benches; cargo wants them present to read it.
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kubegate \
    && install -D -m 0755 target/release/kubegate /out/usr/local/bin/kubegate \
    && install -d -m 0750 /out/var/lib/kubegate \
    && install -D -m 0644 -t /out/etc/kubegate/rules config/rules/*.rules.yml

# glibc and libgcc only (TLS is rustls): no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/kubegate /usr/local/bin/kubegate
COPY --from=build --chown=65532:65532 /out/var/lib/kubegate /var/lib/kubegate
# The default rule files, for `kubegate run` on the embedded config (the
# chart renders its own rule files and does not read this variable).
COPY --from=build /out/etc/kubegate /etc/kubegate
ENV KUBEGATE_DATA_DIR=/var/lib/kubegate \
    KUBEGATE_LOG_FORMAT=json \
    KUBEGATE_RULE_FILES=/etc/kubegate/rules/*.rules.yml
WORKDIR /var/lib/kubegate
USER 65532:65532
# 9880: HTTP (metrics, health, targets); 5044: beats (Lumberjack v2).
EXPOSE 9880 5044
ENTRYPOINT ["/usr/local/bin/kubegate"]
CMD ["run"]
