#!/usr/bin/env bash
# Checks the system packages Birga needs and says how to get them. With --test it also makes
# sure of what the test suite drives for real (Chromium, pdftotext), installing them through
# apt when running as root (CI machines), since a browser test must never download a browser.
set -u
missing=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }

python3 - <<'PY' || missing+=("python3 >= 3.11 (python3, python3-venv)")
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=("python3-venv")
have_lib libpango-1.0 || missing+=("libpango-1.0-0 libpangoft2-1.0-0 (WeasyPrint)")
have_lib libharfbuzz-subset || missing+=("libharfbuzz-subset0 (fast font subsetting in WeasyPrint)")
fc-list 2>/dev/null | grep -qi "DejaVu Sans" || missing+=("fonts-dejavu-core (PDF fonts for ā ș қ oʻ)")

if [ "${1:-}" = "--test" ]; then
  command -v pdftotext >/dev/null || missing+=("poppler-utils (pdftotext, reads PDFs back in tests)")
  command -v chromium >/dev/null || missing+=("chromium (browser tests)")
fi

if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sed -E 's/ \(.*//; s/ >= .*//' | tr '\n' ' ')
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "Installing system packages: $pkgs"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs) >/dev/null 2>&1 \
      || { echo "apt-get install failed for: $pkgs" >&2; exit 1; }
  else
    echo "Birga needs these system packages:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    echo "On Debian/Ubuntu: sudo apt-get install $pkgs" >&2
    exit 1
  fi
fi
exit 0
