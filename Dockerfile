# pgferry container image (multi-stage). Used by docker-compose.yml.
# NOTE: the dev machines have no Docker engine, so this has not been built here.
#   docker build -t pgferry .
#   docker run -p 6432:6432 -v $PWD/docker/pgferry.toml:/etc/pgferry/pgferry.toml pgferry

# rust:1 on bookworm, so the binary's glibc matches the runtime image.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pgferry

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --shell /usr/sbin/nologin pgferry
COPY --from=builder /src/target/release/pgferry /usr/local/bin/pgferry
COPY docker/pgferry.toml /etc/pgferry/pgferry.toml
USER pgferry
EXPOSE 6432
ENTRYPOINT ["/usr/local/bin/pgferry"]
CMD ["--config", "/etc/pgferry/pgferry.toml"]
