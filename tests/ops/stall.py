#!/usr/bin/env python3
"""A database that stalls (SIGSTOP, then SIGCONT) under load, both front-ends
(issue 19: every pool heals by itself, every wait is bounded).

    stall.py --front module=URL --front fcgi=URL --dsn DSN --pg-pid PID \
             --statement-timeout S [--stall 8.0]

Load on every front-end: GET product, stock checks (most of it), /healthz.
At +1.5 s the postmaster and every PostgreSQL process are stopped
(SIGSTOP); --stall seconds later they continue (SIGCONT). Per front-end:
  - before the stall every request succeeds;
  - during it no request waits longer than the statement timeout plus
    2 s, and /healthz, which needs no database, answers within 1 s;
  - after SIGCONT, a stock check answers 200 within 2 s, and from 3 s on
    every request succeeds (figures: the first 200 of each kind after
    SIGCONT, as TAP diagnostics).
"""
import argparse
import os
import signal
import subprocess

import opsload as L

LIMIT_HEAL = 2.0       # s after SIGCONT: a stock check answers 200
LIMIT_ALL = 3.0        # s after SIGCONT: every request succeeds from then on
LIMIT_HEALTHZ = 1.0    # s: /healthz during the stall


def pg_pids(postmaster):
    out = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout
    return [postmaster] + [int(x) for x in out.split()]


def signal_all(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--front", action="append", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--pg-pid", type=int, required=True)
    ap.add_argument("--statement-timeout", type=float, required=True)
    ap.add_argument("--stall", type=float, default=8.0)
    ap.add_argument("--after", type=float, default=6.0)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    tap = L.Tap()
    fronts = [L.Front(f) for f in a.front]
    shop = L.ops_shop()

    stopped = []

    def stop():
        stopped[:] = pg_pids(a.pg_pid)
        signal_all(stopped, signal.SIGSTOP)
        return "stopped %d processes" % len(stopped)

    def cont():
        signal_all(stopped, signal.SIGCONT)
        return "continued"

    load = L.Load(shop, fronts, ["stock"] * 4 + ["get", "healthz"], threads=a.threads,
                  timeout=a.statement_timeout + 10)
    t_stop = load.at(1.5, "SIGSTOP", stop)
    t_cont = load.at(1.5 + a.stall, "SIGCONT", cont)
    recs = load.run(1.5 + a.stall + a.after)
    if t_cont.t_begin is None:
        # a safety net: never leave the database stopped
        cont()
    tap.ok(t_stop.rc == 0 and t_cont.rc == 0, "the database stalled for %.1f s (%s)" % (
        a.stall, t_stop.out), t_cont.out)

    stall_begin, stall_end = t_stop.t_end, t_cont.t_end
    bound = a.statement_timeout + 2.0
    for f in fronts:
        mine = [r for r in recs if r.front == f.name]
        before = [r for r in mine if r.t0 + r.dt < stall_begin]
        tap.ok(before and not [r for r in before if L.failed(r)],
               "[%s] before the stall every request succeeds (%d)" % (f.name, len(before)),
               [L.describe(r, load.t_start) for r in before if L.failed(r)][:5])

        during = [r for r in mine if r.t0 >= stall_begin and r.t0 < stall_end]
        slow = [r for r in during if r.dt > bound]
        tap.ok(not slow, "[%s] in the stall no request waits past the statement timeout + 2 s "
               "(%.1f s; longest %.2f s)" % (f.name, bound, max([r.dt for r in during] or [0])),
               [L.describe(r, load.t_start) for r in slow][:5])
        hz = [r for r in during if r.kind == "healthz"]
        hz_slow = [r for r in hz if r.err is not None or r.status != 200 or r.dt > LIMIT_HEALTHZ]
        tap.ok(hz and not hz_slow, "[%s] in the stall /healthz answers 200 within %.0f s (%d, longest %.3f s)"
               % (f.name, LIMIT_HEALTHZ, len(hz), max([r.dt for r in hz] or [0])),
               [L.describe(r, load.t_start) for r in hz_slow][:5])

        after = sorted([r for r in mine if r.t0 >= stall_end], key=lambda r: r.t0)
        first_ok = next((r for r in after if r.kind == "stock" and r.status == 200 and r.err is None), None)
        healed = first_ok.t0 + first_ok.dt - stall_end if first_ok else None
        tap.ok(healed is not None and healed <= LIMIT_HEAL,
               "[%s] a stock check answers 200 within %.0f s of SIGCONT (%s)" % (
                   f.name, LIMIT_HEAL, "%.2f s" % healed if healed is not None else "never"),
               [L.describe(r, load.t_start) for r in after[:8]])
        late = [r for r in after if r.t0 >= stall_end + LIMIT_ALL]
        bad = [r for r in late if L.failed(r)]
        tap.ok(late and not bad, "[%s] from %.0f s after SIGCONT every request succeeds (%d, %d failed)"
               % (f.name, LIMIT_ALL, len(late), len(bad)),
               [L.describe(r, load.t_start) for r in bad][:8])
        tap.note("[%s] %s" % (f.name, L.fmt_summary(L.summary(mine))))
    tap.done()


if __name__ == "__main__":
    main()
