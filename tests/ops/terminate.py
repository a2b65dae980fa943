#!/usr/bin/env python3
"""PostgreSQL closes the shop's connections while it stays up (a failover, a
pooler's restart, an admin's pg_terminate_backend), under load, both
front-ends (issue 19, item 3).

    terminate.py --front module=URL --front fcgi=URL --dsn DSN [--events 3]

Load on every front-end (reads, stock checks, orders). Three times, a
second apart, every backend of the shop's front-ends is terminated. Per
front-end:
  - a connection found dead before its statement was sent is replaced and
    the request goes on: only statements that were in flight fail, each as
    503 `unavailable` with Retry-After, nothing else (no 500, no transport
    error). Backends die one after another over some milliseconds after
    the signal, so a thread's next request may still land on a dying one:
    at most two per thread and event (before the fix: hundreds, the pool
    answering 503 at once until it had reconnected);
  - after the last event every request succeeds.
"""
import argparse

import opsload as L

KILL = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND application_name LIKE 'shop%'")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--front", action="append", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--events", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    tap = L.Tap()
    fronts = [L.Front(f) for f in a.front]
    shop = L.ops_shop()

    load = L.Load(shop, fronts, ["get"] * 3 + ["list", "stock", "order"], threads=a.threads)
    kills = [load.at(1.0 + i, "terminate %d" % (i + 1), lambda: L.sql(a.dsn, KILL))
             for i in range(a.events)]
    recs = load.run(1.0 + a.events + 2.0)
    killed = [k.out for k in kills]
    tap.ok(all(k.rc == 0 for k in kills) and all(int(x or 0) > 0 for x in killed),
           "every backend of the front-ends terminated %d times (%s)" % (a.events, ", ".join(killed)),
           [k.out for k in kills])

    last = max(k.t_end for k in kills)
    for f in fronts:
        mine = [r for r in recs if r.front == f.name]
        bad = [r for r in mine if L.failed(r)]
        other = [r for r in bad if not (r.status == 503 and r.problem == "unavailable"
                                        and r.retry_after is not None)]
        limit = 2 * a.threads * a.events
        tap.ok(not other and len(bad) <= limit,
               "[%s] only statements in flight fail, as 503 unavailable: %d failed of %d "
               "(at most %d: 2 x %d threads x %d events)" % (f.name, len(bad), len(mine), limit,
                                                            a.threads, a.events),
               [L.describe(r, load.t_start) for r in (other or bad)][:8])
        after = [r for r in mine if r.t0 > last + 0.5]
        tap.ok(after and not [r for r in after if L.failed(r)],
               "[%s] after the last event every request succeeds (%d)" % (f.name, len(after)),
               [L.describe(r, load.t_start) for r in after if L.failed(r)][:5])
        tap.note("[%s] %s" % (f.name, L.fmt_summary(L.summary(mine))))
    tap.done()


if __name__ == "__main__":
    main()
