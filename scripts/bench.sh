#!/usr/bin/env bash
# Server throughput, koogate against its peer in the same run:
#   bash scripts/bench.sh [--duration SECS] [--concurrency N] [--runs N] [--out PATH] [--quick]
#
# Builds koogate (release) and a Python venv for the FastAPI peer (bench/peers/fastapi), then, for
# each run, each activity (newInstance, queryInstance) and each server (koogate on SQLite, the
# peer, and koogate on PostgreSQL when KOOGATE_BENCH_POSTGRES_URL is set), interleaved: starts the
# server fresh on an empty database, waits until it answers, drives it with
# `koogate load --baseline --json` (the same client, activity, concurrency and duration for every
# server; the in-process baseline is measured first in the same invocation), and stops it.
# Finally it prints a markdown table of medians, min–max ranges, ratios to the in-run baseline and
# to the peer, and the provisioned counts of newInstance, and writes it to --out (default
# target/bench/results.md; the raw JSON of every run goes to target/bench/results-raw/).
#
#   --duration SECS   measured seconds per run (default 10)
#   --concurrency N   koogate load workers (default 64)
#   --runs N          runs per server and activity (default 3)
#   --quick           1 run of 3 s each: a smoke test of the whole chain
#
# KOOGATE_BENCH_POSTGRES_URL: an admin URL of a PostgreSQL server on this machine, whose role may
# CREATE DATABASE, of the form postgres://USER[:PASSWORD]@127.0.0.1:PORT/DBNAME. Each run gets a
# database of its own, dropped afterwards. Needs psql.
#
# Everything listens on and connects to 127.0.0.1 only. Every wait is bounded, and every server
# this script starts is stopped when it exits, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { echo "bench.sh: $*" >&2; }
die() {
    say "$*"
    exit 1
}
usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
}

duration=10
concurrency=64
runs=3
out=target/bench/results.md
whole_number() { # NAME VALUE MIN MAX
    case $2 in '' | *[!0-9]*) die "$1 must be a whole number, got '$2'" ;; esac
    [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || die "$1 must be between $3 and $4, got $2"
}
while [ $# -gt 0 ]; do
    case $1 in
        --duration) [ $# -ge 2 ] || usage; whole_number --duration "$2" 1 3600; duration=$2; shift 2 ;;
        --concurrency) [ $# -ge 2 ] || usage; whole_number --concurrency "$2" 1 4096; concurrency=$2; shift 2 ;;
        --runs) [ $# -ge 2 ] || usage; whole_number --runs "$2" 1 50; runs=$2; shift 2 ;;
        --out) [ $# -ge 2 ] && [ -n "$2" ] || usage; out=$2; shift 2 ;;
        --quick) runs=1; duration=3; shift ;;
        -h | --help) usage ;;
        *) say "unknown argument: $1"; usage ;;
    esac
done

# No inherited setting may change what the servers do (a KOOGATE_DATABASE_URL, say).
for var in $(compgen -e); do
    case $var in
        KOOGATE_BENCH_POSTGRES_URL) ;;
        KOOGATE_*) unset "$var" ;;
    esac
done
pg_admin=${KOOGATE_BENCH_POSTGRES_URL:-}
if [ -n "$pg_admin" ]; then
    case $pg_admin in
        postgres://*@127.0.0.1:*/* | postgresql://*@127.0.0.1:*/* | postgres://*@localhost:*/* | postgresql://*@localhost:*/*) ;;
        *) die "KOOGATE_BENCH_POSTGRES_URL must be postgres://USER@127.0.0.1:PORT/DBNAME (loopback only)" ;;
    esac
    case $pg_admin in *\?*) die "KOOGATE_BENCH_POSTGRES_URL must not have a query string" ;; esac
    command -v psql >/dev/null 2>&1 || die "KOOGATE_BENCH_POSTGRES_URL is set, but psql is missing"
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed (the peer, and the summary)"

# --- Builds ------------------------------------------------------------------------------------

say "building koogate (release)"
cargo build --release -p koogate >&2
kg=$root/target/release/koogate
venv=$root/target/bench/venv
if [ ! -x "$venv/bin/uvicorn" ]; then
    say "creating the peer's venv in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r bench/peers/fastapi/requirements.txt >&2

# --- Servers -----------------------------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/koogate-bench.XXXXXXXX")
server_pid=
pg_db=

# shellcheck disable=SC2317 # run by stop_server and the EXIT trap
stop_server() {
    local pid=$server_pid _
    server_pid=
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do # 10 s, then it is killed
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            pkill -KILL -P "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
    if [ -n "$pg_db" ]; then
        psql "$pg_admin" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 ||
            say "could not drop the database $pg_db"
        pg_db=
    fi
}
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local status=$?
    set +e
    stop_server
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (at most 30 s) until http://127.0.0.1:PORT/PATH answers 200, or the server exits.
wait_ready() { # PORT PATH LOG
    local _
    for _ in $(seq 300); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            tail -n 20 "$3" >&2 || true
            die "the server exited before it was ready (log above)"
        fi
        if python3 -c 'import sys, urllib.request
sys.exit(urllib.request.urlopen(sys.argv[1], timeout=1).status != 200)' "http://127.0.0.1:$1$2" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$3" >&2 || true
    die "the server did not answer http://127.0.0.1:$1$2 within 30 s (log above)"
}

key="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

# Starts SERVER (koogate-sqlite, peer, koogate-postgres) fresh on PORT, in its own directory.
start_server() { # SERVER PORT DIR
    local server=$1 port=$2 dir=$3
    mkdir -p "$dir"
    case $server in
        koogate-sqlite)
            (cd "$dir" && KOOGATE_BASIC_KEY=$key exec "$kg" serve --listen "127.0.0.1:$port" \
                --data-dir "$dir/data") >"$dir/log" 2>&1 &
            server_pid=$!
            wait_ready "$port" /readyz "$dir/log"
            ;;
        koogate-postgres)
            pg_db="koogate_bench_$$_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
            psql "$pg_admin" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $pg_db" >/dev/null
            (cd "$dir" && KOOGATE_BASIC_KEY=$key KOOGATE_DATABASE_URL="${pg_admin%/*}/$pg_db" \
                exec "$kg" serve --listen "127.0.0.1:$port" --data-dir "$dir/data") >"$dir/log" 2>&1 &
            server_pid=$!
            wait_ready "$port" /readyz "$dir/log"
            ;;
        peer)
            (cd "$dir" && KOOGALLERY_ACCESS_KEY=$key PEER_DB_PATH="$dir/peer.db" PYTHONDONTWRITEBYTECODE=1 \
                exec "$venv/bin/uvicorn" \
                --app-dir "$root/bench/peers/fastapi" app:app --host 127.0.0.1 --port "$port" \
                --workers 2 --no-access-log --log-level warning) >"$dir/log" 2>&1 &
            server_pid=$!
            wait_ready "$port" /healthz "$dir/log"
            ;;
    esac
}

# --- Runs --------------------------------------------------------------------------------------

servers=(koogate-sqlite peer)
[ -n "$pg_admin" ] && servers+=(koogate-postgres)
activities=(newInstance queryInstance)
raw=$tmp/raw
mkdir -p "$raw"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
say "$runs run(s) of ${duration}s at concurrency $concurrency: ${servers[*]} × ${activities[*]}"

for run in $(seq "$runs"); do
    for activity in "${activities[@]}"; do
        for server in "${servers[@]}"; do
            name=$server-$activity-$run
            port=$(free_port)
            start_server "$server" "$port" "$tmp/$name"
            say "run $run/$runs: $activity against $server (127.0.0.1:$port)"
            if ! "$kg" load --url "http://127.0.0.1:$port/produce" --key "$key" \
                --activity "$activity" --concurrency "$concurrency" --duration "${duration}s" \
                --baseline --json >"$raw/$name.json" 2>"$raw/$name.stderr"; then
                say "koogate load failed against $server:"
                cat "$raw/$name.stderr" >&2
                rm -f "$raw/$name.json"
            elif [ -s "$raw/$name.stderr" ]; then
                cat "$raw/$name.stderr" >&2
            fi
            stop_server
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Summary -----------------------------------------------------------------------------------

mkdir -p "$(dirname "$out")"
raw_out=${out%.*}-raw
mkdir -p "$raw_out"
rm -f "$raw_out"/*-*-*.json "$raw_out"/*-*-*.stderr
cp "$raw"/* "$raw_out"/ 2>/dev/null || true
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
python3 - "$raw" "$runs" "$duration" "$concurrency" "$started" "$load_start" "$load_end" \
    "$(nproc)" "$commit" "${servers[*]}" "${activities[*]}" >"$tmp/results.md" <<'EOF'
import json, os, statistics, sys

raw, runs, duration, concurrency, started, load_start, load_end, nproc, commit = sys.argv[1:10]
servers, activities = sys.argv[10].split(), sys.argv[11].split()
runs = int(runs)


def load(server, activity):
    reports = []
    for run in range(1, runs + 1):
        path = os.path.join(raw, f"{server}-{activity}-{run}.json")
        if os.path.exists(path):
            with open(path) as f:
                reports.append(json.load(f))
    return reports


def spread(values, fmt):
    if not values:
        return "–"
    med = fmt(statistics.median(values))
    return med if len(values) == 1 else f"{med} ({fmt(min(values))}–{fmt(max(values))})"


rate = lambda x: f"{x:,.0f}"
ratio = lambda x: f"{x:.3f}"
ms = lambda x: f"{x:.1f}"

print(f"Server throughput, `koogate load --baseline` against each server (`scripts/bench.sh`)\n")
print(f"- Date: {started}; commit {commit}")
print(f"- Machine: `nproc` = {nproc}; load average (1, 5, 15 min) {load_start} at the start, {load_end} at the end")
print(f"- Shape: {runs} run(s) per server and activity, interleaved, each on a fresh server and database; "
      f"concurrency {concurrency}, {duration} s measured per phase, closed model")
print("- Cells: median of the runs, with the range (min–max) in brackets when there are several. "
      "`ratio to baseline` is each run's target/baseline throughput; `ratio to peer` divides the median "
      "throughput by the peer's median for the same activity.\n")
print("| server | activity | req/s | baseline req/s | ratio to baseline | ratio to peer | p99 ms | provisioned / created | errors | runs |")
print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|")
peer_median = {}
for activity in activities:
    reports = load("peer", activity)
    if reports:
        peer_median[activity] = statistics.median(r["throughput_rps"] for r in reports)
notes = []
for activity in activities:
    for server in servers:
        reports = load(server, activity)
        thr = [r["throughput_rps"] for r in reports]
        base = [r["baseline"]["throughput_rps"] for r in reports if "baseline" in r]
        rat = [r["ratio_to_baseline"] for r in reports if r.get("ratio_to_baseline") is not None]
        p99 = [r["latency_ms"]["p99"] for r in reports]
        peer = peer_median.get(activity)
        to_peer = f"{statistics.median(thr) / peer:.2f}×" if thr and peer else "–"
        if "created" in (reports[0] if reports else {}):
            prov = "; ".join(f"{r['provisioned']:,} / {r['created']:,}" for r in reports)
        else:
            prov = "–"
        errors = sum(r["http_errors"] + r["transport_errors"] + r["body_sign_mismatches"] for r in reports)
        print(f"| {server} | {activity} | {spread(thr, rate)} | {spread(base, rate)} | {spread(rat, ratio)} "
              f"| {to_peer} | {spread(p99, ms)} | {prov} | {errors} | {len(reports)} of {runs} |")
        for r in reports:
            codes = {c: n for c, n in r["result_codes"].items() if c not in ("000000", "000004")}
            if codes:
                notes.append(f"{server} {activity}: unexpected result codes {codes}")
            if r.get("created") is not None and r["provisioned"] < r["created"]:
                notes.append(f"{server} {activity}: {r['created'] - r['provisioned']:,} of {r['created']:,} created "
                             f"instances not confirmed provisioned {r['settle_s']:g} s after the measurement "
                             f"({r['still_provisioning']:,} last answered `000004`)")
print()
print("`provisioned / created`: per run, of the instances whose `newInstance` was accepted (`000000` or "
      "`000004`), those that `queryInstance` answered `000000` by the end of `koogate load`'s check: up to "
      "10 s (`--settle-secs`) of waiting after the measurement, then one last look at those still pending. "
      "`errors`: HTTP, transport and `Body-Sign` errors, all runs.")
for note in notes:
    print(f"\n- {note}")
EOF
cp "$tmp/results.md" "$out"
cat "$tmp/results.md"
say "written to $out (the raw JSON of every run in $raw_out)"
