#!/usr/bin/env bash
# lock.sh NAME COMMAND...: runs COMMAND while holding the distributed lock
# NAME. The lock is held through a lease kept alive in the background; the
# fencing token (the owner key's create revision) is passed to COMMAND in
# $RAFTKV_FENCE: a protected resource must refuse any write carrying a
# token lower than the highest it has seen (see docs/RECIPES.md).
. "$(dirname "$0")/common.sh"
name=${1:?usage: lock.sh NAME COMMAND...}; shift
ttl=${LOCK_TTL:-10}

lease=$(rk POST /lease "{\"ttl\":$ttl}" | jq -r .id)
( while sleep "$(( ttl > 3 ? ttl / 3 : 1 ))"; do rk POST "/lease/$lease/keepalive" >/dev/null || exit; done ) &
keeper=$!
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() { kill "$keeper" 2>/dev/null || true; rk DELETE "/lease/$lease" >/dev/null || true; }
trap cleanup EXIT
held=$(rk POST "/lock/$name${LOCK_TIMEOUT:+?timeout=$LOCK_TIMEOUT}" "{\"lease\":$lease}")
key=$(echo "$held" | jq -r .key)
export RAFTKV_FENCE
RAFTKV_FENCE=$(echo "$held" | jq .revision)
echo "holding $name as $key (fencing token $RAFTKV_FENCE)" >&2
status=0
"$@" || status=$?
rk DELETE "/lock/$key" >/dev/null
exit $status
