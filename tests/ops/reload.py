#!/usr/bin/env python3
"""nginx -s reload under load (issue 7), both front-ends of one nginx.

    reload.py --front module=URL --front fcgi=URL --dsn DSN --master PID \
              --reload-cmd "nginx -s reload ..." [--duration 5] [--reloads 1.5,3.2]

Load on every front-end (GET product, list, stock check, POST /orders,
/healthz; half the threads on keep-alive connections), two SSE subscribers
per front-end on the public stock topic (every order emits stock.changed
events, so the streams are busy) that reconnect with Last-Event-ID when their stream ends.
nginx reloads at the given offsets. Then:
  - no request failed, on either front-end (figures in the diagnostics);
  - the master stayed, the workers were replaced, the old ones exited;
  - every subscriber got exactly the table's events after its start, in
    order, no gap, no duplicate, across its reconnects;
  - the database is consistent (orders, lines, events, stock).
"""
import argparse
import time

import opsload as L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--front", action="append", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--master", type=int, required=True)
    ap.add_argument("--reload-cmd", required=True)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--reloads", default="1.5,3.2")
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    tap = L.Tap()
    fronts = [L.Front(f) for f in a.front]
    shop = L.ops_shop()
    L.snapshot_stock(a.dsn)

    workers_before = L.children(a.master)
    start_id = int(L.sql(a.dsn, "SELECT coalesce(max(id), 0) FROM shop.events"))
    subs = []
    for f in fronts:
        for _ in range(2):
            s = L.Resumer(f, "stock", start_id)
            s.start()
            subs.append(s)
    time.sleep(0.5)

    load = L.Load(shop, fronts, ["get"] * 4 + ["list", "stock", "order", "order", "healthz"], threads=a.threads)
    reloads = [load.at(float(t), "reload %d" % (i + 1), a.reload_cmd) for i, t in enumerate(a.reloads.split(","))]
    recs = load.run(a.duration)
    t0 = load.t_start

    for r in reloads:
        tap.ok(r.rc == 0, "%s (nginx -s reload at +%.2f s) exits 0" % (r.name, r.t_begin - t0), r.out)

    for f in fronts:
        mine = [r for r in recs if r.front == f.name]
        s = L.summary(mine)
        bad = [L.describe(r, t0) for r in mine if L.failed(r)]
        around = [r for r in mine if any(abs(r.t0 - x.t_begin) < 0.5 for x in reloads)]
        tap.ok(s["sent"] > 50 and s["failed"] == 0,
               "[%s] %d reloads under load: no failed request (%s)" % (f.name, len(reloads), L.fmt_summary(s)),
               bad[:20] or ["only %d requests sent" % s["sent"]])
        tap.note("[%s] reload figures: requests %d, failed %d, resent %d, max latency %.1f ms; "
                 "%d requests within 0.5 s of a reload" % (f.name, s["sent"], s["failed"], s["resent"],
                                                            s["max"] * 1000, len(around)))

    # The master stays; the old workers go.
    tap.ok(L.pid_alive(a.master), "the nginx master (pid %d) is the same process" % a.master)
    t_gone = time.time()
    left = []
    while time.time() - t_gone < 15:
        left = [p for p in workers_before if L.pid_alive(p)]
        if not left:
            break
        time.sleep(0.1)
    after = L.children(a.master)
    tap.ok(not left and after and not set(after) & set(workers_before),
           "the workers were replaced (%s -> %s) and the old ones exited (%.1f s after the load)"
           % (workers_before, after, time.time() - t_gone),
           ["old workers still running 15 s after the load: %s" % left] if left else None)

    # Subscribers: every event after their start, once, in order.
    last_id = int(L.sql(a.dsn, "SELECT coalesce(max(id), 0) FROM shop.events WHERE topic = 'stock'"))
    expected = [int(x) for x in L.sql(a.dsn, "SELECT id FROM shop.events WHERE id > %d AND topic = 'stock' "
                                             "ORDER BY id" % start_id).split()]
    for s in subs:
        s.wait_for(last_id, 10)
    for s in subs:
        s.close()
    for i, s in enumerate(subs):
        good, text = s.check(expected)
        how = sorted({e for _, e in s.reconnects})
        tap.ok(good, "[%s] SSE subscriber %d across the reloads: every event once, in order (%s)"
               % (s.front.name, i % 2 + 1, text),
               ["reconnects: %s" % how, "connect errors: %s" % s.connect_errors[:5]])
        if s.reconnects:
            tap.note("[%s] subscriber %d: its stream ended %d times (%s), resumed by Last-Event-ID each time"
                     % (s.front.name, i % 2 + 1, len(s.reconnects), "; ".join(how)))
        if s.connect_errors:
            # A browser's EventSource gives up for good on a non-200 answer.
            tap.note("[%s] subscriber %d: %d reconnect attempts refused before one succeeded: %s"
                     % (s.front.name, i % 2 + 1, len(s.connect_errors), sorted({e for _, e in s.connect_errors})))

    L.check_orders(tap, a.dsn, "reload", recs)
    return tap.done()


if __name__ == "__main__":
    raise SystemExit(main())
