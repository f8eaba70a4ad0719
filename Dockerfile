# The gateway and its bundled plugins in one image.
#
#   docker build -t weir .
#   docker run -p 8080:8080 -v $PWD/my.toml:/etc/weir/weir.toml weir
#
# Build stage: the toolchain of rust-toolchain.toml, the wasm32-wasip2 target for the
# bundled plugins (host/build.rs builds plugins/* into target/plugins), a release build.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 \
 && cargo build --release --locked --bin weir \
 && mkdir -p /out/plugins \
 && cp target/release/weir /out/weir \
 && cp target/plugins/*.wasm /out/plugins/

# Runtime stage: the binary, the bundled plugins and a config, run as an unprivileged user.
# The plugins are in the config's plugins_dir, and in /opt/weir/plugins as the seed of the
# Kubernetes plugins volume (deploy/kubernetes), which hides the first copy.
FROM debian:bookworm-slim
# CA roots for rediss:// and TLS upstreams verified against the system's roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/weir/plugins /var/cache/weir \
 && chown 10001:10001 /var/lib/weir/plugins /var/cache/weir
COPY --from=build /out/weir /usr/local/bin/weir
COPY --from=build /out/plugins /opt/weir/plugins
COPY --from=build --chown=10001:10001 /out/plugins /var/lib/weir/plugins
COPY deploy/kubernetes/weir.toml /etc/weir/weir.toml
USER 10001:10001
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/weir", "run"]
CMD ["/etc/weir/weir.toml"]
