-- bench-put.lua: wrk script for scripts/bench: PUTs 256-byte values to
-- 10000 rotating keys (each wrk thread counts on its own).
local body = string.rep("v", 256)
local n = 0

request = function()
    n = n + 1
    return wrk.format("PUT", "/bench-" .. (n % 10000), nil, body)
end
