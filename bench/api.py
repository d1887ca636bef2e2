"""API benchmark: Rapport against the machine's limit (raw Starlette + sqlite3), same run.

    .venv/bin/python bench/api.py --customers 100000 --duration 15

Loads demo data into a fresh SQLite file (or reuses --data-dir), starts both servers on
127.0.0.1, drives them with wrk (Debian package `wrk`) at 32 connections for a bounded time and
prints requests/s and p50/p99 for: GET customer by id (authenticated, scoped, audited), list,
search by name, search by phone, and create. Traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback only)
                return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"server at {url} did not come up")


def login(base: str, username: str, password: str) -> str:
    data = urllib.parse.urlencode({"username": username, "password": password}).encode()
    req = urllib.request.Request(f"{base}/api/v1/auth/token", data=data)  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
        return str(orjson.loads(r.read())["access_token"])


_LUA = """
local paths = {%(paths)s}
local method = "%(method)s"
local body_tpl = %(body)s
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local path = paths[math.random(#paths)]
  if body_tpl then
    local body = string.gsub(body_tpl, "NUM", tostring(n) .. "-" .. tostring(math.random(1000000000)))
    return wrk.format(method, path, nil, body)
  end
  return wrk.format(method, path)
end
"""


def run_wrk(
    base: str,
    paths: list[str],
    token: str,
    seconds: int,
    conns: int,
    method: str = "GET",
    body: str | None = None,
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            _LUA
            % {
                "paths": ",".join(f'"{p}"' for p in paths),
                "method": method,
                "body": "[[" + body + "]]" if body else "nil",
                "token": token,
            }
        )
        script = f.name
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script)
    return parse_wrk(out)


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return float(m.group(1)) * scale


def parse_wrk(out: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--data-dir", type=Path, help="reuse a data dir that already holds demo data")
    ap.add_argument("--only", help="comma-separated scenarios to run")
    ap.add_argument(
        "--workers", type=int, default=1, help="server processes for Rapport and the raw baseline"
    )
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is required: apt-get install wrk")

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rapport-bench-"))
    db_path = data_dir / "rapport.db"
    password = "Bench-Password-2026!"
    env = {**os.environ, "RAPPORT_DATA_DIR": str(data_dir), "RAPPORT_DEMO_PASSWORD": password}
    env.pop("RAPPORT_DATABASE_URL", None)
    if not db_path.exists():
        t0 = time.monotonic()
        subprocess.run(
            [str(BIN / "rapport"), "demo", "--customers", str(args.customers), "--seed", "7"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"demo load: {args.customers} customers in {time.monotonic() - t0:.1f}s")

    conn = sqlite3.connect(db_path)
    (team_id,) = conn.execute("SELECT team_id FROM app_user WHERE username = 'sales.east'").fetchone()
    ids = [
        r[0]
        for r in conn.execute("SELECT id FROM customer WHERE team_id = ? ORDER BY id LIMIT 2000", (team_id,))
    ]
    all_ids = [r[0] for r in conn.execute("SELECT id FROM customer ORDER BY random() LIMIT 2000")]
    phones = [
        r[0]
        for r in conn.execute(
            "SELECT cp.value_normalized FROM contact_point cp JOIN customer c ON c.id = cp.customer_id "
            "WHERE cp.kind = 'phone' AND c.team_id = ? LIMIT 500",
            (team_id,),
        )
    ]
    surnames = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT substr(display_name, 1, 2) FROM customer WHERE team_id = ? LIMIT 50", (team_id,)
        )
    ]
    total = conn.execute("SELECT count(*) FROM customer").fetchone()[0]
    conn.close()

    raw_port, app_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [
                str(BIN / "uvicorn"),
                "bench.raw_baseline:app",
                "--workers",
                str(args.workers),
                "--port",
                str(raw_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env={**env, "RAW_DB_PATH": str(db_path)},
        ),
        subprocess.Popen(
            [str(BIN / "rapport"), "serve", "--port", str(app_port), "--workers", str(args.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        raw, base = f"http://127.0.0.1:{raw_port}", f"http://127.0.0.1:{app_port}"
        wait_up(f"{raw}/raw/async/customers/{all_ids[0]}")
        wait_up(f"{base}/healthz")
        token = login(base, "sales.east", password)
        secs, conns = args.duration, args.connections
        scenarios = {
            # The limit: bare Starlette + sqlite3 querying on the event loop...
            "raw async GET (limit)": lambda: run_wrk(
                raw, [f"/raw/async/customers/{i}" for i in all_ids], token, secs, conns
            ),
            # ...and the same query from a plain ``def`` handler, which runs in a thread pool.
            "raw sync GET": lambda: run_wrk(
                raw, [f"/raw/sync/customers/{i}" for i in all_ids], token, secs, conns
            ),
            "GET customer by id": lambda: run_wrk(
                base, [f"/api/v1/customers/{i}" for i in ids], token, secs, conns
            ),
            "list customers (50)": lambda: run_wrk(base, ["/api/v1/customers?limit=50"], token, secs, conns),
            "search by name": lambda: run_wrk(
                base,
                [f"/api/v1/customers?q={urllib.parse.quote(s)}&limit=20" for s in surnames],
                token,
                secs,
                conns,
            ),
            "search by phone": lambda: run_wrk(
                base, [f"/api/v1/customers?q={urllib.parse.quote(p)}" for p in phones], token, secs, conns
            ),
            "create customer": lambda: run_wrk(
                base,
                ["/api/v1/customers"],
                token,
                secs,
                conns,
                "POST",
                '{"display_name": "压测客户NUM", "tags": ["bench"]}',
            ),
        }
        wanted = set(args.only.split(",")) if args.only else None
        results = {}
        for name, fn in scenarios.items():
            if wanted and not any(w in name for w in wanted):
                continue
            results[name] = fn()
        print(
            f"\n{total} customers, {conns} connections, {secs}s per scenario, "
            f"{args.workers} server process(es) each, 2 wrk threads, loopback"
        )
        print(f"{'scenario':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
        for name, r in results.items():
            print(f"{name:<24}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['non2xx']:>10.0f}")
        if "GET customer by id" in results:
            ours = results["GET customer by id"]["rps"]
            for raw_name in ("raw async GET (limit)", "raw sync GET"):
                if raw_name in results:
                    share = ours / results[raw_name]["rps"]
                    print(f"GET customer by id = {share:.0%} of {raw_name} (goal >= 30%, p99 <= 25 ms)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)


if __name__ == "__main__":
    main()
