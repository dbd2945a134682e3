# syntax=docker/dockerfile:1
# vaia's local stack as a container: `docker build -t vaia .` at the repository root.
# Stages: deps (crates downloaded in a layer that changes only with the manifests), build
# (`make release-bins`, which CI runs too), runtime (distroless, non-root, HEALTHCHECK).
# When the dashboard lands, its `npm ci && npm run build` joins the build stage through the
# same make target.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS deps
WORKDIR /src
# Only the manifests: this layer and the download below change when dependencies do.
COPY Cargo.toml Cargo.lock ./
COPY shared/core/Cargo.toml shared/core/
COPY shared/gates/Cargo.toml shared/gates/
COPY shared/local/Cargo.toml shared/local/
COPY shared/aws/Cargo.toml shared/aws/
COPY shared/oci/Cargo.toml shared/oci/
COPY shared/dvc/Cargo.toml shared/dvc/
COPY shared/testkit/Cargo.toml shared/testkit/
COPY functions/webhook/Cargo.toml functions/webhook/
COPY functions/api/Cargo.toml functions/api/
COPY functions/orchestrator/Cargo.toml functions/orchestrator/
COPY functions/registry/Cargo.toml functions/registry/
COPY functions/delivery/Cargo.toml functions/delivery/
COPY functions/ct-budget/Cargo.toml functions/ct-budget/
COPY functions/data-watcher/Cargo.toml functions/data-watcher/
COPY functions/realtime/Cargo.toml functions/realtime/
COPY functions/gate-schema/Cargo.toml functions/gate-schema/
COPY functions/gate-security/Cargo.toml functions/gate-security/
COPY functions/gate-latency/Cargo.toml functions/gate-latency/
COPY functions/gate-prompt/Cargo.toml functions/gate-prompt/
COPY functions/gate-eval/Cargo.toml functions/gate-eval/
COPY lambda/Cargo.toml lambda/
COPY examples/agent/Cargo.toml examples/agent/
COPY cli/Cargo.toml cli/
COPY tests/Cargo.toml tests/
COPY bench/Cargo.toml bench/
COPY .ci/stub-workspace .ci/
# The same two commands `make delivery-check` runs in CI on a copy of the manifests.
RUN .ci/stub-workspace . && cargo fetch --locked

FROM deps AS build
# The stub sources go; the real ones come (cargo sees new files and rebuilds the members).
RUN find . -mindepth 2 -name '*.rs' -delete
COPY . .
RUN --mount=type=cache,target=/src/target,sharing=locked \
    make release-bins CARGO_FLAGS=--offline \
 && mkdir -p /out/data \
 && cp target/release/vaia target/release/vaia-example-agent /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/vaia /usr/local/bin/vaia
COPY --from=build --chown=65532:65532 /out/data /var/lib/vaia
USER 65532:65532
EXPOSE 8080
# Needs VAIA_GITHUB_WEBHOOK_SECRET; listening beyond loopback needs the API's tokens.
ENTRYPOINT ["/usr/local/bin/vaia"]
CMD ["up", "--bind", "0.0.0.0", "--port", "8080", "--data-dir", "/var/lib/vaia"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/vaia", "runs", "list", "--limit", "1", "--url", "http://127.0.0.1:8080"]
