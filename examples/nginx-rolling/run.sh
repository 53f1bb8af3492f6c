#!/usr/bin/env bash
# A rolling deploy behind nginx, on this machine: a Ferry server, three
# backend hosts running a small HTTP service (python3 http.server), one
# load-balancer host whose agent owns nginx's upstream file, and nginx on
# loopback in front of them. While v2 rolls out one host at a time, a load
# loop sends requests through nginx. The last line is
#
#   requests: N ok, M failed, versions seen: v1,v2
#
# Needs: a built `ferry` (FERRY=path, default: ferry on PATH), nginx (NGINX=path),
# python3. The rollout needs the rolling strategy: `ferry deploy ... --strategy
# rolling --batch 1`. STRATEGY=by-hand does the same one host at a time with
# `ferry lb drain`, `ferry deploy --hosts` and `ferry lb ready`; STRATEGY=""
# deploys to every host at once (expect failed requests while the services
# restart, and nginx then leaves them all out for its fail_timeout).
set -euo pipefail

FERRY=${FERRY:-ferry}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
STRATEGY=${STRATEGY---strategy rolling --batch 1}
MAX_REQUESTS=${MAX_REQUESTS:-20000}
HOSTS=(web-1 web-2 web-3)

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-nginx-rolling.XXXXXX")
chmod 755 "$work"
pids=()
nginx_pid=

log() { echo "== $*" >&2; }

cleanup() {
    set +e
    [ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null && sleep 0.5
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    # Services outlive their agents by design: stop the ones started here,
    # by the process groups their records name.
    for record in "$work"/hosts/*/.ferry/services/*.json; do
        [ -e "$record" ] || continue
        pgid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("pid") or "")' "$record")
        [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null
    done
    [ -n "$nginx_pid" ] && kill -KILL -- "-$nginx_pid" 2>/dev/null
    wait 2>/dev/null
    if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

http_ok() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local until=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $until ] || { echo "timed out waiting for $what" >&2; exit 1; }
        sleep 0.2
    done
}

log "server in $work"
"$FERRY" server --data "$work/server" --listen 127.0.0.1:0 --heartbeat-interval 1s --heartbeat-timeout 5s \
    >"$work/server.log" 2>&1 &
pids+=($!)
wait_for 20 "the server" test -s "$work/server/server.url"
export FERRY_SERVER FERRY_TOKEN
FERRY_SERVER=$(cat "$work/server/server.url")
FERRY_TOKEN=$(cat "$work/server/admin.token")
join=$(cat "$work/server/join.token")

agent() { # agent NAME TAGS
    "$FERRY" agent --server "$FERRY_SERVER" --join-token "$join" --name "$1" --tags "$2" \
        --root "$work/hosts/$1" --address 127.0.0.1 --check-interval 2s --service-user nobody \
        >"$work/agent-$1.log" 2>&1 &
    pids+=($!)
}
for h in "${HOSTS[@]}"; do agent "$h" role=web; done
agent lb-1 role=lb
wait_for 20 "four hosts online" sh -c '[ "$("$0" hosts -o json | grep -c "\"online\": true")" = 4 ]' "$FERRY"

log "project app, environment prod, one port per backend"
"$FERRY" project create app >/dev/null
"$FERRY" env create app prod --select role=web >/dev/null
for h in "${HOSTS[@]}"; do "$FERRY" var set app --host "$h" PORT "$(free_port)" >/dev/null; done

release() { # release VERSION: an http.server serving VERSION, checked before it counts
    local dir="$work/releases/$1"
    mkdir -p "$dir"
    echo "$1" >"$dir/VERSION"
    cat >"$dir/ferry.toml" <<TOML
[service]
command = "exec python3 -m http.server \${PORT} --bind 127.0.0.1"
start_period = "500ms"

[health]
http = "http://127.0.0.1:\${PORT}/VERSION"
body = "$1"
timeout = "20s"
TOML
    "$FERRY" release upload app "$dir" --version "$1" >/dev/null
}
release v1
release v2
"$FERRY" deploy app prod --version v1 --wait >/dev/null

log "nginx in front, its upstream file owned by lb-1"
mkdir -p "$work/nginx/conf.d" "$work/nginx/tmp"
nginx_args=(-p "$work/nginx" -c "$work/nginx/nginx.conf" -e stderr)
"$FERRY" env lb set app prod --driver nginx --select role=lb \
    --backend '${FERRY_HOST_ADDRESS}:${PORT}' \
    --upstream app --file "$work/nginx/conf.d/app.conf" \
    --reload "$NGINX ${nginx_args[*]} -s reload" >/dev/null
wait_for 20 "the upstream file" test -s "$work/nginx/conf.d/app.conf"
port=$(free_port)
user=""
[ "$(id -u)" = 0 ] && user="user root;"
cat >"$work/nginx/nginx.conf" <<CONF
$user
worker_processes 1;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    include $work/nginx/conf.d/*.conf;
    server {
        listen 127.0.0.1:$port;
        location / { proxy_pass http://app; }
    }
}
CONF
setsid "$NGINX" "${nginx_args[@]}" -g 'daemon off;' >"$work/nginx/nginx.out" 2>&1 &
nginx_pid=$!
wait_for 20 "nginx" http_ok "http://127.0.0.1:$port/VERSION"
# The reload that failed while nginx was not running yet is retried.
wait_for 20 "lb-1 to apply the load balancer" sh -c '"$0" env lb show app prod -o json | grep -q "\"applied\": true"' "$FERRY"

log "load loop through nginx, and the rollout of v2 ($STRATEGY)"
python3 - "$port" "$MAX_REQUESTS" "$work/stop" >"$work/load.out" <<'PY' &
import os, sys, urllib.request
port, limit, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ok = failed = 0
versions = set()
while ok + failed < limit and not os.path.exists(stop):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/VERSION", timeout=5) as r:
            versions.add(r.read().decode().strip())
            ok += 1
    except Exception:
        failed += 1
print(f"requests: {ok} ok, {failed} failed, versions seen: {','.join(sorted(versions))}")
PY
load_pid=$!
pids+=($load_pid)
sleep 1
set +e
if [ "$STRATEGY" = by-hand ]; then
    # What the rolling strategy does, one command at a time.
    deployed=0
    for h in "${HOSTS[@]}"; do
        "$FERRY" lb drain app prod "$h" >&2 &&
            "$FERRY" deploy app prod --version v2 --hosts "$h" --wait >&2 &&
            "$FERRY" lb ready app prod "$h" >&2 || { deployed=1; break; }
    done
else
    # shellcheck disable=SC2086 # STRATEGY is a list of arguments
    "$FERRY" deploy app prod --version v2 $STRATEGY --wait >&2
    deployed=$?
fi
set -e
sleep 1
touch "$work/stop"
wait "$load_pid" || true
tail -n 1 "$work/load.out"
exit "$deployed"
