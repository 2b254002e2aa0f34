#!/usr/bin/env bash
# Packaging check, run by hand (a few minutes, needs the package index):
#
#   .ci/check_package.sh                      # uses `python` (activate the dev venv first)
#   PYTHON=/path/to/venv/bin/python .ci/check_package.sh
#   SKIP_RESOLVE=1 .ci/check_package.sh       # skip the dependency-resolution dry run
#
# 1. `python -m build` makes an sdist and a wheel in a temporary folder (never ./dist).
# 2. The wheel holds every module and subpackage of src/covergan and py.typed; the sdist
#    holds the sources, tests, docs, examples, README, CHANGELOG and pyproject.toml.
# 3. The wheel's metadata version equals covergan.__version__ (the one place it is set).
# 4. The wheel and the sdist each install (--no-deps) into a fresh virtual environment,
#    and import from there: covergan, every subpackage, py.typed, the console scripts.
#    To avoid downloading torch again, the dependencies come from $PYTHON's own
#    site-packages through PYTHONPATH, for the import check only.
# 5. `pip install --dry-run <wheel>` in the fresh environment resolves the dependencies.
#
# Nothing is left behind: the temporary folder is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/covergan-pkg.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "build sdist and wheel into $WORK/dist"
"$PYTHON" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || {
  cat "$WORK/build.log"
  exit 1
}
WHEEL=$(ls "$WORK"/dist/covergan-*.whl)
SDIST=$(ls "$WORK"/dist/covergan-*.tar.gz)
echo "wheel: $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) kB)"
echo "sdist: $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) kB)"

step "archive contents and version"
"$PYTHON" - "$WHEEL" "$SDIST" <<'EOF'
import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

wheel, sdist = sys.argv[1], sys.argv[2]
src = Path("src/covergan")
errors = []

version = re.search(r'^__version__ = "([^"]+)"', (src / "__init__.py").read_text(), re.M)
if version is None:
    sys.exit("no __version__ = \"...\" line in src/covergan/__init__.py")
version = version.group(1)

expected = sorted(
    p.relative_to(src.parent).as_posix()
    for p in src.rglob("*")
    if p.is_file() and "__pycache__" not in p.parts and p.suffix in {".py", ".typed"}
)
subpackages = sorted({Path(p).parent.as_posix() for p in expected if p.endswith("/__init__.py")})

with zipfile.ZipFile(wheel) as zf:
    names = set(zf.namelist())
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(meta_name).decode())
missing = [p for p in expected if p not in names]
if missing:
    errors.append(f"wheel lacks {missing}")
if "covergan/py.typed" not in names:
    errors.append("wheel lacks covergan/py.typed")
if meta["Version"] != version:
    errors.append(f"wheel version {meta['Version']} != __version__ {version}")
print(f"wheel: {len(expected)} package files, subpackages {subpackages}, version {meta['Version']}")

with tarfile.open(sdist) as tf:
    top = f"covergan-{version}/"
    snames = {n[len(top):] for n in tf.getnames() if n.startswith(top)}
for need in ["pyproject.toml", "README.md", "CHANGELOG.md", "src/covergan/py.typed"]:
    if need not in snames:
        errors.append(f"sdist lacks {need}")
for folder in ["tests/", "docs/", "examples/"]:
    if not any(n.startswith(folder) for n in snames):
        errors.append(f"sdist lacks {folder}")
missing = [p for p in expected if f"src/{p}" not in snames]
if missing:
    errors.append(f"sdist lacks {missing}")
n_tests = sum(n.startswith("tests/test_") for n in snames)
print(f"sdist: {len(snames)} files, {n_tests} test modules")

if errors:
    sys.exit("\n".join(errors))
EOF

DEPS_SITE=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

install_and_import() { # $1 = label, $2 = archive
  local venv="$WORK/venv-$1"
  step "install the $1 into a fresh venv and import it"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --no-deps "$2" 2>&1 | grep -v '^WARNING: Location' || true
  "$venv/bin/python" -m pip show --quiet covergan >/dev/null
  local site
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # Dependencies from $PYTHON's site-packages, for this import check only. PYTHONPATH
  # folders are not site folders, so an editable covergan there (a .pth file) is not seen.
  (cd "$WORK" && PYTHONPATH="$DEPS_SITE" "$venv/bin/python" - "$site" <<'EOF'
import importlib
import importlib.metadata as md
import pkgutil
import sys
from pathlib import Path

site = Path(sys.argv[1])
import covergan

where = Path(covergan.__file__).resolve()
if not where.is_relative_to(site.resolve()):
    sys.exit(f"imported covergan from {where}, not from the fresh venv {site}")
dist = next(md.distributions(name="covergan", path=[str(site)]))
if dist.version != covergan.__version__:
    sys.exit(f"installed metadata version {dist.version} != covergan.__version__ {covergan.__version__}")
if not (where.parent / "py.typed").is_file():
    sys.exit("py.typed is not installed")
missing = [name for name in covergan.__all__ if not hasattr(covergan, name)]
if missing:
    sys.exit(f"covergan.__all__ names that do not resolve: {missing}")
modules = sorted(m.name for m in pkgutil.walk_packages(covergan.__path__, "covergan."))
for name in modules:
    importlib.import_module(name)
bad = []
for ep in dist.entry_points:
    try:
        ep.load()
    except Exception as error:  # report every broken entry point
        bad.append(f"{ep.group} {ep.name} = {ep.value}: {type(error).__name__}: {error}")
if bad:
    sys.exit("entry points that do not load:\n  " + "\n  ".join(bad))
print(f"covergan {covergan.__version__} from {where.parent}: {len(modules)} modules import, "
      f"{len(dist.entry_points)} entry point(s) load")
EOF
  )
}

install_and_import wheel "$WHEEL"
install_and_import sdist "$SDIST"

if [ -z "${SKIP_RESOLVE:-}" ]; then
  step "dependency resolution (pip install --dry-run)"
  "$WORK/venv-wheel/bin/python" -m pip install --quiet --dry-run --report "$WORK/resolve.json" \
    "$WHEEL" 2>&1 | grep -v '^WARNING: Location' || true
  "$PYTHON" - "$WORK/resolve.json" <<'EOF'
import json
import sys

report = json.load(open(sys.argv[1]))
names = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in report["install"])
print(f"resolved {len(names)} distributions, e.g. "
      + ", ".join(n for n in names if n.split("==")[0].lower() in {"torch", "librosa", "numpy"}))
EOF
fi

step "package OK"
