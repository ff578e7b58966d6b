#!/usr/bin/env bash
# register.sh NAME ADDR [TTL]: registers a service instance under
# services/NAME/ with a lease and keeps it alive until interrupted; on
# Ctrl-C / SIGTERM it deregisters (revokes the lease: the key goes at once).
# If this process dies without deregistering, the key vanishes after TTL.
. "$(dirname "$0")/common.sh"
name=${1:?usage: register.sh NAME ADDR [TTL]} addr=${2:?address} ttl=${3:-10}

lease=$(rk POST /lease "{\"ttl\":$ttl}" | jq -r .id)
rk_put "services/$name/$lease" "$addr" "$lease"
echo "registered services/$name/$lease -> $addr (lease $lease, ttl ${ttl}s)"
trap 'rk DELETE /lease/$lease >/dev/null && echo "deregistered"; exit 0' INT TERM
# keep alive at a third of the TTL: two keepalives may fail before expiry
while sleep "$(( ttl > 3 ? ttl / 3 : 1 ))"; do
    rk POST "/lease/$lease/keepalive" >/dev/null || echo "keepalive failed; retrying" >&2
done
