# kubesync's container image: `docker build -t kubesync .`
#
# Stage 1 builds the release binary (libgit2 and libssh2 are vendored and
# linked statically into it, TLS is rustls: no OpenSSL or git at runtime).
# Stage 2 is a small Debian runtime, non-root (uid 65532), with CA
# certificates. Helm and kustomize are subprocesses of the helm and kustomize
# renderers: pass --build-arg HELM_VERSION=v3.x.y / KUSTOMIZE_VERSION=v5.x.y
# to include them (downloaded from their official release URLs at build
# time); without them, apps using those renderers fail with "helm not found".
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin kubesync \
 && strip target/release/kubesync

FROM debian:bookworm-slim AS tools
ARG HELM_VERSION=""
ARG KUSTOMIZE_VERSION=""
ARG TARGETARCH=amd64
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && mkdir -p /out \
 && if [ -n "$HELM_VERSION" ]; then \
      curl -fsSL "https://get.helm.sh/helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz" \
        | tar -xz -C /tmp && mv "/tmp/linux-${TARGETARCH}/helm" /out/helm; \
    fi \
 && if [ -n "$KUSTOMIZE_VERSION" ]; then \
      curl -fsSL "https://github.com/kubernetes-sigs/kustomize/releases/download/kustomize%2F${KUSTOMIZE_VERSION}/kustomize_${KUSTOMIZE_VERSION}_linux_${TARGETARCH}.tar.gz" \
        | tar -xz -C /out; \
    fi

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 kubesync \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin kubesync
COPY --from=tools /out/ /usr/local/bin/
COPY --from=build /src/target/release/kubesync /usr/local/bin/kubesync
USER 65532:65532
ENV HOME=/tmp KUBESYNC_CACHE_DIR=/tmp/kubesync-cache
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kubesync"]
CMD ["run", "--help"]
