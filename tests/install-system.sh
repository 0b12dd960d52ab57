#!/usr/bin/env bash
# Debian packages some tests need beyond the Python environment; `make test` runs this.
#   chromium, chromium-driver   the MLflow UI test (tests/tune/test_tune_cli.py; Selenium itself
#                               comes from the `dev` extra)
#   openssh-server, rsync       the cluster rehearsal (tests/cluster/test_rehearsal.py): `ray up`
#                               reaches each rehearsal machine over SSH and syncs the checkout
#                               with rsync; iproute2 and util-linux make the machines
# Best effort: where it cannot install (not root, no apt-get, no package index), it says so and
# those tests skip with the reason; the rest of the suite is unaffected.
set -u
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v rsync >/dev/null || need+=(rsync)
command -v ip >/dev/null || need+=(iproute2)
command -v curl >/dev/null || need+=(curl)
[ ${#need[@]} = 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-system: needs root and apt-get to install ${need[*]}; the tests that use them will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    echo "install-system: apt-get could not install ${need[*]}; the tests that use them will skip" >&2
fi
exit 0
