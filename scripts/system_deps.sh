#!/usr/bin/env bash
# System packages some tests need (the dashboard test drives Debian's headless chromium).
# Idempotent and quiet: installs only what is missing, and only where apt-get can run as root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: chromium missing and apt-get unavailable; the dashboard test will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
