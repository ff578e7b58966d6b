#!/usr/bin/env bash
# config-watch.sh PREFIX: config pub/sub with a local cache. Loads every
# key under PREFIX into a cache (an associative array), then applies
# changes from a watch starting right after the load, printing the cache
# after each batch. Publish with: curl -XPUT $RAFTKV_URL/kv/PREFIXkey -d value
. "$(dirname "$0")/common.sh"
prefix=${1:?usage: config-watch.sh PREFIX}
declare -A cache

load() {
    local js
    js=$(rk GET "/kv/$prefix?prefix=true")
    cache=()
    while IFS=$'\t' read -r k v; do cache[$k]=$v; done \
        < <(echo "$js" | jq -r '.kvs[] | [.key, .value] | @tsv')
    cursor=$(( $(echo "$js" | jq .header.revision) + 1 ))
}

show() { for k in "${!cache[@]}"; do echo "  $k = ${cache[$k]}"; done; echo "--- at revision $((cursor - 1))"; }

load; show
while true; do
    js=$(rk GET "/watch/$prefix?prefix=true&start_revision=$cursor&timeout=30") || { load; show; continue; }
    while IFS=$'\t' read -r type k v; do
        [ -z "$type" ] && continue
        if [ "$type" = PUT ]; then cache[$k]=$v; else unset "cache[$k]"; fi
    done < <(echo "$js" | jq -r '.events[] | [.type, .kv.key, (.kv.value // "")] | @tsv')
    cursor=$(echo "$js" | jq .next_revision)
    [ "$(echo "$js" | jq '.events | length')" -gt 0 ] && show
done
