-- Shared by the scenario scripts (loaded with dofile from $BENCH_LUA):
-- a per-thread number and random seed, and one result line per run that
-- tests/bench/run parses. Written for this project; wrk 4.1's Lua API.

local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_no", next_thread)
end

function bench_seed()
  local salt = tonumber(os.getenv("BENCH_SALT") or "0") or 0
  math.randomseed(os.time() + 104729 * (thread_no or 0) + salt)
end

-- wrk counts a response with status > 399 in errors.status; socket
-- problems (connect, read, write, timeout) are counted apart.
function bench_report(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d sock_errors=%d requests=%d seconds=%.2f\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, summary.requests, secs))
end
done = bench_report
