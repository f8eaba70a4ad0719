# The gateway and its bundled plugins in one image: a static binary on an empty base, with
# the CA roots for rediss:// and TLS upstreams, run as an unprivileged user.
#
#   docker build -t weir .
#   docker run -p 8080:8080 -v $PWD/my.toml:/etc/weir/weir.toml weir
#
# `--build-arg BINARY=prebuilt` takes the binary, the plugins, the CA roots and busybox
# from the build context's `image/` directory instead of the build stage: the test suite builds the
# image that way with buildah, offline (an empty base needs no registry).
ARG BINARY=build

# Build stage: the toolchain of rust-toolchain.toml, the wasm32-wasip2 target for the
# bundled plugins (host/build.rs builds plugins/* into target/plugins), a static (musl)
# release build; a static busybox for the few commands the Kubernetes manifests run.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates busybox-static \
 && rustup target add wasm32-wasip2 x86_64-unknown-linux-musl \
 && cargo build --release --locked --target x86_64-unknown-linux-musl --bin weir \
 && mkdir -p /out/plugins /out/empty \
 && cp target/x86_64-unknown-linux-musl/release/weir /out/weir \
 && cp target/plugins/*.wasm /out/plugins/ \
 && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt \
 && cp /bin/busybox /out/busybox

FROM scratch AS prebuilt
COPY image/ /out/

FROM ${BINARY} AS binary

# Runtime: the binary, the bundled plugins and a config. The plugins are in the config's
# plugins_dir, and in /opt/weir/plugins as the seed of the Kubernetes plugins volume
# (deploy/kubernetes), which hides the first copy; the cache directory is the user's.
FROM scratch
# sh, cp and sleep for the Kubernetes init container and preStop hook (and kubectl exec).
COPY --from=binary /out/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY --from=binary /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binary /out/weir /usr/local/bin/weir
COPY --from=binary /out/plugins /opt/weir/plugins
COPY --from=binary --chown=10001:10001 /out/plugins /var/lib/weir/plugins
COPY --from=binary --chown=10001:10001 /out/empty /var/cache/weir
COPY deploy/kubernetes/weir.toml /etc/weir/weir.toml
USER 10001:10001
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/weir", "run"]
CMD ["/etc/weir/weir.toml"]
