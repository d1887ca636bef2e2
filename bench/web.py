"""Web workspace benchmark: server time of the customers list and the customer 360 HTML pages.

    .venv/bin/python bench/web.py --customers 1000000            # goal: p99 <= 100 ms per page
    .venv/bin/python bench/web.py --customers 100000 --requests 300
    .venv/bin/python bench/web.py --data-dir DIR                  # reuse a data dir with demo data

Loads demo data into a fresh SQLite data dir (or reuses --data-dir), starts `rapport serve` on
127.0.0.1, logs in through the login page like a browser (session cookie), then requests each
page one at a time (no queueing: the figure is the server's time plus a loopback round trip)
and prints p50/p95/p99/max per scenario. Traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import html
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
PASSWORD = "Bench-Password-2026!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server at {url} did not come up")


def browser(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30, headers={"Accept-Language": "zh-CN"})
    r = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"})
    if r.status_code != 303:
        raise SystemExit(f"login as {username} failed: {r.status_code}")
    return client


def api_token(base: str, username: str) -> str:
    r = httpx.post(f"{base}/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    r.raise_for_status()
    return str(r.json()["access_token"])


def previous_page_paths(base: str, username: str) -> list[str]:
    """The "previous page" links of the customer list's 2nd to 4th pages, as a user follows them."""
    out = []
    client = browser(base, username)
    url = "/customers"
    for _ in range(3):
        found = re.search(
            r'href="(/customers\?[^"]*cursor=[^"]*)"[^>]*data-testid="next-page"', client.get(url).text
        )
        if not found:
            break
        url = html.unescape(found.group(1))
        back = re.search(r'href="(/customers\?[^"]*)"[^>]*data-testid="prev-page"', client.get(url).text)
        if back:
            out.append(html.unescape(back.group(1)))
    client.close()
    return out or ["/customers"]


def measure(client: httpx.Client, paths: list[str], n: int) -> dict[str, float]:
    times = []
    for i in range(n):
        path = paths[i % len(paths)]
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"GET {path}: {r.status_code}")
    times.sort()

    def pct(p: float) -> float:
        return times[min(len(times) - 1, round(p * (len(times) - 1)))]

    return {
        "n": n,
        "p50": statistics.median(times),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "max": times[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--max-orders", type=int, default=4, help="orders per demo customer at most (load time)")
    ap.add_argument("--requests", type=int, default=300, help="requests per scenario")
    ap.add_argument("--data-dir", type=Path, help="reuse a data dir that already holds demo data")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rapport-webbench-"))
    env = {**os.environ, "RAPPORT_DATA_DIR": str(data_dir), "RAPPORT_DEMO_PASSWORD": PASSWORD}
    env.pop("RAPPORT_DATABASE_URL", None)
    if not (data_dir / "rapport.db").exists():
        t0 = time.monotonic()
        subprocess.run(
            [
                str(BIN / "rapport"),
                "demo",
                "--customers",
                str(args.customers),
                "--seed",
                str(args.seed),
                "--max-orders",
                str(args.max_orders),
                "--no-progress",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"demo load: {args.customers:,} customers in {time.monotonic() - t0:.0f}s")

    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "rapport"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{base}/healthz")
        # Sample records through the API (contact values are sealed in the database).
        token = api_token(base, "sales.east")
        with httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}) as api:
            page = api.get("/customers", params={"limit": 200}).json()["items"]
            ids = [c["id"] for c in page]
            surnames = sorted({c["display_name"][:1] for c in page if c.get("display_name")})[:20]
            cps = api.get("/contact-points", params={"limit": 200}).json()["items"]
            phones = [cp["value"] for cp in cps if cp.get("kind") == "phone" and cp.get("value")][:50]
        rng = random.Random(1)
        rng.shuffle(ids)
        # A phone typed the way people do: "138 0013 8000".
        spaced = [p[-11:-8] + " " + p[-8:-4] + " " + p[-4:] for p in phones]
        quote = urllib.parse.quote
        scenarios: dict[str, tuple[str, list[str]]] = {
            "list, first page (rep)": ("sales.east", ["/customers"]),
            "list, first page (admin)": ("admin", ["/customers"]),
            "list, htmx results (rep)": ("sales.east", ["/customers?sort=-id"]),
            "list, stage filter": ("sales.east", ["/customers?lifecycle_stage=customer"]),
            "list, sorted by name": ("sales.east", ["/customers?sort=display_name"]),
            "list, search name": ("sales.east", [f"/customers?q={quote(s)}" for s in surnames]),
            "list, search name by name": (
                "sales.east",
                [f"/customers?q={quote(s)}&sort=display_name" for s in surnames],
            ),
            "list, previous page": ("sales.east", []),  # filled in below from a second page
            "list, search phone": (
                "sales.east",
                [f"/customers?q={quote(p)}" for p in spaced] or ["/customers"],
            ),
            "customer 360 (rep)": ("sales.east", [f"/customers/{i}" for i in ids]),
            "customer 360 (admin)": ("admin", [f"/customers/{i}" for i in ids]),
            "home dashboard (rep)": ("sales.east", ["/", "/dashboard/figures"]),
        }
        scenarios["list, previous page"] = ("sales.east", previous_page_paths(base, "sales.east"))
        clients: dict[str, httpx.Client] = {}
        results = {}
        for name, (user, paths) in scenarios.items():
            client = clients.get(user) or clients.setdefault(user, browser(base, user))
            headers = {"HX-Request": "true", "HX-Target": "results"} if "htmx" in name else {}
            client.headers.update(headers)
            measure(client, paths, min(20, args.requests))  # warm-up
            results[name] = measure(client, paths, args.requests)
            for h in headers:
                client.headers.pop(h)
        total = httpx.get(f"{base}/healthz").status_code and args.customers
        print(f"\n{total:,} demo customers (SQLite), one server process, sequential requests, loopback")
        print(f"{'page':<28}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for name, r in results.items():
            print(f"{name:<28}{r['n']:>6.0f}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}")
        worst = max(r["p99"] for r in results.values())
        print(f"worst p99 {worst:.1f} ms (goal <= 100 ms)")
        for c in clients.values():
            c.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
