#!/usr/bin/env bash
# queue.sh NAME put VALUE | take: a FIFO queue under queue/NAME/.
#   put: a create-only txn on a unique, time-ordered key (never overwrites)
#   take: deletes the lowest key with a txn guarded by its mod revision (so
#         two consumers never take the same element); when the queue is
#         empty, blocks on a watch instead of polling.
. "$(dirname "$0")/common.sh"
name=${1:?usage: queue.sh NAME put VALUE | take} op=${2:?put or take}
prefix="queue/$name/"

case $op in
put)
    value=$(jq -Rn --arg v "${3:?value}" '$v')
    while true; do
        key="$prefix$(date +%s%N)"
        ok=$(rk POST /txn "{\"compare\":[{\"key\":\"$key\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":0}],
                           \"success\":[{\"request_put\":{\"key\":\"$key\",\"value\":$value}}]}" | jq .succeeded)
        [ "$ok" = true ] && { echo "$key"; exit 0; }
    done ;;
take)
    while true; do
        js=$(rk GET "/kv/$prefix?prefix=true&limit=1")
        if [ "$(echo "$js" | jq '.kvs | length')" = 0 ]; then
            rk GET "/watch/$prefix?prefix=true&start_revision=$(( $(echo "$js" | jq .header.revision) + 1 ))&timeout=30" >/dev/null || true
            continue
        fi
        key=$(echo "$js" | jq -r '.kvs[0].key') mod=$(echo "$js" | jq '.kvs[0].mod_revision')
        ok=$(rk POST /txn "{\"compare\":[{\"key\":\"$key\",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":$mod}],
                           \"success\":[{\"request_delete_range\":{\"key\":\"$key\"}}]}" | jq .succeeded)
        [ "$ok" = true ] && { echo "$js" | jq -r '.kvs[0].value'; exit 0; }
    done ;;
*) echo "unknown operation $op" >&2; exit 2 ;;
esac
