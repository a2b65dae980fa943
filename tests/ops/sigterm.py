#!/usr/bin/env python3
"""A rolling restart of a shop-fcgi pair under load (issue 7).

    sigterm.py --pair URL --direct URL --dsn DSN --token-file F \
               --pid-a PID --pid-b PID --log-a FILE --restart-a CMD --restart-b CMD

--pair: nginx in front of two shop-fcgi (an upstream of two spawn-fcgi unix
sockets, fastcgi_next_upstream error timeout); --direct: nginx straight to
responder A, so a slow request surely lands on A. Timeline (s from the start
of the load, which runs 6 s on the pair: GET product, list, stock check,
POST /orders):
  0.4  a psql session locks products 150 and 151 (FOR UPDATE) for 1.6 s
  0.6  PATCH /products/150 through --direct (A), PATCH /products/151
       through the pair: both wait for the lock
  1.0  SIGTERM to A, once both PATCHes wait on the lock (pg_stat_activity)
  2.6  A started again on its socket (--restart-a)
  3.4  SIGTERM to B
  4.4  B started again (--restart-b)
Checks: no request of the load failed; both slow PATCHes got 200; A exited
only after answering its slow PATCH, B exited too (each within 10 s); the
database is consistent (orders, lines, events, stock).
"""
import argparse
import datetime
import json
import os
import time

import opsload as L


def log_times(path):
    """When each request of a shop-fcgi log ended (seconds since the epoch):
    a line's time is its start, total_ms its length."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                if isinstance(o, dict) and "route" in o and "time" in o:
                    t = datetime.datetime.strptime(o["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
                    out.append(t.replace(tzinfo=datetime.timezone.utc).timestamp()
                               + float(o.get("total_ms", 0)) / 1000)
    except OSError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", required=True)
    ap.add_argument("--direct", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--pid-a", type=int, required=True)
    ap.add_argument("--pid-b", type=int, required=True)
    ap.add_argument("--log-a", required=True)
    ap.add_argument("--restart-a", required=True)
    ap.add_argument("--restart-b", required=True)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--threads", type=int, default=6)
    a = ap.parse_args()
    tap = L.Tap()
    token = open(a.token_file).read().strip()
    auth = {"Authorization": "Bearer " + token}
    pair, direct = L.Front("pair=" + a.pair), L.Front("direct-a=" + a.direct)
    shop = L.ops_shop()
    L.snapshot_stock(a.dsn)

    st = {}

    def lock():
        st["lock"] = L.RowLock(a.dsn, [150, 151], 1.6)
        if not st["lock"].wait_locked(5):
            raise RuntimeError("the row lock was not taken: %s" % st["lock"].lines)

    def slow():
        st["slow_a"] = L.Slow(direct, "PATCH", "/products/150", {"description": "slow patch through A"}, auth)
        st["slow_pair"] = L.Slow(pair, "PATCH", "/products/151", {"description": "slow patch through the pair"}, auth)
        st["slow_a"].start()
        st["slow_pair"].start()

    def term(name, pid):
        def f():
            if name == "a" and not L.wait_lock_waiters(a.dsn, 2):
                raise RuntimeError("the slow requests are not waiting on the lock")
            t = time.time()
            os.kill(pid, 15)
            st["watch_" + name] = L.ExitWatch(pid)
            return "T=%f" % t
        return f

    load = L.Load(shop, [pair], ["get"] * 4 + ["list", "stock", "order", "order"], threads=a.threads)
    load.at(0.4, "lock", lock)
    load.at(0.6, "slow requests", slow)
    term_a = load.at(1.0, "SIGTERM A", term("a", a.pid_a))
    restart_a = load.at(2.6, "restart A", a.restart_a)
    term_b = load.at(3.4, "SIGTERM B", term("b", a.pid_b))
    restart_b = load.at(4.4, "restart B", a.restart_b)
    recs = load.run(a.duration)
    t0 = load.t_start

    for act in load.actions:
        tap.ok(act.rc == 0, "%s at +%.2f s (%.0f ms)" % (act.name, act.t_begin - t0, (act.t_end - act.t_begin) * 1000),
               act.out)

    s = L.summary(recs)
    bad = [L.describe(r, t0) for r in recs if L.failed(r)]
    tap.ok(s["sent"] > 50 and s["failed"] == 0,
           "rolling restart of the pair under load: no failed request (%s)" % L.fmt_summary(s),
           bad[:20] or ["only %d requests sent" % s["sent"]])
    during = [r for r in recs if term_a.t_begin <= r.t0 <= restart_b.t_end]
    tap.note("sigterm figures: requests %d (%d while a responder was stopping or gone), failed %d, resent %d, "
             "max latency %.1f ms" % (s["sent"], len(during), s["failed"], s["resent"], s["max"] * 1000))

    for key, who in (("slow_a", "straight to A"), ("slow_pair", "through the pair")):
        sl = st.get(key)
        if sl is None:
            tap.ok(False, "slow PATCH %s was sent" % who)
            continue
        sl.join(30)
        lk = st["lock"]
        inflight = sl.t0 < term_a.t_begin < (sl.t1 or 0)
        tap.ok(sl.status == 200 and (key != "slow_a" or inflight),
               "slow PATCH %s (waiting %.2f s on a row lock, SIGTERM to A %.2f s into it): %s"
               % (who, (sl.t1 or 0) - sl.t0, term_a.t_begin - sl.t0, sl.status or sl.err),
               ["status %s, error %s, body %s" % (sl.status, sl.err, sl.doc),
                "lock taken +%.2f, released +%s" % (lk.t_locked - t0,
                                                   "%.2f" % (lk.t_released - t0) if lk.t_released else "?")])
    lk = st.get("lock")
    if lk:
        lk.join()

    wa, wb = st.get("watch_a"), st.get("watch_b")
    if wa:
        wa.join(15)
        sa = st["slow_a"]
        after_patch = wa.t_gone is not None and sa.t1 is not None and wa.t_gone >= sa.t1 - 0.05
        served = [t for t in log_times(a.log_a) if term_a.t_begin <= t <= (wa.t_gone or time.time())]
        tap.ok(wa.t_gone is not None and wa.t_gone - term_a.t_begin < 10 and after_patch,
               "A exited %s after SIGTERM, after answering its slow PATCH (%s after it); "
               "it finished %d requests after SIGTERM"
               % ("%.0f ms" % ((wa.t_gone - term_a.t_begin) * 1000) if wa.t_gone else "not within 15 s",
                  "%.0f ms" % ((wa.t_gone - sa.t1) * 1000) if wa.t_gone and sa.t1 else "?", len(served)))
    if wb:
        wb.join(15)
        tap.ok(wb.t_gone is not None and wb.t_gone - term_b.t_begin < 10,
               "B exited %s after SIGTERM" % ("%.0f ms" % ((wb.t_gone - term_b.t_begin) * 1000)
                                              if wb.t_gone else "not within 15 s"))

    L.check_orders(tap, a.dsn, "sigterm", recs)
    return tap.done()


if __name__ == "__main__":
    raise SystemExit(main())
