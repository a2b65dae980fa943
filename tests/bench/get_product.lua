-- GET /products/{id}, id uniform in 1..BENCH_PRODUCTS (the seeded range).
dofile(os.getenv("BENCH_LUA") .. "/wrk.lua")
local n = tonumber(os.getenv("BENCH_PRODUCTS") or "10000")
local base = os.getenv("BENCH_BASE") or ""

function init(args)
  bench_seed()
end

function request()
  return wrk.format("GET", base .. "/products/" .. math.random(1, n))
end
