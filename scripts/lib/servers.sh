# Shared by the bench scripts (sourced, not run): start-up and shutdown of
# the server under test. The caller sets SERVER_PID when it starts one.

SERVER_PID=""

# Stops the server in SERVER_PID: Ctrl-C, five seconds to leave, then KILL.
stop_server() {
    [[ -z "$SERVER_PID" ]] && return 0
    kill -INT "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# Waits (10 s at most) for "listening on IP:PORT" in $1; prints IP:PORT.
wait_listening() {
    for _ in $(seq 100); do
        local line
        line=$(grep -m1 -o 'listening on [0-9.:]*' "$1" 2>/dev/null || true)
        if [[ -n "$line" ]]; then
            echo "${line#listening on }"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# record_report LABEL FIELD VALUE STATUS ERRFILE JSON DIED: prints one JSON
# line, the bench's report (or {"failed": ...}) with the case's label,
# FIELD=VALUE (which server or channel), the exit status, whether the
# server died, and the last line of ERRFILE when the bench failed.
record_report() {
    python3 - "$@" <<'PY'
import json, sys
label, field, value, status, errfile, out, died = sys.argv[1:8]
try:
    report = json.loads(out)
except ValueError:
    report = {"failed": "no report"}
lines = [l for l in open(errfile, errors="replace").read().splitlines() if l.strip()]
report.update(label=label, exit=int(status), server_died=died == "1",
              error=lines[-1] if int(status) != 0 and lines else "")
report[field] = value
print(json.dumps(report))
PY
}
