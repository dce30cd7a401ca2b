#!/usr/bin/env bash
# Compares chat servers under the same load, on this machine, in one run:
# soquete (native protocol) against `ncat --chat` and the chapter's
# Servidor.py (tests/peers/chapter_chat_server.py), both driven raw.
#
#   100 clients x 10,000 messages of 32 bytes, 1 sender and 10 senders
#   1,000 clients x 10,000 messages and 10,000 clients x 1,000 messages
#     (soquete and ncat; ncat's select() loop is expected to give out past
#     about 1,020 connections: whatever happens is recorded)
#   latency at an offered 1,000 messages/s, 100 clients (the bench on one
#     thread, so its own cross-thread wake-ups stay out of the latencies)
#
# Each case gets a fresh server on a free loopback port, and the bench
# watches its CPU and memory (--server-pid). Every run is bounded
# (--timeout, and `timeout` around it); servers are stopped at the end.
# Prints a table; the JSON reports stay in the directory it names.
#
# Takes about five minutes (the 10,000-client join is most of it).
#
# The 100-client cases last well under a second each, so one run says
# little on a shared machine: --repeat N runs them N times, the servers
# taking turns, and the table gives the median of each figure (the 1,000-
# and 10,000-client cases run once).
#
# usage: scripts/bench-chat.sh [--quick] [--repeat N] [--no-large]
#        (--quick: a tenth of the messages; --no-large: only the
#        100-client cases)
# env:   SOQUETE_BIN (default: build --release), CARGO_TARGET_DIR
set -euo pipefail

cd "$(dirname "$0")/.."
SCALE=1
REPEAT=1
LARGE=1
while (($#)); do
    case "$1" in
    --quick) SCALE=10 ;;
    --no-large) LARGE=0 ;;
    --repeat)
        REPEAT=${2:?--repeat needs a count}
        shift
        ;;
    *)
        echo "usage: scripts/bench-chat.sh [--quick] [--repeat N] [--no-large]" >&2
        exit 2
        ;;
    esac
    shift
done
[[ "$REPEAT" =~ ^[1-9][0-9]?$ ]] || { echo "bench-chat: --repeat takes 1 to 99" >&2; exit 2; }

if [[ -z "${SOQUETE_BIN:-}" ]]; then
    cargo build --release --quiet
    SOQUETE_BIN="${CARGO_TARGET_DIR:-target}/release/soquete"
fi
command -v python3 >/dev/null || { echo "bench-chat: python3 is needed" >&2; exit 1; }
HAVE_NCAT=1
command -v ncat >/dev/null || { HAVE_NCAT=0; echo "bench-chat: ncat not found, skipping it (apt-get install ncat)" >&2; }

# 10,000 clients need 10,000 descriptors in the server and in the bench.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < 10100 )); then
    echo "bench-chat: open-file limit $(ulimit -n): the 10,000-client cases will fail" >&2
fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/bench-chat.XXXXXX")
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh
trap stop_server EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (10 s at most) until something accepts on $1 (ip:port).
wait_port() {
    python3 - "$1" <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
for _ in range(100):
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
}

# Starts server $1 (soquete | ncat | python); sets SERVER_PID and ADDR.
start_server() {
    local log="$OUT/$1.log"
    case "$1" in
    soquete | soquete-nodelay)
        local extra=()
        [[ "$1" == soquete-nodelay ]] && extra=(--nodelay)
        "$SOQUETE_BIN" -q chat serve --listen 127.0.0.1:0 --rate-limit 0 \
            --max-per-ip 0 --history 0 --max-clients 20000 "${extra[@]}" 2>"$log" &
        SERVER_PID=$!
        ADDR=$(wait_listening "$log")
        ;;
    python)
        python3 tests/peers/chapter_chat_server.py 0 2>"$log" &
        SERVER_PID=$!
        ADDR=$(wait_listening "$log")
        ;;
    ncat)
        ADDR="127.0.0.1:$(free_port)"
        ncat --chat -l --max-conns 20000 127.0.0.1 "${ADDR##*:}" 2>"$log" &
        SERVER_PID=$!
        wait_port "$ADDR"
        ;;
    esac
}

# run LABEL SERVER CLIENTS MESSAGES SENDERS [bench flags...]
run() {
    local label=$1 server=$2 clients=$3 messages=$((($4 + SCALE - 1) / SCALE)) senders=$5
    shift 5
    local mode=() timeout_s=${TIMEOUT:-150}
    [[ "$server" != soquete* ]] && mode=(--raw)
    if [[ "$server" == ncat && "$HAVE_NCAT" == 0 ]]; then
        return 0
    fi
    echo "bench-chat: $label: $server, $clients clients, $messages messages, $senders senders $*" >&2
    if ! start_server "$server"; then
        echo "{\"label\":\"$label\",\"server_name\":\"$server\",\"failed\":\"server did not start\"}" >>"$RESULTS"
        stop_server
        return 0
    fi
    local json status=0 died=0
    json=$(timeout $((timeout_s + 30)) "$SOQUETE_BIN" -q bench chat "$ADDR" "${mode[@]}" \
        --clients "$clients" --messages "$messages" --senders "$senders" \
        --timeout "${timeout_s}s" --server-pid "$SERVER_PID" --json "$@" \
        2>"$OUT/$label.err") || status=$?
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "bench-chat: $label: the $server server is gone (it died during the run)" >&2
        died=1
    fi
    stop_server
    record_report "$label" server_name "$server" "$status" "$OUT/$label.err" "$json" "$died" >>"$RESULTS"
}

for _ in $(seq "$REPEAT"); do
    run s1-soquete soquete 100 10000 1
    run s1-nodelay soquete-nodelay 100 10000 1
    run s1-ncat ncat 100 10000 1
    run s1-python python 100 10000 1
    run s10-soquete soquete 100 10000 10
    run s10-nodelay soquete-nodelay 100 10000 10
    run s10-ncat ncat 100 10000 10
    run s10-python python 100 10000 10
    run r1k-soquete soquete 100 5000 1 --rate 1000 --threads 1
    run r1k-nodelay soquete-nodelay 100 5000 1 --rate 1000 --threads 1
    run r1k-ncat ncat 100 5000 1 --rate 1000 --threads 1
    run r1k-python python 100 5000 1 --rate 1000 --threads 1
done
if ((LARGE)); then
    run c1k-soquete soquete 1000 10000 1
    run c1k-ncat ncat 1000 10000 1
    # Joining a lobby of 10,000 takes the server a while: give it time.
    TIMEOUT=400 run c10k-soquete soquete 10000 1000 1
    run c10k-ncat ncat 10000 1000 1
fi

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]

def median_of(group):
    """One row per case: the median of every figure over its runs."""
    first = dict(group[0])
    first["runs"] = len(group)
    ok = [r for r in group if "delivered" in r]
    if not ok:
        return first
    med = lambda vals: statistics.median(vals) if vals else None
    row = dict(ok[0], runs=len(group))
    for key in ("delivered", "expected", "deliveries_per_s"):
        row[key] = med([r[key] for r in ok])
    row["latency_ms"] = {k: med([r["latency_ms"][k] for r in ok if r.get("latency_ms")])
                         for k in ("p50", "p99", "max")}
    srv = [r["server"] for r in ok if r.get("server")]
    row["server"] = {k: med([s[k] for s in srv if s.get(k) is not None])
                     for k in ("cpu_s", "cpu_s_per_million", "peak_rss_kib")} if srv else None
    row["errors"] = {k: max(r["errors"].get(k, 0) for r in ok) for k in ok[0]["errors"]}
    row["exit"] = max(r.get("exit", 0) for r in group)
    row["error"] = next((r["error"] for r in group if r.get("error")), "")
    return row

order = list(dict.fromkeys(r["label"] for r in runs))
rows = [median_of([r for r in runs if r["label"] == label]) for label in order]
head = ["case", "server", "runs", "clients", "send", "msgs", "delivered/expected", "deliv/s",
        "p50 ms", "p99 ms", "max ms", "cpu s", "cpu s/M", "peak MiB", "errors", "ended"]
table = [head]
def f(v, fmt):
    return fmt.format(v) if isinstance(v, (int, float)) else "-"
for r in rows:
    if "delivered" not in r:
        table.append([r["label"], r["server_name"], str(r["runs"])] + ["-"] * 12 + [r.get("failed", "?")])
        continue
    lat = r.get("latency_ms") or {}
    srv = r.get("server") or {}
    errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items() if v) or "0"
    peak = srv.get("peak_rss_kib")
    table.append([
        r["label"], r["server_name"], str(r["runs"]), f(r["clients"], "{:,}"), str(r["senders"]),
        f(r["messages"], "{:,}"),
        f"{r['delivered']:,.0f}/{r['expected']:,.0f}" + ("" if r.get("server_echoes") in (True, None) else " (no echo)"),
        f(r["deliveries_per_s"], "{:,.0f}"),
        f(lat.get("p50"), "{:.2f}"), f(lat.get("p99"), "{:.2f}"), f(lat.get("max"), "{:.2f}"),
        f(srv.get("cpu_s"), "{:.2f}"), f(srv.get("cpu_s_per_million"), "{:.3f}"),
        f(peak / 1024 if peak else None, "{:.1f}"), errs, r["stopped"],
    ])
widths = [max(len(row[i]) for row in table) for i in range(len(head))]
for n, row in enumerate(table):
    print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if n == 0:
        print("  ".join("-" * w for w in widths))
failed = [r for r in rows if r.get("exit")]
if failed:
    print()
    for r in failed:
        died = " [the server process died]" if r.get("server_died") else ""
        print(f"{r['label']}: {r.get('error') or r.get('failed')}{died}")
EOF
echo "bench-chat: reports in $RESULTS" >&2
