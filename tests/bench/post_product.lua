-- POST /products as the admin: a new sku every request (run id, thread,
-- counter), a name the slug is derived from, a random price, and the
-- category BENCH_CATEGORY ("bench" when unset; empty: no category field, for
-- a server without categories such as the Go peer, which refuses unknown
-- fields).
dofile(os.getenv("BENCH_LUA") .. "/wrk.lua")
local run = os.getenv("BENCH_RUN") or "r"
local path = (os.getenv("BENCH_BASE") or "") .. "/products"
local headers = {
  ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or ""),
  ["Content-Type"] = "application/json",
}
local count = 0
local category = os.getenv("BENCH_CATEGORY") or "bench"
local category_field = category ~= "" and string.format('"category":"%s",', category) or ""

function init(args)
  bench_seed()
end

function request()
  count = count + 1
  local sku = string.format("BN-%s-%d-%d", run, thread_no or 0, count)
  local body = string.format(
    '{"sku":"%s","name":"Bench item %s",%s"price_cents":%d,"currency":"EUR"}',
    sku, sku, category_field, math.random(1, 500000))
  return wrk.format("POST", path, headers, body)
end
