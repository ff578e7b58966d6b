# shellcheck shell=bash
# common.sh: sourced by the recipe scripts — the node URL, curl with JSON,
# and failing loudly. Must never hide an HTTP error: every call checks it.
set -euo pipefail
RAFTKV_URL=${RAFTKV_URL:-http://127.0.0.1:12380}

# rk METHOD PATH [JSON-BODY]: prints the JSON answer; fails on a non-2xx
# status (the error body goes to stderr).
rk() {
    local out code
    out=$(curl -sS -X "$1" "$RAFTKV_URL$2" ${3:+-H 'Content-Type: application/json' -d "$3"} \
        -w '\n%{http_code}') || return 1
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    if [ "${code:0:1}" != 2 ]; then
        echo "$1 $2: HTTP $code $out" >&2
        return 1
    fi
    printf '%s\n' "$out"
}

# rk_put KEY VALUE [LEASE]: raw value in the body
rk_put() {
    curl -sSf -X PUT "$RAFTKV_URL/kv/$1${3:+?lease=$3}" --data-binary "$2" >/dev/null
}

need() { command -v "$1" >/dev/null || { echo "this script needs $1" >&2; exit 2; }; }
need curl
need jq
