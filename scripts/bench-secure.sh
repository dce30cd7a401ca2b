#!/usr/bin/env bash
# What the secure channel costs the chat server, on this machine, in one
# run: the same load against a plain `chat serve` and a secure one
# (`--passphrase-file`, TLS 1.3 + passphrase), where every bench client runs
# the secure handshake before its hello (not counted in the measured
# interval: the bench connects everyone first).
#
#   100 clients x 30,000 messages of 32 bytes, 1 sender   (3 M deliveries)
#   1,000 clients x 3,000 messages of 32 bytes, 1 sender  (3 M deliveries)
#   100 clients at an offered 2,000 messages/s, 4,000 messages (latency
#     below saturation)
#
# The closed-loop cases are as fast as the server delivers, so their
# latency is mostly queueing; the paced one shows the channel's own delay.
# Server CPU comes from /proc in 10 ms ticks: the runs are long enough for
# a few hundred ticks each, not for the last digit of the ratio.
#
# Each case gets a fresh server on a free loopback port, watched by the
# bench (--server-pid); every run is bounded (--timeout, and `timeout`
# around it). Then `soquete bench handshakes` for the handshake rate.
# Prints a table (deliveries/s, latency, server CPU seconds per million
# deliveries, secure/plain CPU ratio); the JSON reports stay in the
# directory it names. Takes well under a minute.
#
# usage: scripts/bench-secure.sh
# env:   SOQUETE_BIN (default: build --release), CARGO_TARGET_DIR
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ -z "${SOQUETE_BIN:-}" ]]; then
    cargo build --release --quiet
    SOQUETE_BIN="${CARGO_TARGET_DIR:-target}/release/soquete"
fi
command -v python3 >/dev/null || { echo "bench-secure: python3 is needed" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

OUT=$(mktemp -d "${TMPDIR:-/tmp}/bench-secure.XXXXXX")
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
PASS_FILE="$OUT/passphrase"
(umask 077 && echo "bench-secure $(date +%s%N) passphrase" >"$PASS_FILE")
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh
trap stop_server EXIT

# Starts a plain or secure server ($1); sets SERVER_PID, ADDR and SECURE
# (the bench's passphrase options, empty for plain).
start_server() {
    local log="$OUT/server-$1-$2.log" secure_serve=()
    SECURE=()
    if [[ "$1" == secure ]]; then
        secure_serve=(--passphrase-file "$PASS_FILE" --state-dir "$OUT/server-state")
        # A fresh client state per case: the server's port changes.
        SECURE=(--passphrase-file "$PASS_FILE" --state-dir "$OUT/client-state-$2")
    fi
    "$SOQUETE_BIN" -q chat serve --listen 127.0.0.1:0 --rate-limit 0 \
        --max-per-ip 0 --history 0 --max-clients 20000 "${secure_serve[@]}" 2>"$log" &
    SERVER_PID=$!
    ADDR=$(wait_listening "$log")
}

# run MODE CLIENTS MESSAGES [bench flags...]
run() {
    local mode=$1 clients=$2 messages=$3 label="$1-$2" status=0 json died=0
    shift 3
    [[ $# -gt 0 ]] && label="$label-paced"
    echo "bench-secure: $label: $clients clients, $messages messages $*" >&2
    if ! start_server "$mode" "$clients"; then
        echo "{\"label\":\"$label\",\"failed\":\"server did not start\"}" >>"$RESULTS"
        stop_server
        return 0
    fi
    json=$(timeout 90 "$SOQUETE_BIN" -q bench chat "$ADDR" "${SECURE[@]}" \
        --clients "$clients" --messages "$messages" --timeout 60s \
        --server-pid "$SERVER_PID" --json "$@" 2>"$OUT/$label.err") || status=$?
    kill -0 "$SERVER_PID" 2>/dev/null || died=1
    stop_server
    record_report "$label" channel "$mode" "$status" "$OUT/$label.err" "$json" "$died" >>"$RESULTS"
}

run plain 100 30000
run secure 100 30000
run plain 1000 3000
run secure 1000 3000
run plain 100 4000 --rate 2000
run secure 100 4000 --rate 2000

echo "bench-secure: handshakes" >&2
HANDSHAKES=$(timeout 60 "$SOQUETE_BIN" -q bench handshakes --seconds 3 --json 2>"$OUT/handshakes.err") \
    || HANDSHAKES='{"failed": true}'
echo "$HANDSHAKES" >"$OUT/handshakes.json"

python3 - "$RESULTS" "$HANDSHAKES" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
head = ["case", "clients", "delivered/expected", "deliv/s", "p50 ms", "p99 ms",
        "cpu s", "cpu s/M", "vs plain", "connect s", "ended"]
def f(v, fmt):
    return fmt.format(v) if isinstance(v, (int, float)) else "-"
def cpu_per_m(r):
    return (r.get("server") or {}).get("cpu_s_per_million")
def case(r):
    return (r.get("clients"), r.get("rate"))
plain = {case(r): cpu_per_m(r) for r in rows if r.get("channel") == "plain"}
table = [head]
for r in rows:
    if "delivered" not in r:
        table.append([r["label"]] + ["-"] * 9 + [r.get("failed", "?")])
        continue
    lat = r.get("latency_ms") or {}
    srv = r.get("server") or {}
    base, mine = plain.get(case(r)), cpu_per_m(r)
    ratio = mine / base if r["channel"] == "secure" and mine and base else None
    table.append([
        r["label"], f(r["clients"], "{:,}"),
        f"{r['delivered']:,}/{r['expected']:,}",
        f(r["deliveries_per_s"], "{:,.0f}"),
        f(lat.get("p50"), "{:.2f}"), f(lat.get("p99"), "{:.2f}"),
        f(srv.get("cpu_s"), "{:.2f}"), f(mine, "{:.3f}"),
        f(ratio, "{:.2f}x"), f(r.get("connect_s"), "{:.2f}"), r["stopped"],
    ])
widths = [max(len(row[i]) for row in table) for i in range(len(head))]
for n, row in enumerate(table):
    print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if n == 0:
        print("  ".join("-" * w for w in widths))
hs = json.loads(sys.argv[2])
print()
if "per_second" in hs:
    print(f"secure handshakes (bench handshakes, {hs['concurrency']} at once, client and "
          f"server in one process): {hs['per_second']:,.0f}/s "
          f"({hs['handshakes']:,} in {hs['seconds']:.1f} s, server failed {hs['server_failed']})")
else:
    print("secure handshakes: the handshake bench failed")
failed = [r for r in rows if r.get("exit")]
if failed:
    print()
    for r in failed:
        died = " [the server process died]" if r.get("server_died") else ""
        print(f"{r['label']}: {r.get('error') or r.get('failed')}{died}")
EOF
echo "bench-secure: reports in $OUT" >&2
