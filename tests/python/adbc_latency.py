#!/usr/bin/env python3
"""Latency of one small governed query through the ADBC Flight SQL driver.

Connects once (a bearer token), runs --sql --warmup times unmeasured, then --runs times,
each a full cursor.execute + fetch_arrow_table (GetFlightInfo and DoGet), and prints one
JSON object on stdout:

  {"ok": true, "runs": n, "median_ms": m, "p90_ms": p, "min_ms": lo, "rows": r,
   "execute_median_ms": e, "fetch_median_ms": f}

(execute: cursor.execute, the GetFlightInfo, after which the driver starts the DoGet on
its own goroutines; fetch: fetch_arrow_table, waiting for that DoGet's batches)

or {"ok": false, "error": "...", "kind": "..."} with exit status 3. `gridhub bench latency`
runs it with the interpreter tests/python/setup.sh prints.
"""

import argparse
import json
import statistics
import sys
import time


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uri", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--sql", required=True)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args(argv)
    try:
        from adbc_driver_flightsql import DatabaseOptions, dbapi

        conn = dbapi.connect(
            args.uri,
            db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {args.token}"},
            autocommit=True,
        )
        times, executes, fetches = [], [], []
        rows = None
        with conn.cursor() as cur:
            for i in range(args.warmup + args.runs):
                started = time.perf_counter()
                cur.execute(args.sql)
                executed = time.perf_counter()
                table = cur.fetch_arrow_table()
                ended = time.perf_counter()
                rows = table.num_rows
                if i >= args.warmup:
                    times.append((ended - started) * 1000.0)
                    executes.append((executed - started) * 1000.0)
                    fetches.append((ended - executed) * 1000.0)
        conn.close()
        times.sort()
        result = {
            "ok": True,
            "runs": len(times),
            "median_ms": statistics.median(times),
            "p90_ms": times[int(0.9 * (len(times) - 1))],
            "min_ms": times[0],
            "rows": rows,
            "execute_median_ms": statistics.median(executes),
            "fetch_median_ms": statistics.median(fetches),
        }
        print(json.dumps(result))
        return 0
    except Exception as e:  # noqa: BLE001 - every failure becomes JSON
        print(json.dumps({"ok": False, "error": str(e), "kind": type(e).__name__}))
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
