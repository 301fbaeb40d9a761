#!/usr/bin/env python3
"""Command-line Flight SQL client for gridhub's integration tests.

Talks to `gridhub serve` through the ADBC Flight SQL driver (PyPI package
adbc-driver-flightsql) and prints exactly one JSON object on stdout:

  --sql:     {"ok": true, "columns": [...], "types": [...], "num_rows": n, "rows": [[...], ...]}
  --catalog: {"ok": true, "catalogs": [...], "schemas": {catalog: [schema, ...]},
              "tables": {"schema.table": [column, ...]}, "table_types": [...],
              "table_schema": {"table": "schema.table", "columns": [...], "types": [...]}}
  failure:   {"ok": false, "error": "<str(exception)>", "kind": "<class name>"}  (exit 3)

Anything else (warnings, driver logging) goes to stderr. Run it with the
interpreter printed by tests/python/setup.sh.
"""

import argparse
import datetime
import decimal
import json
import math
import os
import sys

EXIT_ERROR = 3
PURPOSE_HEADER = "x-gridhub-purpose"


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Query gridhub's Arrow Flight SQL server through ADBC "
        "and print one JSON object on stdout.")
    p.add_argument("--uri", required=True,
                   help="server URI, e.g. grpc://127.0.0.1:PORT or grpc+tls://HOST:PORT")
    p.add_argument("--token", help="bearer token (sent as 'authorization: Bearer <token>')")
    p.add_argument("--username", help="user for the Flight SQL basic-auth handshake")
    p.add_argument("--password", help="password for the Flight SQL basic-auth handshake")
    p.add_argument("--purpose", help=f"value of the '{PURPOSE_HEADER}' header sent on every call")
    p.add_argument("--tls-root-certs", metavar="FILE", help="PEM file of CA certificates to trust")
    p.add_argument("--client-cert", metavar="FILE", help="PEM client certificate chain (mTLS)")
    p.add_argument("--client-key", metavar="FILE", help="PEM client private key (mTLS)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql", help="SQL to execute")
    what.add_argument("--catalog", action="store_true",
                      help="list catalogs, schemas, tables, columns and table types")
    p.add_argument("--param", action="extend", nargs="+", default=[], metavar="VALUE",
                   help="positional parameter for --sql (repeatable; integers are sent as int)")
    args = p.parse_args(argv)

    if args.token is not None and (args.username is not None or args.password is not None):
        p.error("--token cannot be combined with --username/--password")
    if args.token is None and (args.username is None or args.password is None):
        p.error("give --token, or both --username and --password")
    if (args.client_cert is None) != (args.client_key is None):
        p.error("--client-cert and --client-key go together")
    if args.param and args.sql is None:
        p.error("--param needs --sql")
    return args


def read_text(path):
    with open(path, "r", encoding="utf-8") as f:
        return f.read()


def db_options(args):
    import adbc_driver_manager
    from adbc_driver_flightsql import DatabaseOptions

    opts = {}
    if args.token is not None:
        opts[DatabaseOptions.AUTHORIZATION_HEADER.value] = f"Bearer {args.token}"
    else:
        opts[adbc_driver_manager.DatabaseOptions.USERNAME.value] = args.username
        opts[adbc_driver_manager.DatabaseOptions.PASSWORD.value] = args.password
    if args.purpose is not None:
        opts[DatabaseOptions.RPC_CALL_HEADER_PREFIX.value + PURPOSE_HEADER] = args.purpose
    if args.tls_root_certs is not None:
        opts[DatabaseOptions.TLS_ROOT_CERTS.value] = read_text(args.tls_root_certs)
    if args.client_cert is not None:
        opts[DatabaseOptions.MTLS_CERT_CHAIN.value] = read_text(args.client_cert)
        opts[DatabaseOptions.MTLS_PRIVATE_KEY.value] = read_text(args.client_key)
    return opts


def param_value(text):
    try:
        return int(text)
    except ValueError:
        return text


def jsonable(v):
    """Arrow's Python values -> JSON-serialisable values (str() for the rest)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (datetime.date, datetime.time, datetime.timedelta,
                      decimal.Decimal, bytes, bytearray, memoryview)):
        return str(bytes(v)) if isinstance(v, (bytearray, memoryview)) else str(v)
    return str(v)


def run_sql(conn, args):
    cur = conn.cursor()
    try:
        if args.param:
            cur.execute(args.sql, parameters=[param_value(p) for p in args.param])
        else:
            cur.execute(args.sql)
        table = cur.fetch_arrow_table()
    finally:
        close_quietly(cur)
    # Column-wise, so that duplicate column names survive.
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    rows = [[jsonable(col[r]) for col in columns] for r in range(table.num_rows)]
    return {
        "ok": True,
        "columns": list(table.schema.names),
        "types": [str(f.type) for f in table.schema],
        "num_rows": table.num_rows,
        "rows": rows,
    }


def run_catalog(conn):
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    table_types = conn.adbc_get_table_types()

    catalogs = []
    schemas = {}
    tables = {}
    first = None  # (schema name, table name) of the first table found
    for cat in objects:
        cat_name = cat.get("catalog_name")
        catalogs.append(cat_name)
        names = schemas.setdefault("" if cat_name is None else cat_name, [])
        for sch in cat.get("catalog_db_schemas") or []:
            sch_name = sch.get("db_schema_name")
            names.append(sch_name)
            for tab in sch.get("db_schema_tables") or []:
                tab_name = tab.get("table_name")
                key = tab_name if sch_name in (None, "") else f"{sch_name}.{tab_name}"
                tables[key] = [c.get("column_name") for c in (tab.get("table_columns") or [])]
                if first is None:
                    first = (sch_name, tab_name)

    result = {
        "ok": True,
        "catalogs": catalogs,
        "schemas": schemas,
        "tables": tables,
        "table_types": list(table_types),
    }
    if first is not None:
        sch_name, tab_name = first
        schema = conn.adbc_get_table_schema(
            tab_name, db_schema_filter=sch_name if sch_name else None)
        result["table_schema"] = {
            "table": tab_name if not sch_name else f"{sch_name}.{tab_name}",
            "columns": list(schema.names),
            "types": [str(f.type) for f in schema],
        }
    return result


def close_quietly(obj):
    try:
        obj.close()
    except Exception as e:  # noqa: BLE001 - closing must not hide the result
        print(f"adbc_client: ignoring error on close: {type(e).__name__}: {e}", file=sys.stderr)


def main(argv):
    args = parse_args(argv)  # --help / usage errors: argparse's own output and exit

    # Keep stdout for the one JSON object: anything the driver (or a library)
    # writes to fd 1 while we work is sent to stderr instead.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    conn = None
    try:
        from adbc_driver_flightsql import dbapi

        # autocommit=True: the queries are reads, and it spares a GetSqlInfo
        # round trip (and a warning) asking whether transactions are supported.
        conn = dbapi.connect(args.uri, db_kwargs=db_options(args), autocommit=True)
        result = run_catalog(conn) if args.catalog else run_sql(conn, args)
        status = 0
    except Exception as e:  # noqa: BLE001 - every failure becomes JSON
        result = {"ok": False, "error": str(e), "kind": type(e).__name__}
        code = getattr(e, "status_code", None)
        if code is not None:
            result["adbc_status"] = getattr(code, "name", str(code))
        status = EXIT_ERROR
    finally:
        if conn is not None:
            close_quietly(conn)

    try:
        text = json.dumps(result, ensure_ascii=False, allow_nan=False)
    except Exception as e:  # noqa: BLE001
        text = json.dumps({"ok": False, "error": f"could not encode result: {e}",
                           "kind": type(e).__name__})
        status = EXIT_ERROR
    out.write(text + "\n")
    out.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
