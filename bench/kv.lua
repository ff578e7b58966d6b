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
--   BENCH_GATEWAY "put" or "range": POST etcd's v3 JSON gateway instead
--                 (BENCH_PREFIX is then the path, e.g. /v3/kv/put; the key
--                 "bench-N" and the value go base64 in the JSON body)
local method = os.getenv("BENCH_METHOD") or "GET"
local prefix = os.getenv("BENCH_PREFIX") or "/bench-"
local suffix = os.getenv("BENCH_SUFFIX") or ""
local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local value = string.rep("v", tonumber(os.getenv("BENCH_VALUE") or "256"))
local form = os.getenv("BENCH_FORM") == "1"
local gateway = os.getenv("BENCH_GATEWAY")
if gateway == "" then
    gateway = nil -- Lua takes "" for true
end
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

-- RFC 4648 base64 with arithmetic only (no bit library needed)
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local v = a * 65536 + (b or 0) * 256 + (c or 0)
        local chars = 2 + (b and 1 or 0) + (c and 1 or 0) -- the rest is "=" padding
        for k = 0, 3 do
            if k < chars then
                local idx = math.floor(v / 64 ^ (3 - k)) % 64
                out[#out + 1] = b64chars:sub(idx + 1, idx + 1)
            else
                out[#out + 1] = "="
            end
        end
    end
    return table.concat(out)
end
local value64 = b64(value)

local function gateway_request()
    n = n + 1
    local key = b64("bench-" .. (n % math.max(keys, 1)))
    local json
    if gateway == "put" then
        json = '{"key":"' .. key .. '","value":"' .. value64 .. '"}'
    else
        json = '{"key":"' .. key .. '"}'
    end
    return wrk.format("POST", prefix, { ["Content-Type"] = "application/json" }, json)
end

request = function()
    if gateway then
        return gateway_request()
    end
    if keys == 0 then
        return wrk.format(method, prefix .. suffix, headers, body)
    end
    n = n + 1
    return wrk.format(method, prefix .. (n % keys) .. suffix, headers, body)
end
