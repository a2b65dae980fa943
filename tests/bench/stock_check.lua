-- POST /stock/check: 5 distinct skus, uniform in the seeded range
-- (SKU-000001 .. BENCH_PRODUCTS), quantity 1..5; the fan-out asks every
-- warehouse the shop knows (the seed has three).
dofile(os.getenv("BENCH_LUA") .. "/wrk.lua")
local n = tonumber(os.getenv("BENCH_PRODUCTS") or "10000")
local path = (os.getenv("BENCH_BASE") or "") .. "/stock/check"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  bench_seed()
end

function request()
  local seen, items = {}, {}
  while #items < 5 do
    local id = math.random(1, n)
    if not seen[id] then
      seen[id] = true
      items[#items + 1] = string.format('{"sku":"SKU-%06d","quantity":%d}', id, math.random(1, 5))
    end
  end
  return wrk.format("POST", path, headers, '{"items":[' .. table.concat(items, ",") .. ']}')
end
