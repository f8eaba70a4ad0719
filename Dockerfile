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
# The plugins are also the seed of the Kubernetes plugins volume (deploy/kubernetes).
FROM debian:bookworm-slim
COPY --from=build /out/weir /usr/local/bin/weir
COPY --from=build /out/plugins /opt/weir/plugins
COPY deploy/kubernetes/weir.toml /etc/weir/weir.toml
USER 10001:10001
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/weir", "run"]
CMD ["/etc/weir/weir.toml"]
