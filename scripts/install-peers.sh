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
    "cryptography $CRYPTOGRAPHY_VERSION)"
