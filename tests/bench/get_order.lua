-- GET /orders/{uuid}: a random one of the orders listed in BENCH_ORDERS
-- (a file of ids, one per line, that tests/bench/run writes).
dofile(os.getenv("BENCH_LUA") .. "/wrk.lua")
local base = (os.getenv("BENCH_BASE") or "") .. "/orders/"
local ids = {}

function init(args)
  bench_seed()
  for line in io.lines(os.getenv("BENCH_ORDERS")) do
    ids[#ids + 1] = line
  end
end

function request()
  return wrk.format("GET", base .. ids[math.random(1, #ids)])
end
