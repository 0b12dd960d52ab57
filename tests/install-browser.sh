#!/usr/bin/env bash
# Debian's headless Chromium and its matching chromedriver, for the MLflow UI test in
# tests/tune/test_tune_cli.py (Selenium itself comes from the `dev` extra). `make test` runs this.
# Best effort: where it cannot install (not root, no apt-get, no package index), it says so and
# the browser test skips with the reason; the rest of the suite is unaffected.
set -u
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-browser: needs root and apt-get to install chromium; the MLflow UI test will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
    echo "install-browser: apt-get could not install chromium; the MLflow UI test will skip" >&2
fi
exit 0
