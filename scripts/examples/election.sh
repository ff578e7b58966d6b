#!/usr/bin/env bash
# election.sh NAME VALUE: campaigns for leadership of NAME with VALUE (e.g.
# this instance's address), blocks until elected, then leads until
# interrupted (resigning on Ctrl-C). Run it in several terminals against
# different nodes and kill the leader: another one takes over after the
# TTL. Watch the changes with: election.sh --observe NAME
. "$(dirname "$0")/common.sh"
if [ "${1:-}" = --observe ]; then
    name=${2:?usage: election.sh --observe NAME}
    q=""
    while true; do
        js=$(rk GET "/election/$name/observe?timeout=30$q")
        echo "$js" | jq -c 'if .kv then {leader: .kv.key, value: .kv.value, rev: .header.revision}
                            else {leader: null} end'
        q="&start_revision=$(echo "$js" | jq .next_revision)"
    done
fi
name=${1:?usage: election.sh NAME VALUE} value=${2:?value}
ttl=${ELECTION_TTL:-5}

lease=$(rk POST /lease "{\"ttl\":$ttl}" | jq -r .id)
( while sleep "$(( ttl > 3 ? ttl / 3 : 1 ))"; do rk POST "/lease/$lease/keepalive" >/dev/null || exit; done ) &
keeper=$!
trap 'kill $keeper 2>/dev/null; rk POST /election/$name/resign "{\"lease\":$lease}" >/dev/null; rk DELETE /lease/$lease >/dev/null; exit 0' INT TERM
echo "campaigning for $name (lease $lease)..." >&2
rk POST "/election/$name/campaign" "{\"lease\":$lease,\"value\":\"$value\"}" | jq -c .leader
echo "elected: leading until interrupted" >&2
while kill -0 "$keeper" 2>/dev/null; do sleep 1; done
echo "lost the lease: no longer leader" >&2
exit 1
