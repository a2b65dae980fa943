-- GET /products?limit=20 (the first page: 20 rows rendered per request).
dofile(os.getenv("BENCH_LUA") .. "/wrk.lua")
local req

function init(args)
  req = wrk.format("GET", (os.getenv("BENCH_BASE") or "") .. "/products?limit=20")
end

function request()
  return req
end
