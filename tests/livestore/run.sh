#!/usr/bin/env bash
# Real LiveStore 0.4.0 clients (@livestore/adapter-node + @livestore/sync-cf, pinned in
# package-lock.json, installed with `npm ci`) against `eventsync serve`, over WebSocket and
# HTTP, on memory, a folder, and S3 when EVENTSYNC_TEST_S3_URL is set (scripts/test sets it):
#   - two LiveStore clients commit at the same moment and converge on identical todos, and the
#     server's log shows at least one ServerAheadError over the runs (the rebase path);
#   - the backend holds every event once, in order, gapless (`eventsync log --json`), and an
#     eventsync CLI client syncing straight from the backend sees the same todos;
#   - more than 100 events: a fresh client's pull pages, with MoreKnown before the last chunk;
#   - the server restarted over the kept log: a client with its databases on disk resumes from
#     its cursor, commits more, and a fresh client sees all of it;
#   - two `serve` processes over one backend, one client on each, converge;
#   - LiveStore's own CLI (`livestore sync export|import`) through the server, both ways with
#     `eventsync export|import`;
#   - a LiveStore web page (browser/: @livestore/adapter-web, built with Vite) in headless
#     Chromium commits a todo, a node client sees it through the server, and the page lists the
#     node client's todo (ws and http, a folder); a screenshot goes to $LIVESTORE_ARTIFACTS
#     (default .build/livestore/). Chromium is installed with apt-get when missing (a failure
#     under CI=true, else reported as `livestore browser: NOT RUN`).
# Needs node >= 20 and npm. Usage: tests/livestore/run.sh [path/to/eventsync]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/target/debug/eventsync}"
[ -x "$bin" ] || { echo "livestore: no eventsync binary at $bin (cargo build -p eventsync-cli)" >&2; exit 2; }
# An absolute path: the cases run from this folder.
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
cd "$here"
[ -d node_modules/@livestore/sync-cf ] || npm ci --no-audit --no-fund --ignore-scripts
work="$(mktemp -d)"
servers=()
helpers=()
cleanup() {
    local pid
    for pid in "${helpers[@]}" "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${helpers[@]}" "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "${LIVESTORE_KEEP:-}" ] && echo "livestore: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
# Screenshots of the browser case: kept after the run (the path is printed).
artifacts="${LIVESTORE_ARTIFACTS:-$root/.build/livestore}"
mkdir -p "$artifacts"
artifacts="$(cd "$artifacts" && pwd)"
. "$root/scripts/lib.sh"
in_ci() {
    case "${CI:-}" in
        "" | false | 0 | no) return 1 ;;
        *) return 0 ;;
    esac
}
node_flags=(--experimental-websocket)
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 22 ] && node_flags=()

fail() { # label message
    echo "livestore $1: FAILED: $2" >&2
    exit 1
}

# start_server LABEL BACKEND: starts `eventsync serve` on a free port; sets $addr and $pid.
start_server() {
    local label="$1" backend="$2"
    RUST_LOG=info,eventsync_server=debug "$bin" --backend "$backend" serve --listen 127.0.0.1:0 \
        --auth-token tok >"$work/$label.server.out" 2>>"$work/$label.server.log" &
    pid=$!
    servers+=("$pid")
    addr=""
    for _ in $(seq 300); do
        addr="$(sed -n 's/.*listening on \([0-9.:]*\) .*/\1/p' "$work/$label.server.out")"
        [ -n "$addr" ] && return 0
        sleep 0.1
    done
    cat "$work/$label.server.log" >&2
    fail "$label" "the server did not start"
}

# stop_server PID LABEL: SIGTERM, and it must exit cleanly.
stop_server() {
    kill -TERM "$1"
    wait "$1" || fail "$2" "serve did not stop cleanly"
    local kept=() p
    for p in "${servers[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    servers=("${kept[@]+"${kept[@]}"}")
}

url_of() { # transport addr
    if [ "$1" = ws ]; then echo "ws://$2/sync"; else echo "http://$2/sync"; fi
}

# client NAME TRANSPORT URL N EXPECTED [ENV...]: runs one LiveStore client in the background;
# its output is $work/NAME.out / .err; sets $client_pid.
client() {
    local name="$1" transport="$2" url="$3" n="$4" expected="$5"
    shift 5
    env "$@" node "${node_flags[@]}" client.mjs "$name" "$transport" s1 "$n" "$expected" "$url" tok \
        >"$work/$name.out" 2>"$work/$name.err" &
    client_pid=$!
}

ids_of() { sed -n 's/^IDS //p' "$work/$1.out"; }

# expect_same LABEL A B: both clients exited 0 and saw the same todos.
wait_and_compare() { # label pidA nameA pidB nameB
    local label="$1" failed=0
    wait "$2" || failed=1
    wait "$4" || failed=1
    if [ "$failed" = 1 ] || [ "$(ids_of "$3")" != "$(ids_of "$5")" ]; then
        echo "$3: $(ids_of "$3")" >&2
        echo "$5: $(ids_of "$5")" >&2
        tail -n 20 "$work/$3.err" "$work/$5.err" >&2
        fail "$label" "the clients did not converge"
    fi
}

# The backend's log: every event once, numbered 1..N; and an eventsync client sees the todos.
check_backend() { # label backend total ids-file-name
    local label="$1" backend="$2" total="$3" name="$4" data="$work/cli-$1"
    local seqs expected
    seqs="$("$bin" --backend "$backend" --store s1 --data-dir "$data" log --json |
        node -e 'const l=require("fs").readFileSync(0,"utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
                 console.log(l.map(e=>e.seqNum).join(","))')"
    expected="$(seq -s, 1 "$total")"
    [ "$seqs" = "$expected" ] || fail "$label" "the backend's log is [$seqs], expected [$expected]"
    "$bin" --backend "$backend" --store s1 --data-dir "$data" sync >/dev/null
    "$bin" --backend "$backend" --store s1 --data-dir "$data" todo list --json |
        node -e 'const t=JSON.parse(require("fs").readFileSync(0,"utf8")).map(t=>t.id).sort();
                 console.log(JSON.stringify(t))' >"$work/$label.cli"
    [ "$(cat "$work/$label.cli")" = "$(ids_of "$name")" ] ||
        fail "$label" "the eventsync CLI client sees $(cat "$work/$label.cli"), LiveStore $(ids_of "$name")"
}

# wait_for_log LABEL BACKEND N: waits (60 s at most) until the backend's log holds N events: a
# client that saw its own todos may not have pushed them yet.
wait_for_log() {
    local count=0
    for _ in $(seq 600); do
        count="$("$bin" --backend "$2" --store s1 --data-dir "$work/poll-$1" log --json 2>/dev/null | grep -c seqNum || true)"
        [ "$count" -ge "$3" ] && return 0
        sleep 0.1
    done
    fail "$1" "the backend's log holds $count events, not $3, after 60 s"
}

# stop_client PID: the client lingers; stop it once what it pushed is in the backend.
stop_client() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The server's log since line $2, without colours.
log_since() { # label line
    tail -n +"$(($2 + 1))" "$work/$1.server.log" | sed 's/\x1b\[[0-9;]*m//g'
}

aheads() { grep -c ServerAheadError "$work/$1.server.log" || true; }
ahead_total=0

# Two clients commit 6 todos each at the same moment through one server.
pair_case() { # transport backend label
    local transport="$1" backend="$2" label="$3" n=6 a b
    start_server "$label" "$backend"
    local url ready="$work/$label.ready"
    url="$(url_of "$transport" "$addr")"
    mkdir -p "$ready"
    client "$label-A" "$transport" "$url" "$n" $((2 * n)) READY_DIR="$ready" PEERS="$label-A,$label-B"
    a=$client_pid
    client "$label-B" "$transport" "$url" "$n" $((2 * n)) READY_DIR="$ready" PEERS="$label-A,$label-B"
    b=$client_pid
    wait_and_compare "$label" "$a" "$label-A" "$b" "$label-B"
    stop_server "$pid" "$label"
    ahead_total=$((ahead_total + $(aheads "$label")))
    [ "$backend" = memory:// ] || check_backend "$label" "$backend" $((2 * n)) "$label-A"
    echo "livestore $label: two clients converged on $((2 * n)) todos ($(aheads "$label") ServerAheadError)"
}

# 110 events, then a fresh client: its first pull pages (100 events a chunk, MoreKnown first).
paging_case() { # transport backend label
    local transport="$1" backend="$2" label="$3" n=110 c
    start_server "$label" "$backend"
    local url
    url="$(url_of "$transport" "$addr")"
    client "$label-A" "$transport" "$url" "$n" "$n" LINGER_MS=60000
    wait_for_log "$label" "$backend" "$n"
    stop_client "$client_pid"
    local lines
    lines="$(wc -l <"$work/$label.server.log")"
    client "$label-C" "$transport" "$url" 0 "$n" LINGER_MS=0
    c=$client_pid
    wait "$c" || fail "$label" "the fresh client did not see $n todos"
    [ "$(ids_of "$label-C")" = "$(ids_of "$label-A")" ] || fail "$label" "the fresh client's todos differ"
    log_since "$label" "$lines" | grep -q 'pull: chunk.*MoreKnown(10)' ||
        fail "$label" "the fresh client's pull did not page with MoreKnown(10) after 100 events"
    stop_server "$pid" "$label"
    echo "livestore $label: a fresh client pulled $n events in pages (MoreKnown, then NoMore)"
}

# A client keeps its databases on disk; the server restarts over the same log.
restart_case() { # transport backend label
    local transport="$1" backend="$2" label="$3" url
    local storage="$work/$label.storage"
    mkdir -p "$storage"
    start_server "$label" "$backend"
    url="$(url_of "$transport" "$addr")"
    # The first run stops once its events are in the log and it had 3 s more to take the echo
    # of its push (the server sends it at once) and store the cursor it resumes from.
    client "$label-A" "$transport" "$url" 3 3 STORAGE_DIR="$storage" LINGER_MS=60000
    wait_for_log "$label" "$backend" 3
    sleep 3
    stop_client "$client_pid"
    ids_of "$label-A" | grep -q . || fail "$label" "the first run printed no todos"
    stop_server "$pid" "$label"
    start_server "$label" "$backend"
    url="$(url_of "$transport" "$addr")"
    local lines
    lines="$(wc -l <"$work/$label.server.log")"
    client "$label-A" "$transport" "$url" 3 6 STORAGE_DIR="$storage" START_INDEX=3 LINGER_MS=60000
    wait_for_log "$label" "$backend" 6
    stop_client "$client_pid"
    ids_of "$label-A" | grep -q . || fail "$label" "the resumed client printed no todos"
    log_since "$label" "$lines" | grep -q 'pull: backlog.*cursor=3 ' ||
        fail "$label" "the resumed client did not pull from its cursor 3"
    client "$label-B" "$transport" "$url" 0 6 LINGER_MS=0
    wait "$client_pid" || fail "$label" "a fresh client did not see 6 todos"
    [ "$(ids_of "$label-B")" = "$(ids_of "$label-A")" ] || fail "$label" "the fresh client's todos differ"
    stop_server "$pid" "$label"
    check_backend "$label" "$backend" 6 "$label-A"
    echo "livestore $label: after a server restart the client resumed from cursor 3"
}

# Two servers over one backend, one client on each.
two_servers_case() { # transport backend label
    local transport="$1" backend="$2" label="$3" n=6 a b pid1 url1 url2
    local ready="$work/$label.ready"
    mkdir -p "$ready"
    start_server "$label-1" "$backend"
    pid1=$pid
    url1="$(url_of "$transport" "$addr")"
    start_server "$label-2" "$backend"
    url2="$(url_of "$transport" "$addr")"
    client "$label-A" "$transport" "$url1" "$n" $((2 * n)) READY_DIR="$ready" PEERS="$label-A,$label-B"
    a=$client_pid
    client "$label-B" "$transport" "$url2" "$n" $((2 * n)) READY_DIR="$ready" PEERS="$label-A,$label-B"
    b=$client_pid
    wait_and_compare "$label" "$a" "$label-A" "$b" "$label-B"
    stop_server "$pid1" "$label-1"
    stop_server "$pid" "$label-2"
    check_backend "$label" "$backend" $((2 * n)) "$label-A"
    echo "livestore $label: a client on each of two servers over one backend converged"
}

# LiveStore's own CLI (`@livestore/cli` 0.4.0, `livestore sync export|import`) against
# `eventsync serve`, both ways: its export of a store eventsync clients wrote is a file
# `eventsync import` takes into another backend, `eventsync verify` finds sound, and whose
# events `eventsync export` gives back the same; and `eventsync export`'s file, imported by
# LiveStore's CLI through the server into an empty store, gives the same log.
interop_case() { # transport backend label
    local label="$3" source="$work/interop-source" copy="$work/interop-copy" empty="$work/interop-empty"
    local es="$bin --store s1"
    mkdir -p "$source" "$empty"
    local i
    for i in 1 2 3; do
        $es --backend "$source" --data-dir "$work/interop-writer" todo add "todo $i of the eventsync CLI" >/dev/null
    done
    $es --backend "$source" --data-dir "$work/interop-writer" sync >/dev/null
    local livestore=(node "${node_flags[@]}" node_modules/@livestore/cli/dist/bin.js)
    start_server "$label" "$source"
    SYNC_URL="ws://$addr/sync" SYNC_TOKEN=tok "${livestore[@]}" sync export -c ./livestore.config.mjs \
        -i s1 "$work/livestore-export.json" >"$work/$label.cli.out" 2>&1 ||
        { cat "$work/$label.cli.out" >&2; fail "$label" "livestore sync export failed"; }
    stop_server "$pid" "$label"
    $es --backend "$copy" --data-dir "$work/interop-copy-client" import "$work/livestore-export.json" >/dev/null ||
        fail "$label" "eventsync import refused LiveStore's export"
    $es --backend "$copy" --data-dir "$work/interop-copy-client" verify >/dev/null ||
        fail "$label" "eventsync verify found the imported store unsound"
    $es --backend "$copy" --data-dir "$work/interop-copy-client" export "$work/eventsync-export.json" >/dev/null
    # The same events, field by field (the two writers order an event's keys differently).
    node -e 'const canon = (v) => Array.isArray(v) ? v.map(canon) : v && typeof v === "object"
               ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v
             const [a, b] = process.argv.slice(1).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")))
             const same = a.eventCount === 3 && JSON.stringify(canon(a.events)) === JSON.stringify(canon(b.events))
             process.exit(same ? 0 : 1)' "$work/livestore-export.json" "$work/eventsync-export.json" ||
        fail "$label" "LiveStore's export and eventsync's export of the imported copy differ (or hold not 3 events)"
    # The other way: eventsync's export, imported by LiveStore's CLI through the server.
    start_server "$label" "$empty"
    SYNC_URL="ws://$addr/sync" SYNC_TOKEN=tok "${livestore[@]}" sync import -c ./livestore.config.mjs \
        -i s1 "$work/eventsync-export.json" >"$work/$label.cli.out" 2>&1 ||
        { cat "$work/$label.cli.out" >&2; fail "$label" "livestore sync import failed"; }
    stop_server "$pid" "$label"
    [ "$($es --backend "$empty" --data-dir "$work/interop-empty-client" log --json)" = \
      "$($es --backend "$source" --data-dir "$work/interop-source-client" log --json)" ] ||
        fail "$label" "the log LiveStore's CLI imported through the server differs from the source's"
    echo "livestore $label: LiveStore's CLI exported through eventsync serve into a file eventsync imports, and imported eventsync's export back"
}

# A LiveStore web page (browser/: @livestore/adapter-web with OPFS, a SharedWorker and a leader
# worker, built with Vite, served from 127.0.0.1) in headless Chromium, driven by playwright-core:
# the page commits a todo (typed into its form), a node LiveStore client sees it through the
# server, and the page lists the node client's todo in return; a screenshot of the page is kept
# in $artifacts. Then the backend's log holds both events, gapless, and an eventsync CLI client
# reading the backend sees the same todos.
browser_case() { # transport backend label
    local transport="$1" backend="$2" label="$3" url bpid shot="$artifacts/$3.png"
    start_server "$label" "$backend"
    url="$(url_of "$transport" "$addr")"
    rm -f "$shot"
    node browser/browser.mjs "$transport" "$url" tok s1 2 "$shot" >"$work/$label-page.out" 2>"$work/$label-page.err" &
    bpid=$!
    helpers+=("$bpid")
    # The page boots (Chromium, the workers, OPFS) and commits; 240 s at most (a loaded machine).
    for _ in $(seq 2400); do
        grep -q '^COMMITTED ' "$work/$label-page.out" && break
        kill -0 "$bpid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^COMMITTED ' "$work/$label-page.out" ||
        { tail -n 40 "$work/$label-page.err" >&2; fail "$label" "the page did not commit its todo"; }
    # The page's todo reaches the backend before the node client starts, so that the node client
    # can only know it through the server.
    wait_for_log "$label" "$backend" 1
    client "$label-node" "$transport" "$url" 1 2 LINGER_MS=3000
    wait "$client_pid" || { tail -n 20 "$work/$label-node.err" >&2; fail "$label" "the node client did not see the page's todo"; }
    ids_of "$label-node" | grep -q '"browser-0"' || fail "$label" "the node client's todos lack the page's: $(ids_of "$label-node")"
    wait "$bpid" || { tail -n 40 "$work/$label-page.err" >&2; fail "$label" "the page did not list the node client's todo"; }
    [ "$(ids_of "$label-page")" = "$(ids_of "$label-node")" ] ||
        fail "$label" "the page lists $(ids_of "$label-page"), the node client $(ids_of "$label-node")"
    [ -s "$shot" ] || fail "$label" "no screenshot at $shot"
    stop_server "$pid" "$label"
    check_backend "$label" "$backend" 2 "$label-node"
    echo "livestore $label: a LiveStore web page in headless Chromium and a node client synced both ways through eventsync serve ($(ids_of "$label-page")); screenshot $shot"
}

# Chromium (installed by ensure_chromium when missing), the page's npm packages (npm ci, from
# browser/package-lock.json), and the page built with Vite into browser/dist.
browser_setup() {
    if ! ensure_chromium; then
        if in_ci; then
            fail browser "Chromium is missing after the install attempt (CI=true)"
        fi
        echo "livestore browser: NOT RUN: Chromium is missing and could not be installed (see above)" >&2
        return 1
    fi
    [ -d browser/node_modules/@livestore/adapter-web ] ||
        (cd browser && npm ci --no-audit --no-fund --ignore-scripts) || fail browser "npm ci in browser/ failed"
    (cd browser && node_modules/.bin/vite build --logLevel warn) || fail browser "vite build of the page failed"
}

if [ -n "${LIVESTORE_ONLY:-}" ]; then
    if [ "$LIVESTORE_ONLY" = browser_case ]; then
        browser_setup || exit 1
        browser_case http "$work/bucket-only-http" http-only
    fi
    "$LIVESTORE_ONLY" ws "$work/bucket-only" "ws-only"
    exit 0
fi
for transport in ws http; do
    pair_case "$transport" memory:// "$transport-memory"
    pair_case "$transport" "$work/bucket-$transport" "$transport-folder"
done
paging_case ws "$work/bucket-paging" ws-paging
restart_case ws "$work/bucket-restart" ws-restart
two_servers_case ws "$work/bucket-two" ws-two-servers
interop_case ws unused livestore-cli
if browser_setup; then
    browser_case ws "$work/bucket-browser-ws" browser-ws
    browser_case http "$work/bucket-browser-http" browser-http
fi
if [ -n "${EVENTSYNC_TEST_S3_URL:-}" ]; then
    s3="${EVENTSYNC_TEST_S3_URL%/}/livestore-$(date +%s)-$$"
    pair_case ws "$s3-ws" ws-s3
    pair_case http "$s3-http" http-s3
    two_servers_case ws "$s3-two" ws-s3-two-servers
else
    echo "livestore: EVENTSYNC_TEST_S3_URL is not set: the S3 cases did not run" >&2
fi
[ "$ahead_total" -ge 1 ] ||
    fail all "no ServerAheadError in any run (the rebase path was not exercised)"
echo "livestore: passed ($ahead_total ServerAheadError over the runs)"
