-- wrk -s tests/module/products.lua: GET /products/{random id}, ids 1..N
-- (N from the environment: SHOP_BENCH_PRODUCTS, default 1000). The path is
-- appended to the URL given to wrk, so a mount point works:
--     wrk -t2 -c64 -d5s -s products.lua http://127.0.0.1:18080/api
local n = tonumber(os.getenv("SHOP_BENCH_PRODUCTS") or "1000")
local base = ""

function init(args)
    math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

function setup(thread)
end

request = function()
    return wrk.format("GET", wrk.path:gsub("/$", "") .. "/products/" .. math.random(1, n))
end

done = function(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                   + summary.errors.status + summary.errors.timeout
    io.write(string.format("requests/s %.0f  p50 %.2f ms  p99 %.2f ms  max %.2f ms  errors %d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        latency.max / 1000, errors))
end
