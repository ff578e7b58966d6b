-- kv.lua: wrk script for scripts/bench-vs-etcd — one request shape for both
-- servers, chosen by environment variables, over a rotating key space.
-- Owns request generation only; must never assume which server it talks to
-- beyond what the variables say.
--   BENCH_METHOD  GET or PUT (default GET)
--   BENCH_PREFIX  path before the key number, e.g. /v2/keys/bench- or /bench-
--   BENCH_SUFFIX  path after it, e.g. ?quorum=true (default empty)
--   BENCH_KEYS    size of the key space (default 10000; 0: no key number)
--   BENCH_VALUE   value size in bytes (default 256)
--   BENCH_FORM    "1": send the value as value=... (etcd v2), else raw
local method = os.getenv("BENCH_METHOD") or "GET"
local prefix = os.getenv("BENCH_PREFIX") or "/bench-"
local suffix = os.getenv("BENCH_SUFFIX") or ""
local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local value = string.rep("v", tonumber(os.getenv("BENCH_VALUE") or "256"))
local form = os.getenv("BENCH_FORM") == "1"
local body, headers = nil, nil
local n = 0

if method == "PUT" then
    if form then
        body = "value=" .. value
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
    else
        body = value
    end
end

-- Each connection's thread starts at a different place in the key space,
-- so two threads do not hammer the same keys in lockstep.
setup = function(thread)
    thread:set("start", math.random(0, math.max(keys - 1, 0)))
end

init = function(args)
    n = tonumber(start or 0)
end

request = function()
    if keys == 0 then
        return wrk.format(method, prefix .. suffix, headers, body)
    end
    n = n + 1
    return wrk.format(method, prefix .. (n % keys) .. suffix, headers, body)
end
