#!/usr/bin/env bash
# Set up faultmesh on a fresh machine: a virtual environment in .venv with the package installed.
#   bash scripts/setup.sh           runtime only
#   bash scripts/setup.sh --test    plus test tools and headless Chromium (Debian's package)
# Each step says what it does (pip itself stays quiet: -q), so the minute it takes is not silent.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
echo "setup: creating .venv"
python3 -m venv .venv
echo "setup: updating pip"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
if [ "${1:-}" = "--test" ]; then
    echo "setup: installing faultmesh, its dependencies and the test tools (about a minute)"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,examples]'
    if ! command -v chromium >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "setup: installing chromium (Debian package) for the report browser tests"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
        else
            echo "setup: chromium not found and cannot install it; browser tests will be skipped" >&2
        fi
    fi
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        # builds faultmesh's container images with no registry (faultmesh images build)
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "setup: installing mmdebstrap (Debian package) for faultmesh images build"
            apt-get update -qq >/dev/null || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null \
                || echo "setup: could not install mmdebstrap; faultmesh images build will exit 3" >&2
        else
            echo "setup: mmdebstrap not found and cannot install it; faultmesh images build will exit 3 and image tests skip" >&2
        fi
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        # the real-parts example's cache on the host (tests/test_example_images.py, quick part)
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "setup: installing redis-server (Debian package) for the example cache's tests"
            apt-get update -qq >/dev/null || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null \
                || echo "setup: could not install redis-server; the example cache's host tests will be skipped" >&2
        else
            echo "setup: redis-server not found and cannot install it; the example cache's host tests will be skipped" >&2
        fi
    fi
else
    echo "setup: installing faultmesh and its dependencies (about a minute)"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
echo "setup: done in $((SECONDS - started)) s; run .venv/bin/faultmesh --help"
