#!/usr/bin/env bash
# Installs what pgguard's demo and tests need on a Debian machine, and only
# what is missing: PostgreSQL 15 (server, client, contrib tools), iproute2,
# HAProxy (the demo's --haproxy and the routing tests), arping (the VIP's
# gratuitous ARP), Chromium (the web console's browser test), promtool (the
# tests check the example alert rules with it; Debian ships it in the
# prometheus package, installed without the node exporter it recommends).
# Go itself must already be installed (Go 1.26 or newer).
set -euo pipefail

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/pgbench ] || need_apt+=(postgresql-contrib)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client-15)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v arping >/dev/null 2>&1 || need_apt+=(iputils-arping)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -x /usr/bin/time ] || need_apt+=(time)  # peak RSS of a command (memory tests and benchmarks)
need_bare=()
command -v promtool >/dev/null 2>&1 || need_bare+=(prometheus)

all=("${need_apt[@]}" "${need_bare[@]}")
if [ ${#all[@]} -gt 0 ]; then
  echo "setup: installing ${all[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
  else
    SUDO=
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  if [ ${#need_apt[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
  if [ ${#need_bare[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${need_bare[@]}" >/dev/null
  fi
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=$PATH:/usr/local/go/bin
fi
if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go is not installed; install Go 1.26 or newer (https://go.dev/doc/install) and run again" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "setup: running as root needs an unprivileged 'postgres' user to run PostgreSQL; install postgresql-common or create the user" >&2
  exit 1
fi
echo "setup: ok ($(go version | cut -d' ' -f3), $(/usr/lib/postgresql/15/bin/postgres --version))"
