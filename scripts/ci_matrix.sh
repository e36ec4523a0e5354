#!/usr/bin/env bash
# Packaging and Python matrix, run by scripts/test.sh after the main suite:
#  1. build the sdist and the wheel (python -m build) and check them (twine check --strict);
#  2. micrec's dependencies, every extra included, resolve to wheels on win_amd64, macOS arm64 and
#     x86_64 and Linux x86_64 for Python 3.11-3.13 (scripts/check_wheels.py);
#  3. on Python 3.11, 3.12 and 3.13 (pyenv's), in parallel: a fresh virtualenv with the *wheel*
#     installed (micrec[all]), and the unit tests plus the real-stack smoke (one take per encoder,
#     decoded) run from a copy of tests/ outside the source tree, so they test the installed copy
#     (a package-data file missing from the wheel fails here).
# MICREC_PYTHONS="3.12" limits the Pythons; MICREC_MATRIX_DIR says where to work.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${MICREC_MATRIX_DIR:-$root/.ci-matrix}
read -r -a pythons <<< "${MICREC_PYTHONS:-3.11 3.12 3.13}"
# Fast, and each needs at most the private PulseAudio server that the fixtures start.
unit_tests=(test_packaging.py test_recorder.py test_aio.py test_backends.py test_web_units.py test_plot.py
            test_pulseloop.py test_smoke.py)
test_deps=(pytest pytest-timeout psutil httpx packaging)
# uv resolves and installs in seconds where pip takes minutes here; it reads no pip.conf, so it
# trusts the system's certificates as pip is told to.
export UV_NATIVE_TLS=1
uv=.venv/bin/uv
[ -x "$uv" ] || timeout 300 .venv/bin/python -m pip install -q uv

rm -rf "$work"
mkdir -p "$work"
started=$SECONDS

echo "== build and check the sdist and the wheel"
timeout 600 .venv/bin/python -m build --installer uv --outdir "$work/dist" . > "$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log"; exit 1; }
timeout 120 .venv/bin/twine check --strict "$work"/dist/*
wheel=$(ls "$work"/dist/micrec-*.whl)
sdist=$(ls "$work"/dist/micrec-*.tar.gz)
echo "built $(basename "$sdist") and $(basename "$wheel")"

find_python() {  # the newest pyenv (or PATH) interpreter of a minor version
  local minor=$1 pyenv_root candidate
  pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  candidate=$(ls -d "$pyenv_root"/versions/"$minor".*/bin/python 2>/dev/null | sort -V | tail -1)
  if [ -z "$candidate" ]; then candidate=$(command -v "python$minor" || true); fi
  echo "$candidate"
}

run_python() {  # one Python: fresh venv, the wheel, the tests from a copy
  local minor=$1 dir=$work/py$1 py
  py=$(find_python "$minor")
  [ -n "$py" ] || { echo "Python $minor not found (pyenv install $minor)"; return 1; }
  mkdir -p "$dir"
  cp -r tests "$dir/tests"
  cp pyproject.toml "$dir/"  # pytest's settings (markers); there is no src/ beside it
  local t0=$SECONDS
  timeout 120 "$uv" venv -q -p "$py" "$dir/venv"
  timeout 900 "$uv" pip install -q --compile-bytecode --python "$dir/venv/bin/python" "$wheel[all]" "${test_deps[@]}"
  echo "venv and install: $((SECONDS - t0)) s"
  (cd "$dir" && venv/bin/python -c "import micrec, sys; assert 'site-packages' in micrec.__file__, micrec.__file__;
print('Python', sys.version.split()[0], 'micrec', micrec.__version__, 'from', micrec.__file__)")
  "$uv" pip list --python "$dir/venv/bin/python" 2>/dev/null | grep -iE "^(av|numpy|soundfile|flet|pywebrtc-audio) "
  t0=$SECONDS
  (cd "$dir" && MICREC_SOURCE_TREE="$root" timeout 1500 venv/bin/python -m pytest -q -p no:cacheprovider \
     "${unit_tests[@]/#/tests/}")
  echo "tests: $((SECONDS - t0)) s"
}

echo "== wheels: micrec's dependencies (every extra) on Windows, macOS (arm64, x86_64) and Linux, Python 3.11-3.13"
timeout 1800 .venv/bin/python scripts/check_wheels.py 2>&1 | grep -v "^WARNING: Location"

echo "== Python ${pythons[*]}: the wheel in fresh virtualenvs, unit tests + smoke (in parallel)"
declare -A pids
for minor in "${pythons[@]}"; do
  run_python "$minor" > "$work/py$minor.log" 2>&1 &
  pids[$minor]=$!
done
failed=()
for minor in "${pythons[@]}"; do
  if wait "${pids[$minor]}"; then status=ok; else status=FAILED; failed+=("$minor"); fi
  echo "-- Python $minor: $status"
  grep -v "^WARNING: Location" "$work/py$minor.log" | tail -25
done
echo "matrix took $((SECONDS - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed on Python ${failed[*]}"
  exit 1
fi
