"""Import a generated customer CSV into a fresh SQLite database and print rows/s and peak RSS.

    .venv/bin/python bench/import_customers.py --rows 1000000 [--keep DIR]

The CSV is realistic: Chinese headers, GBK-free UTF-8 with BOM, names, mobile numbers in several
notations, emails, gender words, birth dates in mixed formats, addresses, tags, external ids and
organisations; about 1% of rows are bad (invalid phone, impossible date, broken email). The
import runs as `rapport import customers FILE --json` in a child process (end to end: reading,
normalisation, validation, matching, encryption, search terms, commits); RSS is the child's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭"
    "曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖"
    "贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强玉兰红梅文博浩然子涵欣怡梓轩一诺"
CITIES = [
    ("上海市", "上海市", "浦东新区"),
    ("北京市", "北京市", "朝阳区"),
    ("广东省", "广州市", "天河区"),
    ("浙江省", "杭州市", "西湖区"),
    ("江苏省", "南京市", "鼓楼区"),
    ("四川省", "成都市", "武侯区"),
]
TAGS = ["VIP", "新客", "老客户", "线上", "门店", "高价值", "团购"]
ORGS = [f"星辰贸易{i}有限公司" for i in range(200)]
PREFIXES = [
    *map(str, range(130, 140)),
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "176",
    "177",
    "178",
    *map(str, range(180, 190)),
]
HEADER = ["客户编号", "姓名", "手机", "邮箱", "性别", "生日", "地址", "标签", "公司"]


def generate(path: Path, rows: int, seed: int = 7, bad_share: float = 0.01) -> int:
    rng = random.Random(seed)
    bad = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        fh.write(",".join(HEADER) + "\n")
        for i in range(rows):
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
            number = f"{rng.choice(PREFIXES)}{rng.randrange(10**8):08d}"
            style = rng.random()
            phone = (
                number
                if style < 0.6
                else f"{number[:3]} {number[3:7]} {number[7:]}"
                if style < 0.8
                else f"+86-{number}"
            )
            email = f"u{i}.{rng.randrange(1000)}@example.com" if rng.random() < 0.7 else ""
            gender = rng.choice(("男", "女", "M", "F", "先生", "女士", ""))
            y, m, d = rng.randrange(1950, 2005), rng.randrange(1, 13), rng.randrange(1, 29)
            birth = rng.choice((f"{y}-{m:02d}-{d:02d}", f"{y}/{m}/{d}", f"{y}年{m}月{d}日"))
            prov, city, dist = rng.choice(CITIES)
            address = f"{prov}{city if city != prov else ''}{dist}人民路{rng.randrange(1, 999)}号"
            tags = ";".join(rng.sample(TAGS, rng.randrange(0, 3)))
            org = rng.choice(ORGS) if rng.random() < 0.2 else ""
            if rng.random() < bad_share:
                bad += 1
                which = rng.randrange(3)
                if which == 0:
                    phone = "12345"
                elif which == 1:
                    birth = f"{y}-02-30"
                else:
                    email = "not-an-email@"
            cells = [f"C{i:08d}", name, phone, email, gender, birth, address, tags, org]
            fh.write(",".join(cells) + "\n")
    return bad


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children (the preparing process), in MiB."""
    total = 0
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rapport-import-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / "customers.csv"
    started = time.perf_counter()
    bad = generate(csv_path, args.rows)
    print(
        f"generated {args.rows:,} rows ({bad:,} bad, {csv_path.stat().st_size / 1e6:.0f} MB) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    db = work / "bench.db"
    db.unlink(missing_ok=True)
    env = {**os.environ, "RAPPORT_DATA_DIR": str(work), "RAPPORT_DATABASE_URL": f"sqlite:///{db}"}
    rapport = [sys.executable, "-m", "rapport.cli.main"]
    subprocess.run([*rapport, "db", "upgrade"], check=True, env=env, capture_output=True)
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*rapport, "import", "customers", str(csv_path), "--json", "--batch-size", str(args.batch_size)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Memory of the import and its preparing process together, sampled twice a second.
    samples: list[tuple[float, float]] = []
    while proc.poll() is None:
        samples.append((time.perf_counter() - started, tree_rss_mib(proc.pid)))
        time.sleep(0.5)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"import failed ({proc.returncode}): {err[-2000:]}")
    seconds = time.perf_counter() - started
    result = json.loads(out.strip().splitlines()[-1])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = max((rss for _, rss in samples), default=0.0)
    cpu = (usage.ru_utime + usage.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    print(json.dumps(result, ensure_ascii=False))
    last = samples[-1][1] if samples else 0.0
    at = {q: next((rss for t, rss in samples if t >= seconds * q / 100), last) for q in (25, 50, 75, 95)}
    quarters = [f"{q}%: {rss:.0f}" for q, rss in at.items()]
    print(
        f"{args.rows:,} rows in {seconds:.1f} s: {args.rows / seconds:,.0f} rows/s end to end; "
        f"peak RSS (import + preparing process) {peak:.0f} MiB; at {', '.join(quarters)} MiB"
    )
    # On a shared machine wall time mostly measures the other jobs; CPU time is the import's own
    # (both processes: the preparing process is a child of the import).
    print(
        f"CPU {cpu:.1f} s: {args.rows / cpu:,.0f} rows per CPU-second; load average {os.getloadavg()[0]:.1f}"
    )
    # Idempotent re-run: nothing created or updated.
    started = time.perf_counter()
    again = subprocess.run(
        [*rapport, "import", "customers", str(csv_path), "--json", "--batch-size", str(args.batch_size)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    print("re-run:", again.stdout.strip().splitlines()[-1], f"({args.rows / seconds:,.0f} rows/s)")


if __name__ == "__main__":
    main()
