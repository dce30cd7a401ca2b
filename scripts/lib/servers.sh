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
