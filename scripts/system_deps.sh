#!/usr/bin/env bash
# System packages some tests need: Debian's headless chromium (the dashboard test) and
# docker-compose (validates docker-compose.yml; PyPI's 1.29.2 pins PyYAML<6 and jsonschema<4, which
# clash with the venv, so Debian's build of the same release is used). Idempotent and quiet:
# installs only what is missing, and only where apt-get can run as root; else those tests skip.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: missing ${missing[*]} and apt-get unavailable; their tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1 \
  || echo "system_deps: could not install ${missing[*]}; their tests will skip" >&2
