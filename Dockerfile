# syntax=docker/dockerfile:1
# The production image: `alexandria serve` as a non-root user (uid/gid 10001), with the
# example MCP server `alexandria-example-fs` beside it for `serve --demo`.
#
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t alexandria:0.1.0 .
#
# Two runtime targets:
#   runtime (the default, last stage): with PostgreSQL's server binaries, so that without
#           DATABASE_URL the gateway runs its managed PostgreSQL in /var/lib/alexandria/pg
#           (put a volume there);
#   slim    (`--target slim`): no PostgreSQL server, roughly 300 MB smaller; DATABASE_URL is
#           required (Kubernetes, or any deployment with its own database).
# How to run either: docs/OPERATIONS.md, "Deploy".

# ---- build ---------------------------------------------------------------------------
# cargo-chef caches the dependencies: `planner` reduces the workspace to its manifests and
# Cargo.lock (recipe.json, unchanged by a source edit), `build` compiles the dependencies
# from the recipe in a layer of their own, then the workspace's own crates. A source change
# rebuilds only the last step.
FROM rust:1.95-bookworm AS chef
RUN cargo install --locked cargo-chef --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# The registry is a BuildKit cache mount (downloads survive a changed recipe); target/
# is not, so the compiled dependencies are in this layer for the next step to reuse.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo chef cook --release --locked --workspace --bins --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo build --release --locked --workspace --bins \
 && strip target/release/alexandria target/release/alexandria-example-fs

# ---- runtime -------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime-base
# ca-certificates: HTTPS upstreams and notifications. curl: the HEALTHCHECK below (and
# `docker exec ... curl` by an operator). tini: PID 1, which reaps orphaned processes
# (the managed PostgreSQL's postmaster once pg_ctl exits, children of stdio upstreams)
# and passes SIGTERM on to the gateway, whose graceful shutdown then runs.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 alexandria \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/alexandria --create-home \
      --shell /usr/sbin/nologin alexandria \
 && chmod 0700 /var/lib/alexandria
WORKDIR /var/lib/alexandria
ENV ALEXANDRIA_LISTEN=0.0.0.0:8080 \
    ALEXANDRIA_DATA_DIR=/var/lib/alexandria
EXPOSE 8080
# /healthz, not /readyz. Docker acts on this check only by restarting or replacing the
# container (Swarm, `restart` policies of some orchestrators) and by ordering dependants
# (compose `service_healthy`). /readyz fails while the database is unreachable or its
# schema is older than this binary: a restart cures neither, and restarting every gateway
# during a database outage would cut off its in-band waiters for nothing. /healthz says
# the process serves HTTP, which it does only after connecting to the database and
# (unless told not to) migrating it. Load balancers should use /readyz.
# The check connects to 127.0.0.1 on ALEXANDRIA_LISTEN's port: keep the listen address
# 0.0.0.0 (or a loopback one), or replace the check with `docker run --health-cmd`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null --max-time 4 "http://127.0.0.1:${ALEXANDRIA_LISTEN##*:}/healthz" || exit 1
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "alexandria"]
CMD ["serve"]

FROM runtime-base AS slim
COPY --from=build /src/target/release/alexandria /src/target/release/alexandria-example-fs /usr/local/bin/
# Declared last: a new revision changes only the label, never a cached layer above.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="alexandria" \
      org.opencontainers.image.description="MCP gateway with per-call human approval of tool calls (no PostgreSQL server: set DATABASE_URL)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

FROM runtime-base AS runtime
# PostgreSQL's server binaries (/usr/lib/postgresql/15/bin), found by the managed mode
# (src/db/managed.rs) when DATABASE_URL is unset. The package would create and start a
# cluster of its own; postgresql-common goes first so that can be switched off. The
# managed cluster runs as the gateway's user, under /var/lib/alexandria/pg, listening on
# a Unix socket in pg/run only.
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
COPY --from=build /src/target/release/alexandria /src/target/release/alexandria-example-fs /usr/local/bin/
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="alexandria" \
      org.opencontainers.image.description="MCP gateway with per-call human approval of tool calls" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
