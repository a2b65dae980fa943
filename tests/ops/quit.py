#!/usr/bin/env python3
"""`nginx -s quit` finishes the requests in flight, slow ones too (issue 7),
on both front-ends of one nginx.

    quit.py --front module=URL --front fcgi=URL --dsn DSN --token-file F \
            --master PID --quit-cmd "nginx -s quit ..." --logs NGINX_LOG_DIR

Timeline (s from the start of the load, which runs 3 s on every front-end):
  0.3  a psql session locks products 150 and 151 (FOR UPDATE) for 1.5 s
  0.5  PATCH /products/150 through the module, /products/151 through
       fcgi: both wait for the lock
  1.0  nginx -s quit, once both PATCHes wait on the lock (pg_stat_activity)
After the quit nginx stops listening: later connects are refused, which is
expected. Every request nginx read (its X-Request-Id is in one of nginx's
logs) must have been answered as usual; requests nginx never read (refused,
or met the closing of an idle keep-alive connection) are counted, not
failed. Then: both slow PATCHes got 200; nginx exited only after answering
them; the database is consistent.
"""
import argparse
import glob
import subprocess
import time

import opsload as L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--front", action="append", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--master", type=int, required=True)
    ap.add_argument("--quit-cmd", required=True)
    ap.add_argument("--logs", required=True)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    tap = L.Tap()
    auth = {"Authorization": "Bearer " + open(a.token_file).read().strip()}
    fronts = [L.Front(f) for f in a.front]
    shop = L.ops_shop()
    L.snapshot_stock(a.dsn)
    ids = {f.name: 150 + i for i, f in enumerate(fronts)}
    st = {}

    def lock():
        st["lock"] = L.RowLock(a.dsn, sorted(ids.values()), 1.5)
        if not st["lock"].wait_locked(5):
            raise RuntimeError("the row lock was not taken: %s" % st["lock"].lines)

    def slow():
        for f in fronts:
            s = st[f.name] = L.Slow(f, "PATCH", "/products/%d" % ids[f.name],
                                    {"description": "slow patch through %s" % f.name}, auth)
            s.start()

    def quit_():
        if not L.wait_lock_waiters(a.dsn, len(fronts)):
            raise RuntimeError("the slow requests are not waiting on the lock")
        st["watch"] = L.ExitWatch(a.master, 30)
        t = time.time()
        subprocess.run(["bash", "-c", a.quit_cmd], capture_output=True, text=True, check=True)
        return "T=%f" % t

    load = L.Load(shop, fronts, ["get"] * 4 + ["list", "stock", "order", "order"], threads=a.threads, timeout=15)
    load.at(0.3, "lock", lock)
    load.at(0.5, "slow requests", slow)
    q = load.at(1.0, "nginx -s quit", quit_)
    recs = load.run(3.0)
    t0, tq = load.t_start, q.t_begin
    for act in load.actions:
        tap.ok(act.rc == 0, "%s at +%.2f s" % (act.name, act.t_begin - t0), act.out)

    logged = set()
    for path in glob.glob(a.logs + "/*.log"):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                i = line.find("ops-")
                while i >= 0:
                    j = i
                    while j < len(line) and (line[j].isalnum() or line[j] == "-"):
                        j += 1
                    logged.add(line[i:j])
                    i = line.find("ops-", j)

    for f in fronts:
        mine = [r for r in recs if r.front == f.name]
        read = [r for r in mine if r.rid in logged]
        unread = [r for r in mine if r.rid not in logged]
        inflight = [r for r in read if r.t0 < tq < r.t0 + r.dt]
        bad = [L.describe(r, t0) for r in read if L.failed(r)]
        # Not read by nginx: after the quit only, and failed fast.
        early = [L.describe(r, t0) for r in unread if r.t0 < tq - 0.05 and not r.resent]
        kinds = {}
        for r in unread:
            k = (r.err or "status %s" % r.status).split(":")[0]
            kinds[k] = kinds.get(k, 0) + 1
        s = L.summary(read)
        tap.ok(read and not bad, "[%s] nginx -s quit: every request nginx read was answered (%d, %d of them in flight "
                                 "at the quit; %s)" % (f.name, len(read), len(inflight), L.fmt_summary(s)), bad[:20])
        slow_unread = [r for r in unread if r.dt > 1.0]
        tap.ok(not early and not slow_unread,
               "[%s] requests nginx never read came after the quit and failed at once (%d: %s)"
               % (f.name, len(unread), ", ".join("%s %d" % kv for kv in sorted(kinds.items())) or "none"),
               early[:10] + [L.describe(r, t0) for r in slow_unread[:10]])
        tap.note("[%s] quit figures: requests %d, read by nginx %d (in flight at the quit %d), failed %d, "
                 "not read (after the quit) %d, max latency %.1f ms"
                 % (f.name, len(mine), len(read), len(inflight), s["failed"], len(unread), s["max"] * 1000))

    w = st.get("watch")
    if w:
        w.join(30)
    last = 0
    for f in fronts:
        s = st.get(f.name)
        if s is None:
            tap.ok(False, "[%s] slow PATCH sent" % f.name)
            continue
        s.join(30)
        last = max(last, s.t1 or 0)
        tap.ok(s.status == 200 and s.t0 < tq < s.t1,
               "[%s] the slow PATCH in flight at the quit (%.2f s into its %.2f s) got %s"
               % (f.name, tq - s.t0, (s.t1 or 0) - s.t0, s.status or s.err), s.doc)
    gone = w.t_gone if w else None
    tap.ok(gone is not None and gone >= last - 0.05,
           "nginx exited %s after the quit, %s after the last slow answer"
           % ("%.0f ms" % ((gone - tq) * 1000) if gone else "not within 30 s",
              "%.0f ms" % ((gone - last) * 1000) if gone and last else "?"))
    if st.get("lock"):
        st["lock"].join()
    L.check_orders(tap, a.dsn, "quit", recs)
    return tap.done()


if __name__ == "__main__":
    raise SystemExit(main())
