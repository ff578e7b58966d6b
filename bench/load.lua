-- load.lua: wrk script for scripts/bench's RSS load — PUTs LOAD_KEYS keys
-- LOAD_REVISIONS times each (write m goes to key m % LOAD_KEYS, writes dealt
-- round-robin over the wrk threads), and each thread stops once its share
-- has been acknowledged (204). wrk itself still runs for its -d: the caller
-- ends it with SIGINT once the writes are in. Owns bulk loading only.
-- A refused write is not retried for the same key (wrk does not say which
-- request an answer belongs to): the thread adds one more write at the end
-- of the sequence instead, and done() prints how many were refused, so the
-- total of acknowledged writes is exact and a key may be a revision off.
--   LOAD_KEYS (100000)  LOAD_REVISIONS (10)  LOAD_VALUE bytes (256)
--   LOAD_PREFIX (/rss-)  LOAD_THREADS: must equal wrk's -t
local keys = tonumber(os.getenv("LOAD_KEYS") or "100000")
local revs = tonumber(os.getenv("LOAD_REVISIONS") or "10")
local prefix = os.getenv("LOAD_PREFIX") or "/rss-"
local body = string.rep("x", tonumber(os.getenv("LOAD_VALUE") or "256"))
local nthreads = tonumber(os.getenv("LOAD_THREADS") or "1")
local threads = {}
local mine, issued = 0, 0
acked, refused = 0, 0 -- globals: done() reads them with thread:get

setup = function(thread)
    table.insert(threads, thread)
    thread:set("id", #threads - 1)
end

init = function(args)
    local total = keys * revs
    if id < total then mine = math.floor((total - 1 - id) / nthreads) + 1 end
end

request = function()
    -- wrk calls request() once on thread 0's state to check the script;
    -- that request is never sent, so it must not use up a write
    if id == 0 and not checked then
        checked = true
        return wrk.format("GET", "/health")
    end
    if issued < mine + refused then
        local m = id + issued * nthreads
        issued = issued + 1
        return wrk.format("PUT", prefix .. (m % keys), nil, body)
    end
    -- every write is in flight: a connection still asks for a request
    return wrk.format("GET", "/health")
end

response = function(status, headers, resp_body)
    if status == 204 then
        acked = acked + 1
    elseif status ~= 200 then -- 200 is the /health filler
        refused = refused + 1
    end
    if acked >= mine then wrk.thread:stop() end
end

done = function(summary, latency, requests)
    local a, r = 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("acked")
        r = r + t:get("refused")
    end
    io.write(string.format("load.lua: %d writes acknowledged, %d refused\n", a, r))
end
