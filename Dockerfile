# Multi-stage build: the resizer component (wasm32-wasip2) and the host are built in the first
# stage (host/build.rs builds and embeds the component), the binary alone goes to a slim image
# that runs as a non-root user with its data on a volume.
# Untested here: these machines have no container engine.

FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2 \
 && apt-get update \
 && apt-get install -y --no-install-recommends clang-14 llvm-14 wasi-libc \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p edgethumb \
 && cp target/release/edgethumb /usr/local/bin/edgethumb

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --create-home --home-dir /data edgethumb
COPY --from=build /usr/local/bin/edgethumb /usr/local/bin/edgethumb
USER edgethumb
WORKDIR /data
VOLUME /data
# Compiled components are cached on the volume, so restarts skip compilation.
ENV EDGETHUMB_CACHE_DIR=/data/compiled
EXPOSE 8080
ENTRYPOINT ["edgethumb"]
CMD ["serve", "--bind", "0.0.0.0:8080", "--data-dir", "/data"]
