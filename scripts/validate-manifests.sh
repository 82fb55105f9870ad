#!/usr/bin/env bash
# Validate Kubernetes manifests against the JSON schemas of a pinned Kubernetes version.
#
#   scripts/validate-manifests.sh [DIR_OR_FILE...]     (default: deploy config)
#
# Uses kubernetes-validate (PyPI), installed once into a private venv under
# ${LINTEL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lintel-tools}; needs python3 with venv and
# PyPI on the first run only. Schemas ship inside the package, so validation is offline.
#
# Every *.yaml / *.yml file is read (recursively); each YAML document with apiVersion and kind is
# validated in strict mode (unknown fields fail). Documents with neither are skipped (e.g. Lintel
# config), files named lintel.yaml / lintel.yml are skipped whole. Exits non-zero on any invalid
# manifest, unknown apiVersion/kind, YAML error or duplicate key, or when nothing was validated.
set -euo pipefail

# Pins: bump both on purpose. The Kubernetes version matches k8s-openapi's feature in Cargo.toml.
KV_VERSION=1.37.0
K8S_VERSION=${LINTEL_K8S_VERSION:-1.33}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_dir=${LINTEL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lintel-tools}
venv="$tools_dir/kubernetes-validate-$KV_VERSION"
py="$venv/bin/python"

install_validator() {
  mkdir -p "$tools_dir"
  # Serialise concurrent first runs (flock is in util-linux; skip the lock if it is missing).
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$tools_dir/.lock"
    flock 9
  fi
  [[ -f "$venv/.installed" && -x "$py" ]] && return 0
  echo "installing kubernetes-validate==$KV_VERSION into $venv" >&2
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >&2; then
    echo "error: 'python3 -m venv' failed (on Debian: apt-get install python3-venv)" >&2
    exit 2
  fi
  "$py" -m pip install --quiet --disable-pip-version-check --no-input \
    "kubernetes-validate==$KV_VERSION" >&2
  touch "$venv/.installed"
}

[[ -f "$venv/.installed" && -x "$py" ]] || install_validator

if [[ $# -eq 0 ]]; then
  # Defaults, relative to the repository root: deploy/ must exist, config/ is optional.
  cd "$repo_root"
  set -- deploy
  [[ -d config ]] && set -- "$@" config
fi

exec "$py" - "$K8S_VERSION" "$@" <<'PY'
import os
import sys

import yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

k8s_version, targets = sys.argv[1], sys.argv[2:]
SKIP_NAMES = {"lintel.yaml", "lintel.yml"}


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, "duplicate key %r" % (key,), key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_files(target):
    if os.path.isfile(target):
        yield target
        return
    for root, dirs, files in os.walk(target):
        dirs.sort()
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")) and name not in SKIP_NAMES:
                yield os.path.join(root, name)


def describe(doc, index):
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name", "<no name>")
    ns = meta.get("namespace")
    return "document %d (%s %s%s)" % (index, doc.get("kind"), ns + "/" if ns else "", name)


errors = manifests = files = skipped = 0
for target in targets:
    if not os.path.exists(target):
        print("ERROR %s: no such file or directory" % target)
        errors += 1
        continue
    for path in yaml_files(target):
        try:
            with open(path, encoding="utf-8") as f:
                docs = list(yaml.load_all(f, Loader=UniqueKeyLoader))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            print("ERROR %s: cannot read YAML: %s" % (path, str(e).replace("\n", " ")))
            errors += 1
            continue
        counted = False
        for i, doc in enumerate(docs, 1):
            if doc is None:
                continue
            has_api, has_kind = isinstance(doc, dict) and "apiVersion" in doc, isinstance(doc, dict) and "kind" in doc
            if not has_api and not has_kind:
                skipped += 1  # not a Kubernetes object (e.g. Lintel config)
                continue
            if not counted:
                files += 1
                counted = True
            manifests += 1
            if not (has_api and has_kind):
                print("ERROR %s: document %d has %s but no %s" % (
                    path, i, "apiVersion" if has_api else "kind", "kind" if has_api else "apiVersion"))
                errors += 1
                continue
            where = "%s: %s" % (path, describe(doc, i))
            try:
                kubernetes_validate.validate(doc, k8s_version, strict=True)
            except ValidationError as e:
                field = ".".join(str(p) for p in e.path) or "<root>"
                print("ERROR %s: %s: %s" % (where, field, e.message))
                errors += 1
            except SchemaNotFoundError as e:
                # kubernetes-validate only warns here; a typo in apiVersion/kind must fail.
                print("ERROR %s: %s" % (where, e.message))
                errors += 1
            except Exception as e:  # malformed document the schema code cannot handle
                print("ERROR %s: cannot validate: %s" % (where, e))
                errors += 1

note = " (skipped %d non-Kubernetes documents)" % skipped if skipped else ""
if errors:
    print("FAILED: %d error(s) in %d manifests in %d files against Kubernetes %s%s"
          % (errors, manifests, files, k8s_version, note))
    sys.exit(1)
if manifests == 0:
    print("FAILED: no Kubernetes manifests found in %s" % " ".join(targets))
    sys.exit(1)
print("validated %d manifests in %d files against Kubernetes %s (kubernetes-validate %s, strict)%s"
      % (manifests, files, k8s_version, kubernetes_validate.__version__, note))
PY
