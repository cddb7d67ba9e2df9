#!/usr/bin/env bash
# Runs the whole test suite, on SQLite and on PostgreSQL: `bash scripts/test.sh [cargo test args]`.
#
# With KOOGATE_TEST_POSTGRES_URL set (an admin URL whose role may CREATE DATABASE), it only runs
# `cargo test --workspace --locked "$@"` (without --workspace when the arguments name packages
# with -p). Otherwise it starts a private, throwaway PostgreSQL cluster in a fresh temporary
# directory (never the system's cluster or service), bound to 127.0.0.1 on a free port from
# 54329 upwards, points the tests at it, and stops and deletes it on exit, whether the tests
# pass or not. If the PostgreSQL server binaries are missing and this runs as root with apt-get
# (Debian, Ubuntu), it installs the `postgresql` package first.
#
# The throwaway cluster uses `trust` authentication: it listens on 127.0.0.1 only, holds nothing
# but test data, and lives only as long as this script.
#
# Either way it exports KOOGATE_REQUIRE_POSTGRES=1, so a PostgreSQL test that finds no
# KOOGATE_TEST_POSTGRES_URL fails instead of skipping: this script never passes without them.
set -euo pipefail
cd "$(dirname "$0")/.."

# The whole workspace, unless the arguments pick packages (`-p koogallery`): with --workspace,
# cargo would ignore -p and test every package.
scope=--workspace
for arg in "$@"; do
    case $arg in
        --) break ;;
        -p | -p?* | --package | --package=*) scope= ;;
    esac
done
run_tests() { cargo test ${scope:+"$scope"} --locked "$@"; }

# Both ways below (the given server, or a throwaway cluster): the PostgreSQL tests must run.
export KOOGATE_REQUIRE_POSTGRES=1

if [ -n "${KOOGATE_TEST_POSTGRES_URL:-}" ]; then
    run_tests "$@"
    exit
fi

say() { echo "test.sh: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# --- PostgreSQL server binaries --------------------------------------------------------------

# Prints the directory holding initdb, pg_ctl and postgres: the newest /usr/lib/postgresql/N/bin
# (Debian, Ubuntu), else the one on PATH (Homebrew, other distributions).
find_pg_bin() {
    local dir best="" best_version=-1 version
    for dir in /usr/lib/postgresql/*/bin; do
        if [ ! -x "$dir/initdb" ] || [ ! -x "$dir/pg_ctl" ] || [ ! -x "$dir/postgres" ]; then
            continue
        fi
        version=$(basename "$(dirname "$dir")")
        version=${version%%.*}
        case $version in '' | *[!0-9]*) version=0 ;; esac
        if [ "$version" -gt "$best_version" ]; then
            best=$dir
            best_version=$version
        fi
    done
    if [ -z "$best" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        best=$(dirname "$(command -v pg_ctl)")
    fi
    [ -n "$best" ] && echo "$best"
}

is_root=false
[ "$(id -u)" -eq 0 ] && is_root=true

pg_bin=$(find_pg_bin || true)
if [ -z "$pg_bin" ]; then
    if $is_root && command -v apt-get >/dev/null 2>&1; then
        say "PostgreSQL server not found; installing Debian's postgresql package (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        pg_bin=$(find_pg_bin || true)
        [ -n "$pg_bin" ] || die "installed postgresql, but still no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
    else
        die "the PostgreSQL tests need a PostgreSQL server, and none was found
  (no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH). Either:
  - install the server: 'sudo apt-get install postgresql' (Debian, Ubuntu),
    'sudo dnf install postgresql-server' (Fedora), 'brew install postgresql' (macOS),
    or run this script as root on Debian, which installs it; or
  - point the tests at a server you already have, with a role allowed to CREATE DATABASE:
    KOOGATE_TEST_POSTGRES_URL=postgres://USER:PASSWORD@HOST:PORT/postgres bash scripts/test.sh"
    fi
fi

# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user.
if $is_root; then
    id postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' user to run PostgreSQL as
  (create one, run this script as a normal user, or set KOOGATE_TEST_POSTGRES_URL)"
    command -v runuser >/dev/null 2>&1 || die "running as root, but runuser (util-linux) is missing"
    # From /, so that it works even when `postgres` cannot read the repository directory.
    as_pg() { (cd / && runuser -u postgres -- "$@"); }
    tmp=$(mktemp -d /tmp/koogate-pg.XXXXXXXX)
    chown postgres: "$tmp"
else
    as_pg() { (cd / && "$@"); }
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/koogate-pg.XXXXXXXX")
fi
data=$tmp/data
log=$tmp/postgres.log
started=false

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local status=$? pid _
    set +e
    if $started; then
        pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
        if ! as_pg "$pg_bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
            # Could not stop it cleanly: make sure no server outlives the script.
            [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null
        fi
        # pg_ctl returns once the pid file is gone; wait (briefly) for the process itself to exit
        # (an exited one may linger as a zombie until init reaps it: that one is gone).
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            case $(ps -o stat= -p "${pid:-0}" 2>/dev/null || true) in
                '' | Z*) break ;;
            esac
            sleep 0.2
        done
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The throwaway cluster ---------------------------------------------------------------------

if ! as_pg "$pg_bin/initdb" -D "$data" -U koogate -A trust -E UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1; then
    cat "$tmp/initdb.log" >&2
    die "initdb failed"
fi
# Settings for a disposable test server: loopback only, its own socket directory, no durability.
cat >>"$data/postgresql.conf" <<EOF

# scripts/test.sh: throwaway test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$tmp'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port=54329
while :; do
    [ "$port" -le 54428 ] || die "no free port for PostgreSQL between 54329 and 54428"
    if port_in_use "$port"; then
        port=$((port + 1))
        continue
    fi
    started=true
    if as_pg "$pg_bin/pg_ctl" -D "$data" -l "$log" -o "-p $port" -w -t 60 start >/dev/null 2>&1; then
        break
    fi
    # Another process took the port between the check and the start: try the next one.
    if grep -q "could not bind\|could not create any TCP/IP sockets" "$log" 2>/dev/null; then
        : >"$log"
        port=$((port + 1))
        continue
    fi
    cat "$log" >&2 || true
    die "PostgreSQL did not start (log above)"
done

export KOOGATE_TEST_POSTGRES_URL="postgres://koogate@127.0.0.1:$port/postgres"
say "throwaway PostgreSQL $("$pg_bin/postgres" --version 2>/dev/null | awk '{print $3}') on 127.0.0.1:$port ($data), removed on exit"

status=0
run_tests "$@" || status=$?
exit "$status"
