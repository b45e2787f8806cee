#!/usr/bin/env bash
# Checks the deployment manifests offline (run by .ci/run):
#   - `kubectl kustomize` renders every overlay in deploy/kubernetes/overlays;
#   - kubernetes-validate (PyPI, pinned in scripts/install-peers.sh) accepts every object
#     it has a schema for, strictly (CRDs — ServiceMonitor, PrometheusRule, the
#     CloudNativePG Cluster — have none there and are only rendered);
#   - `promtool check rules` and `promtool test rules` pass on the PrometheusRule's groups
#     with the unit tests in deploy/prometheus/rules.test.yaml.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
validate="$repo/.peers/manifests/bin/kubernetes-validate"
python="$repo/.peers/manifests/bin/python"
[[ -x "$validate" ]] || { echo "check-manifests: run scripts/install-peers.sh first" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "check-manifests: kubectl is required" >&2; exit 1; }
command -v promtool >/dev/null || { echo "check-manifests: promtool is required (Debian: prometheus)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for overlay in "$repo"/deploy/kubernetes/overlays/*/; do
    name="$(basename "$overlay")"
    kubectl kustomize "$overlay" > "$work/$name.yaml"
    echo "check-manifests: $name renders $(grep -c '^kind:' "$work/$name.yaml") objects"
    "$validate" --strict --quiet "$work/$name.yaml"
done

"$python" - "$repo/deploy/kubernetes/base/prometheusrule.yaml" "$work/rules.yaml" <<'PY'
import sys, yaml
rule = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump(rule["spec"], open(sys.argv[2], "w"), sort_keys=False)
PY
cp "$repo/deploy/prometheus/rules.test.yaml" "$work/"
(cd "$work" && promtool check rules rules.yaml && promtool test rules rules.test.yaml)
echo "check-manifests: ok"
