#!/usr/bin/env bash
# Set up micrec on a fresh Debian 12 machine: system packages, a virtualenv in .venv, and
# micrec with every extra. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pulseaudio pulseaudio-utils      # the sound server (and the private test/demo server)
  pipewire pipewire-pulse wireplumber dbus  # the other sound server: tests run on both
  libportaudio2 libasound2-plugins # the PortAudio backend, and its route to PulseAudio
  libvo-amrwbenc0                  # AMR-WB encoder
  libfdk-aac2                      # HE-AAC and AAC-ELD encoder (Debian non-free)
  ffmpeg sox libsox-fmt-pulse alsa-utils  # independent decoders for tests; peers for benchmarks
  espeak-ng                        # real speech for the voice-processing tests
  chromium                         # the browser for micrec.web's tests
  gcc libc6-dev                    # builds the pulse backend's capture loop (csrc/pulseloop.c)
)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  # libfdk-aac2 lives in Debian's non-free component.
  if [ -f /etc/apt/sources.list.d/debian.sources ] && ! grep -q "non-free" /etc/apt/sources.list.d/debian.sources; then
    as_root sed -i -E 's/^(Components: main)$/\1 non-free/' /etc/apt/sources.list.d/debian.sources
  elif [ -f /etc/apt/sources.list ] && ! grep -q "non-free" /etc/apt/sources.list; then
    as_root sed -i -E 's/^(deb .* main)$/\1 non-free/' /etc/apt/sources.list
  fi
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.micrec-installed-compiled
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] || [ csrc/pulseloop.c -nt "$stamp" ]; then
  # uv installs in seconds what pip takes minutes to resolve here; it reads no pip.conf, so it is
  # told to trust the system's certificates as pip is. Bytecode is compiled at install, as pip
  # does: uv does not by default, and with PYTHONDONTWRITEBYTECODE set (as on this machine)
  # every process would compile numpy from source again (0.33 s instead of 0.12 s to import
  # numpy and soundfile).
  [ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q uv
  UV_NATIVE_TLS=1 .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python -e '.[all,test,docs]'
  touch "$stamp"
fi
# micrec's own sources (an editable install): recompiled where they changed.
.venv/bin/python -m compileall -q src >/dev/null
