#!/usr/bin/env bash
# Runs Alexandria on a fresh machine: installs PostgreSQL's server binaries if they are
# missing (Alexandria then runs a private cluster under ./alexandria-data), builds, and
# serves on 127.0.0.1:8080 with the demo upstream and agent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  echo "installing PostgreSQL server binaries (Debian package postgresql)..." >&2
  sudo_cmd=; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends postgresql
fi
cargo build --release --locked --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/release/alexandria" serve --demo "$@"
