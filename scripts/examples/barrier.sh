#!/usr/bin/env bash
# barrier.sh NAME COUNT: a double barrier entry — each of COUNT processes
# registers itself under barrier/NAME/ (with a lease, so a crashed
# participant does not count forever) and blocks until COUNT have arrived.
. "$(dirname "$0")/common.sh"
name=${1:?usage: barrier.sh NAME COUNT} count=${2:?count}
prefix="barrier/$name/"

lease=$(rk POST /lease '{"ttl":30}' | jq -r .id)
rk_put "$prefix$lease" "$(hostname)-$$" "$lease"
while true; do
    js=$(rk GET "/kv/$prefix?prefix=true&count_only=true")
    [ "$(echo "$js" | jq .count)" -ge "$count" ] && break
    # wait for the next arrival (or departure) instead of polling
    rk GET "/watch/$prefix?prefix=true&start_revision=$(( $(echo "$js" | jq .header.revision) + 1 ))&timeout=30" >/dev/null
done
echo "barrier $name: all $count arrived"
rk DELETE "/lease/$lease" >/dev/null
