#!/usr/bin/env python3
"""A database outage under load, both front-ends (issue 7).

    outage.py --front module=URL --front fcgi=URL --dsn DSN --master PID --fcgi-pid PID \
              --stop-cmd "stop PostgreSQL" --start-cmd "start it again" [--down 2.0]

Load on every front-end: GET product, list, stock check, POST /orders,
/healthz, /readyz. At +1.5 s PostgreSQL stops (pg_ctl -m fast), --down
seconds later it starts again (same port and socket), and the load goes on
for 6 s more. Per front-end:
  - before the stop every request succeeds;
  - from 1 s after the stop was asked until the start, every request that
    needs the database is 503 `unavailable` with Retry-After, /readyz too,
    /healthz 200; none hangs (the largest latency in the outage is under
    1 s); anything else (a 500, a transport error) fails at any time;
  - after the start, requests succeed again within 5 s and stay so
    (recovery time: from the end of the start to the first request after
    which every request succeeded);
  - nginx's master and workers and shop-fcgi are the same processes;
then the database: every order with its lines, totals, its order.created
event, stock conserved, every 201 in the table.
"""
import argparse

import opsload as L

LIMIT_503 = 1.0      # s after the stop: from then on every database request is 503
LIMIT_HANG = 1.0     # s: no request in the outage takes longer
LIMIT_RECOVER = 5.0  # s after the start: requests succeed again


def ok_or_503(r):
    """An answer allowed while the database goes or comes: the usual one,
    or 503 unavailable with Retry-After."""
    if r.err is not None:
        return False
    if r.status in L.EXPECT[r.kind]:
        return True
    return r.status == 503 and r.problem == "unavailable" and r.retry_after is not None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--front", action="append", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--master", type=int, required=True)
    ap.add_argument("--fcgi-pid", type=int, required=True)
    ap.add_argument("--stop-cmd", required=True)
    ap.add_argument("--start-cmd", required=True)
    ap.add_argument("--down", type=float, default=2.0)
    ap.add_argument("--after", type=float, default=6.0)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    tap = L.Tap()
    fronts = [L.Front(f) for f in a.front]
    shop = L.ops_shop()
    L.snapshot_stock(a.dsn)
    workers = L.children(a.master)

    load = L.Load(shop, fronts, ["get"] * 3 + ["list", "stock", "order", "order", "healthz", "readyz"],
                  threads=a.threads, timeout=15)
    stop = load.at(1.5, "stop PostgreSQL", a.stop_cmd)
    start = load.at(1.5 + a.down, "start PostgreSQL", a.start_cmd)
    recs = load.run(1.5 + a.down + a.after)
    t0 = load.t_start
    tap.ok(stop.rc == 0, "PostgreSQL stopped at +%.2f s (pg_ctl -m fast: %.0f ms)"
           % (stop.t_begin - t0, (stop.t_end - stop.t_begin) * 1000), stop.out)
    tap.ok(start.rc == 0, "PostgreSQL started again at +%.2f s (%.0f ms), %.1f s after the stop"
           % (start.t_begin - t0, (start.t_end - start.t_begin) * 1000, start.t_begin - stop.t_begin), start.out)

    for f in fronts:
        mine = [r for r in recs if r.front == f.name]
        db = [r for r in mine if r.kind in L.NEEDS_DB]

        before = [r for r in mine if r.t0 + r.dt < stop.t_begin]
        bad = [L.describe(r, t0) for r in before if L.failed(r)]
        tap.ok(before and not bad, "[%s] before the outage: %d requests, none failed" % (f.name, len(before)), bad[:10])

        # Never anything but the usual answer or 503 unavailable + Retry-After.
        strange = [L.describe(r, t0) for r in mine if not ok_or_503(r)]
        tap.ok(not strange, "[%s] at no time an answer other than the usual one or 503 unavailable with Retry-After "
                            "(%d requests)" % (f.name, len(mine)), strange[:20])

        # The outage proper.
        down = [r for r in mine if stop.t_begin + LIMIT_503 <= r.t0 and r.t0 + r.dt <= start.t_begin]
        down_db = [r for r in down if r.kind in L.NEEDS_DB]
        not503 = [L.describe(r, t0) for r in down_db
                  if not (r.status == 503 and r.problem == "unavailable" and r.retry_after)]
        tap.ok(len(down_db) > 10 and not not503,
               "[%s] from %.0f s after the stop: every request needing the database is 503 unavailable with "
               "Retry-After (%d, /readyz included)" % (f.name, LIMIT_503, len(down_db)),
               not503[:20] or ["only %d requests in the outage" % len(down_db)])
        health = [r for r in down if r.kind == "healthz"]
        tap.ok(health and all(r.status == 200 for r in health),
               "[%s] /healthz 200 all through the outage (%d)" % (f.name, len(health)),
               [L.describe(r, t0) for r in health if r.status != 200][:10])
        first503 = min((r.t0 + r.dt for r in db if r.t0 >= stop.t_begin and r.status == 503), default=None)
        # The first request after which every database request of the outage got 503.
        last_ok = max((r.t0 for r in db if stop.t_begin <= r.t0 < start.t_begin and r.status != 503), default=None)
        in_outage = [r for r in mine if stop.t_begin <= r.t0 < start.t_begin]
        worst = max(in_outage, key=lambda r: r.dt, default=None)
        tap.ok(worst is not None and worst.dt < LIMIT_HANG,
               "[%s] no request hangs in the outage: the slowest of %d took %.0f ms"
               % (f.name, len(in_outage), (worst.dt if worst else 0) * 1000),
               [L.describe(worst, t0)] if worst else None)

        # Recovery: the first start time after which every request succeeded.
        after = [r for r in db if r.t0 >= start.t_begin]
        fails_after = [r for r in after if L.failed(r)]
        if fails_after:
            last_fail = max(fails_after, key=lambda r: r.t0)
            recovered = min((r.t0 for r in after if r.t0 > last_fail.t0), default=None)
        else:
            recovered = min((r.t0 for r in after), default=None)
        rec_s = (recovered - start.t_end) if recovered is not None else None
        tail = [r for r in after if recovered is not None and r.t0 >= recovered]
        tap.ok(rec_s is not None and rec_s <= LIMIT_RECOVER and len(tail) > 10,
               "[%s] after the start, requests succeed again within %.0f s: recovered %s after PostgreSQL was up, "
               "then %d requests, none failed" % (f.name, LIMIT_RECOVER, "%.0f ms" % (max(rec_s, 0) * 1000)
                                                  if rec_s is not None else "never", len(tail)),
               [L.describe(r, t0) for r in fails_after[-10:]])
        s = L.summary(mine)
        tap.note("[%s] outage figures: requests %d (%d in the outage), failed %d (503 in and around the outage: %d), "
                 "first 503 %s after the stop, last success %s after the stop, max latency in the outage %.1f ms, "
                 "recovery %s after PostgreSQL was up (%s after pg_ctl start was run)" % (
                     f.name, s["sent"], len(in_outage), len([r for r in mine if not ok_or_503(r)]),
                     len([r for r in mine if r.status == 503]),
                     "%.0f ms" % ((first503 - stop.t_begin) * 1000) if first503 else "-",
                     "%.0f ms" % ((last_ok - stop.t_begin) * 1000) if last_ok else "-",
                     (worst.dt if worst else 0) * 1000,
                     "%.0f ms" % (max(rec_s, 0) * 1000) if rec_s is not None else "never",
                     "%.0f ms" % ((recovered - start.t_begin) * 1000) if recovered is not None else "never"))

    tap.ok(L.pid_alive(a.master) and L.children(a.master) == workers and L.pid_alive(a.fcgi_pid),
           "no restart: nginx master %d, workers %s and shop-fcgi %d are the same processes"
           % (a.master, workers, a.fcgi_pid), ["workers now %s" % L.children(a.master)])

    n_orders, n_201 = L.check_orders(tap, a.dsn, "outage", recs)
    n_db = int(L.sql(a.dsn, "SELECT count(*) FROM shop.orders WHERE seq > (SELECT order_seq FROM ops.mark)"))
    tap.note("outage orders: %d answered 201, %d in the table (%d committed while the answer was a 503 or lost)"
             % (n_201, n_db, n_db - n_201))
    return tap.done()


if __name__ == "__main__":
    raise SystemExit(main())
