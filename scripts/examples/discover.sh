#!/usr/bin/env bash
# discover.sh NAME: prints the live instances of service NAME, then every
# change, forever. List first, then watch from the list's revision + 1, so
# no instance that registers or dies in between is missed. On 410
# (compacted cursor) it lists again.
. "$(dirname "$0")/common.sh"
name=${1:?usage: discover.sh NAME}
prefix="services/$name/"

list() {
    local js
    js=$(rk GET "/kv/$prefix?prefix=true")
    echo "$js" | jq -r '.kvs[] | "up   \(.key) \(.value)"'
    cursor=$(( $(echo "$js" | jq .header.revision) + 1 ))
}

list
while true; do
    if ! js=$(rk GET "/watch/$prefix?prefix=true&start_revision=$cursor&timeout=30" 2>/dev/null); then
        echo "watch failed (compacted or unreachable): listing again" >&2
        list
        continue
    fi
    echo "$js" | jq -r '.events[] | if .type == "PUT" then "up   \(.kv.key) \(.kv.value)"
                                    else "down \(.kv.key)" end'
    cursor=$(echo "$js" | jq .next_revision)
done
