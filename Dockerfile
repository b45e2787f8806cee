# syntax=docker/dockerfile:1
# Multi-stage build: a full Rust toolchain to build, a slim Debian to run, as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins \
 && strip target/release/alexandria target/release/alexandria-example-fs

FROM debian:bookworm-slim AS runtime
# ca-certificates for HTTPS upstreams and notifications. No PostgreSQL server: in a
# container, point DATABASE_URL at a database.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/alexandria --create-home alexandria
COPY --from=build /src/target/release/alexandria /src/target/release/alexandria-example-fs /usr/local/bin/
USER alexandria
WORKDIR /var/lib/alexandria
ENV ALEXANDRIA_LISTEN=0.0.0.0:8080 \
    ALEXANDRIA_DATA_DIR=/var/lib/alexandria
EXPOSE 8080
ENTRYPOINT ["alexandria"]
CMD ["serve"]
