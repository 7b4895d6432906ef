# Multi-stage build of the Sagaway services: product (with the CDC indexer), orchestrator, payment
# identity (the JWT issuer), bank and gateway; one image, the command picks the binary.
#   docker build --target runtime -t sagaway .
# scripts/check-dockerfile runs the build stage's commands without Docker.

# ---- build ------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is compiled from source (bundled): it needs make, a C compiler and perl (all in the image).

# Dependency layer: only the manifests, with stub sources, so code changes do not rebuild dependencies.
COPY Cargo.toml Cargo.lock ./
COPY contract/Cargo.toml contract/
COPY messaging/Cargo.toml messaging/
COPY common/Cargo.toml common/
COPY product/Cargo.toml product/
COPY orchestrator/Cargo.toml orchestrator/
COPY payment/Cargo.toml payment/
COPY identity/Cargo.toml identity/
COPY bank/Cargo.toml bank/
COPY gateway/Cargo.toml gateway/
COPY cli/Cargo.toml cli/
COPY e2e/Cargo.toml e2e/
COPY loadgen/Cargo.toml loadgen/
# Every workspace member needs its manifest here, or cargo cannot load the workspace.
RUN for c in contract messaging common product orchestrator payment identity bank gateway cli e2e loadgen; do \
      mkdir -p $c/src && echo '' > $c/src/lib.rs && echo 'fn main() {}' > $c/src/main.rs; \
    done \
 && cargo build --release --locked -p product -p orchestrator -p payment -p identity -p bank -p gateway \
 && rm -rf contract/src messaging/src common/src product/src orchestrator/src payment/src identity/src bank/src gateway/src cli/src e2e/src loadgen/src

# The real sources.
COPY . .
# Touch the sources so cargo does not trust the stub build's timestamps.
RUN find contract messaging common product orchestrator payment identity bank gateway -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p product -p orchestrator -p payment -p identity -p bank -p gateway \
 && mkdir -p /out && cp target/release/product target/release/orchestrator target/release/payment target/release/identity target/release/bank target/release/gateway /out/

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/sagaway --create-home sagaway
COPY --from=build /out/ /usr/local/bin/
USER sagaway
WORKDIR /var/lib/sagaway
# Services bind 127.0.0.1 by default; in a container they must listen on all interfaces.
ENV PRODUCT_HOST=0.0.0.0 ORCHESTRATOR_HOST=0.0.0.0 PAYMENT_HOST=0.0.0.0 IDENTITY_HOST=0.0.0.0 BANK_HOST=0.0.0.0 GATEWAY_HOST=0.0.0.0 RUST_LOG=info
CMD ["product", "serve"]
