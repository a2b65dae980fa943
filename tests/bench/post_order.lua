-- POST /orders: one unit of a random product (the bench tops stock up, so
-- every order can be served), a customer address per thread.
dofile(os.getenv("BENCH_LUA") .. "/wrk.lua")
local n = tonumber(os.getenv("BENCH_PRODUCTS") or "10000")
local path = (os.getenv("BENCH_BASE") or "") .. "/orders"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  bench_seed()
end

function request()
  local body = string.format(
    '{"items":[{"sku":"SKU-%06d","quantity":1}],"customer_email":"bench%d@example.com"}',
    math.random(1, n), thread_no or 0)
  return wrk.format("POST", path, headers, body)
end
