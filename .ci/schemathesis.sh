#!/usr/bin/env bash
# Property-based tests of the HTTP API against its own OpenAPI description:
# schemathesis calls every described operation with generated input, as the
# administrator, on a throw-away server on loopback. A 5xx answer or an
# answer that does not match the description fails the run.
#
# Usage: .ci/schemathesis.sh [FERRY_BINARY]   (default: target/debug/ferry)
# Bounded: MAX_TIME seconds (default 240), MAX_EXAMPLES per operation
# (default 25), a fixed seed.
set -euo pipefail
cd "$(dirname "$0")/.."

ferry=${1:-target/debug/ferry}
max_time=${MAX_TIME:-240}
max_examples=${MAX_EXAMPLES:-25}
command -v schemathesis >/dev/null || { echo "schemathesis is not installed (pip install schemathesis)" >&2; exit 1; }
[ -x "$ferry" ] || { echo "no ferry binary at $ferry (cargo build first)" >&2; exit 1; }

dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

"$ferry" server --data "$dir/data" --listen 127.0.0.1:0 >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    [ -s "$dir/data/server.url" ] && [ -s "$dir/data/admin.token" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; echo "the server did not start" >&2; exit 1; }
    sleep 0.1
done
url=$(tr -d '[:space:]' <"$dir/data/server.url")
token=$(tr -d '[:space:]' <"$dir/data/admin.token")
case "$url" in
    http://127.0.0.1:*) ;;
    *) echo "refusing to fuzz a server that is not on loopback: $url" >&2; exit 1 ;;
esac

# A project and environment to work on, so that operations on them get past
# "not found": path parameters of these names take these values (the
# schemathesis.toml written here), their bodies and queries stay generated.
api() {
    python3 - "$url$1" "$token" "$2" <<'PY'
import sys, urllib.request
url, token, body = sys.argv[1:]
req = urllib.request.Request(url, data=body.encode(), method="POST",
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=10).read()
PY
}
api /api/v1/projects '{"name":"app"}'
api /api/v1/projects/app/environments '{"name":"prod","selector":"role=web"}'
api /api/v1/projects/app/environments '{"name":"stage","selector":"role=stage"}'
cat >"$dir/schemathesis.toml" <<'TOML'
[parameters]
"path.project" = "app"
"path.env" = "stage"
TOML

# Left out, because they make the server reach beyond this machine or run
# code: notification channels (a webhook URL or mail server can point
# anywhere) and builds (they clone the project's repository and run its build
# script). Everything else runs, destructive operations included: the server
# is thrown away afterwards, except deleting the project and environment the
# run works on (what follows them would only meet "not found"). Revoking tokens is left out too: the caller's own
# token is the one the run signs in with (revoking it ends the run's access).
status=0
# Run from the temporary directory: schemathesis keeps a cache where it runs.
cd "$dir"
schemathesis --config-file "$dir/schemathesis.toml" run "$url/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --exclude-path-regex '^/api/v1/projects/\{project\}/notifications$' \
    --exclude-by 'method == "POST" and path == "/api/v1/projects/{project}/builds"' \
    --exclude-path '/api/v1/builds/{id}/retry' \
    --exclude-path '/api/v1/tokens/{token_id}' \
    --exclude-by 'method == "DELETE" and path == "/api/v1/projects/{project}"' \
    --exclude-by 'method == "DELETE" and path == "/api/v1/projects/{project}/environments/{env}"' \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" \
    --max-time "$max_time" \
    --seed 20261204 \
    --generation-database none \
    --workers 1 \
    --request-timeout 10 \
    --no-color || status=$?
if [ "$status" != 0 ]; then
    echo "--- last lines of the server's log ---" >&2
    tail -n 40 "$dir/server.log" >&2
fi
exit "$status"
