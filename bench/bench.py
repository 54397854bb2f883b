#!/usr/bin/env python3
"""Side-by-side benchmarks for sluice, run by hand (never by CI).

    python3 bench/bench.py parse   [--rounds 3]   # parse speed vs wc -l, and flat memory
    python3 bench/bench.py pacing  [--rounds 3]   # rate accuracy and lag at 1k/5k/20k req/s, CSV on
    python3 bench/bench.py memory  [--rounds 3]   # peak RSS: 2M-line log vs 10k-line log at max rate
    python3 bench/bench.py throughput [--rounds 3] # --rate max vs oha -z and wrk -t1, 64 connections
    python3 bench/bench.py cpu     [--rounds 3]   # loader CPU per 100k requests at 5k and 20k req/s vs oha -q
    python3 bench/bench.py all

Each comparison runs its configurations interleaved, round after round, and reports the median
and min-max: the machine is small and shared, so absolute figures wander and only same-run
ratios mean much. Results are appended to bench/RESULTS.md with the date, machine and commands.

Load goes only to a server this script starts on 127.0.0.1: nginx when it is installed (the
neutral target), else `sluice mock`. Every run is bounded in time.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "bench", "data")
OUT = os.path.join(ROOT, "bench", "out")
SLUICE = os.path.join(ROOT, "target", "release", "sluice")
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
RUN_LIMIT = 120  # seconds: no single benchmarked command may run longer


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build():
    sh(["cargo", "build", "--release", "--quiet", "--bin", "sluice"], cwd=ROOT)


def ensure_log(name, lines, get_only=False):
    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, name)
    if not os.path.exists(path):
        print(f"generating {path} ({lines} lines)", file=sys.stderr)
        args = [sys.executable, os.path.join(ROOT, "bench", "gen_log.py"), str(lines), path]
        sh(args + (["--get-only"] if get_only else []))
    return path


def timed(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (wall seconds, peak RSS in KiB of that child, stderr text)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    p = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, timeout=RUN_LIMIT, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in (0,):
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, after.ru_maxrss, cpu, p.stderr


def peak_rss(cmd):
    """Peak RSS of one command, measured in a fresh interpreter so earlier children do not count."""
    code = (
        "import resource,subprocess,sys;"
        f"p=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL,timeout={RUN_LIMIT});"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", code] + cmd, capture_output=True, text=True, check=True).stdout.split()
    if out[1] != "0":
        raise RuntimeError(f"{' '.join(cmd)} exited {out[1]}")
    return int(out[0])


def med(xs):
    return statistics.median(xs)


def fmt_range(xs, f="{:.1f}"):
    return f"{f.format(med(xs))} ({f.format(min(xs))}–{f.format(max(xs))})"


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run([SLUICE, "--version"], capture_output=True, text=True).stdout.strip()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; {version}; {rustc}"


def record(title, lines):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"\n## {title} — {stamp}\n\nMachine: {machine()}\n\n" + "\n".join(lines) + "\n"
    with open(RESULTS, "a") as f:
        f.write(text)
    print(text)


# --------------------------------------------------------------------------------------------
# parse: sluice parse --output none vs wc -l, and flat memory


def bench_parse(rounds):
    big = ensure_log("combined-1m.log", 1_000_000)
    small = ensure_log("combined-10k.log", 10_000)
    size = os.path.getsize(big)
    cmds = {
        "wc -l": ["wc", "-l", big],
        "sluice parse --format nginx --output none": [SLUICE, "parse", big, "--format", "nginx", "--output", "none"],
    }
    if shutil.which("goaccess"):
        cmds["goaccess --log-format=COMBINED"] = ["goaccess", big, "--log-format=COMBINED", "--no-global-config",
                                                   "-o", os.path.join(tempfile.gettempdir(), "goaccess.json")]
    walls = {k: [] for k in cmds}
    for _ in range(rounds):
        for name, cmd in cmds.items():
            wall, _, _, _ = timed(cmd)
            walls[name].append(wall)
    rss_big = [peak_rss(cmds["sluice parse --format nginx --output none"]) for _ in range(rounds)]
    rss_small = [peak_rss([SLUICE, "parse", small, "--format", "nginx", "--output", "none"]) for _ in range(rounds)]
    mbs = {k: [size / 1e6 / w for w in v] for k, v in walls.items()}
    sluice_key = "sluice parse --format nginx --output none"
    lines = [
        f"Input: `bench/data/combined-1m.log`, 1,000,000 lines, {size:,} bytes (generated by `bench/gen_log.py`), page cache warm.",
        f"{rounds} rounds, commands interleaved; median (min–max).",
        "",
        "| command | seconds | MB/s | lines/s |",
        "|---|---|---|---|",
    ]
    for k in cmds:
        lines.append(f"| `{k}` | {fmt_range(walls[k], '{:.3f}')} | {fmt_range(mbs[k], '{:.0f}')} | "
                     f"{med([1e6 / w for w in walls[k]]):,.0f} |")
    ratio = med([a / b for a, b in zip(walls[sluice_key], walls["wc -l"])])
    lines += [
        "",
        f"- sluice parse: **{med(mbs[sluice_key]):.0f} MB/s**; `wc -l` is {ratio:.1f}× faster (the floor of reading the bytes).",
        f"- Peak RSS: 1M lines {med(rss_big) / 1024:.1f} MiB vs 10k lines {med(rss_small) / 1024:.1f} MiB "
        f"(ratio {med(rss_big) / med(rss_small):.2f}×).",
        "",
        "Command: `python3 bench/bench.py parse`",
    ]
    record("Parse speed", lines)


# --------------------------------------------------------------------------------------------
# a loopback target


class Target:
    """nginx on 127.0.0.1 with a minimal config when installed (the neutral target), else sluice mock."""

    def __init__(self):
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="sluice-bench-")
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx:
            port = 18181
            conf = os.path.join(self.tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""worker_processes 1; daemon off; pid {self.tmp}/nginx.pid; error_log {self.tmp}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 300;
  client_body_temp_path {self.tmp}; proxy_temp_path {self.tmp}; fastcgi_temp_path {self.tmp};
  uwsgi_temp_path {self.tmp}; scgi_temp_path {self.tmp};
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }} }}
""")
            self.proc = subprocess.Popen([nginx, "-c", conf, "-p", self.tmp], stderr=subprocess.DEVNULL)
            self.url = f"http://127.0.0.1:{port}"
            self.name = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
        else:
            self.proc = subprocess.Popen([SLUICE, "mock", "--quiet"], stdout=subprocess.PIPE, text=True)
            self.url = self.proc.stdout.readline().strip()
            self.name = "sluice mock"
        time.sleep(0.5)

    def close(self):
        if self.proc:
            self.proc.send_signal(signal.SIGQUIT if "nginx" in self.name else signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def csv_lag(path):
    """Lag figures straight from the CSV: p99 and the earliest send, in ms, plus the row count."""
    lags = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            lags.append(float(row["lag_ms"]))
    lags.sort()
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
    return {"n": len(lags), "p50": p(0.5), "p99": p(0.99), "max": lags[-1], "min": lags[0]}


def bench_pacing(rounds, seconds=10):
    log = ensure_log("get-2m.log", 2_000_000, get_only=True)
    os.makedirs(OUT, exist_ok=True)
    target = Target()
    rates = [1000, 5000, 20000]
    res = {r: [] for r in rates}
    try:
        for _ in range(rounds):
            for rate in rates:
                out = os.path.join(OUT, f"pace-{rate}.csv")
                cmd = [SLUICE, "replay", log, "--format", "nginx", "--target", target.url, "--rate", str(rate),
                       "--duration", f"{seconds}s", "--out", out, "--progress", "never", "--concurrency", "64"]
                wall, _, cpu, _ = timed(cmd)
                lag = csv_lag(out)
                res[rate].append({"achieved": lag["n"] / seconds, "cpu": cpu, **lag})
                time.sleep(1)
    finally:
        target.close()
    lines = [
        f"Target: {target.name} on 127.0.0.1 (same 2 cores). Log: `bench/data/get-2m.log`. {seconds} s per run, "
        f"64 connections, CSV on. {rounds} rounds interleaved; median (min–max). Lag = sent_at − (T0 + n/N), from the CSV.",
        "",
        "| target req/s | achieved req/s | off target | lag p50 ms | lag p99 ms | lag max ms | earliest ms | loader CPU s / 100k req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rate in rates:
        rs = res[rate]
        lines.append(
            f"| {rate:,} | {fmt_range([r['achieved'] for r in rs], '{:,.1f}')} | "
            f"{med([abs(r['achieved'] / rate - 1) * 100 for r in rs]):.2f}% | "
            f"{fmt_range([r['p50'] for r in rs], '{:.3f}')} | {fmt_range([r['p99'] for r in rs], '{:.3f}')} | "
            f"{fmt_range([r['max'] for r in rs], '{:.2f}')} | {fmt_range([r['min'] for r in rs], '{:.3f}')} | "
            f"{fmt_range([r['cpu'] / (r['n'] / 1e5) for r in rs], '{:.2f}')} |")
    lines += ["", f"Command: `python3 bench/bench.py pacing` (each run: `sluice replay bench/data/get-2m.log --format nginx "
                  f"--target URL --rate N --duration {seconds}s --concurrency 64 --out bench/out/pace-N.csv`)"]
    record("Pacing accuracy", lines)


def bench_memory(rounds, seconds=15):
    big = ensure_log("get-2m.log", 2_000_000, get_only=True)
    small = ensure_log("get-10k.log", 10_000, get_only=True)
    os.makedirs(OUT, exist_ok=True)
    target = Target()
    rss = {"2M lines": [], "10k lines": []}
    try:
        for _ in range(rounds):
            for name, log in (("2M lines", big), ("10k lines", small)):
                cmd = [SLUICE, "replay", log, "--format", "nginx", "--target", target.url, "--rate", "max",
                       "--duration", f"{seconds}s", "--out", os.path.join(OUT, "memory.csv"), "--progress", "never"]
                rss[name].append(peak_rss(cmd) / 1024)
                time.sleep(1)
    finally:
        target.close()
    ratio = med(rss["2M lines"]) / med(rss["10k lines"])
    lines = [
        f"`sluice replay LOG --rate max --duration {seconds}s` against {target.name}; peak RSS in MiB, "
        f"{rounds} rounds interleaved; median (min–max).",
        "",
        "| log | peak RSS MiB |",
        "|---|---|",
    ] + [f"| {k} | {fmt_range(v)} |" for k, v in rss.items()] + [
        "",
        f"Ratio 2M / 10k: **{ratio:.2f}×**.",
        "",
        "Command: `python3 bench/bench.py memory`",
    ]
    record("Memory while streaming", lines)


def oha_bin():
    for candidate in (shutil.which("oha"), "/opt/oha/bin/oha", os.path.expanduser("~/.cargo/bin/oha")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def version_of(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else "?"


def bench_throughput(rounds, seconds=10):
    log = ensure_log("get-2m.log", 2_000_000, get_only=True)
    os.makedirs(OUT, exist_ok=True)
    target = Target()
    oha = oha_bin()
    cmds = {
        "sluice --rate max (CSV on)": [SLUICE, "replay", log, "--format", "nginx", "--target", target.url, "--rate", "max",
                                       "--concurrency", "64", "--duration", f"{seconds}s",
                                       "--out", os.path.join(OUT, "max.csv"), "--progress", "never",
                                       "--summary-json", os.path.join(OUT, "max.json")],
        "wrk -t1 -c64": ["wrk", "-t1", "-c64", f"-d{seconds}s", target.url + "/"],
    }
    if oha:
        cmds["oha -c 64"] = [oha, "-z", f"{seconds}s", "-c", "64", "--no-tui", "--output-format", "json", target.url + "/"]
    rates = {k: [] for k in cmds}
    cpus = {k: [] for k in cmds}
    try:
        for _ in range(rounds):
            for name, cmd in cmds.items():
                if name.startswith("sluice"):
                    wall, _, cpu, _ = timed(cmd)
                    done = json.load(open(os.path.join(OUT, "max.json")))["requests_sent"]
                elif name.startswith("wrk"):
                    wall, _, cpu, _ = timed_capture(cmd)
                    done = wrk_requests(LAST_STDOUT[0])
                else:
                    wall, _, cpu, _ = timed_capture(cmd)
                    done = oha_requests(LAST_STDOUT[0])
                rates[name].append(done / seconds)
                cpus[name].append(cpu / (done / 1e5))
                time.sleep(1)
    finally:
        target.close()
    base = "oha -c 64" if oha else "wrk -t1 -c64"
    lines = [
        f"Target: {target.name} on 127.0.0.1 (same 2 cores). {seconds} s per run, 64 connections; sluice writes its CSV. "
        f"{rounds} rounds interleaved; median (min–max). Peers: {version_of(['wrk', '-v']) if shutil.which('wrk') else '-'}; "
        f"{version_of([oha, '--version']) if oha else 'oha not installed'}.",
        "",
        "| tool | req/s | CPU s / 100k req | × " + base + " (req/s) |",
        "|---|---|---|---|",
    ]
    for k in cmds:
        ratio = med([a / b for a, b in zip(rates[k], rates[base])])
        lines.append(f"| `{k}` | {fmt_range(rates[k], '{:,.0f}')} | {fmt_range(cpus[k], '{:.2f}')} | {ratio:.2f} |")
    lines += ["", "Commands: " + "; ".join(f"`{' '.join(c).replace(ROOT + '/', '')}`" for c in cmds.values()),
              "", "Command: `python3 bench/bench.py throughput`"]
    record("Max throughput", lines)


def bench_cpu(rounds, seconds=10):
    log = ensure_log("get-2m.log", 2_000_000, get_only=True)
    os.makedirs(OUT, exist_ok=True)
    oha = oha_bin()
    if not oha:
        sys.exit("oha is not installed: run bench/run.sh, which installs it")
    target = Target()
    res = {}
    try:
        for _ in range(rounds):
            for rate in (5000, 20000):
                for tool in ("sluice", "oha -q"):
                    if tool == "sluice":
                        cmd = [SLUICE, "replay", log, "--format", "nginx", "--target", target.url, "--rate", str(rate),
                               "--concurrency", "64", "--duration", f"{seconds}s", "--out", os.path.join(OUT, "cpu.csv"),
                               "--progress", "never", "--summary-json", os.path.join(OUT, "cpu.json")]
                        _, _, cpu, _ = timed(cmd)
                        done = json.load(open(os.path.join(OUT, "cpu.json")))["requests_sent"]
                    else:
                        cmd = [oha, "-z", f"{seconds}s", "-c", "64", "-q", str(rate), "--no-tui", "--output-format", "json",
                               target.url + "/"]
                        _, _, cpu, _ = timed_capture(cmd)
                        done = oha_requests(LAST_STDOUT[0])
                    res.setdefault((rate, tool), []).append((cpu / (done / 1e5), done / seconds))
                    time.sleep(1)
    finally:
        target.close()
    lines = [
        f"Loader user+sys CPU per 100,000 requests at a fixed rate, {seconds} s, 64 connections, against {target.name}; "
        f"sluice writes its CSV. {rounds} rounds interleaved; median (min–max).",
        "",
        "| rate | tool | CPU s / 100k req | achieved req/s | × oha |",
        "|---|---|---|---|---|",
    ]
    for rate in (5000, 20000):
        for tool in ("sluice", "oha -q"):
            cpu = [c for c, _ in res[(rate, tool)]]
            ratio = med([a[0] / b[0] for a, b in zip(res[(rate, tool)], res[(rate, "oha -q")])])
            lines.append(f"| {rate:,} | {tool} | {fmt_range(cpu, '{:.2f}')} | "
                         f"{fmt_range([r for _, r in res[(rate, tool)]], '{:,.0f}')} | {ratio:.2f} |")
    lines += ["", "Command: `python3 bench/bench.py cpu`"]
    record("CPU per 100k requests at a fixed rate", lines)


LAST_STDOUT = [""]


def timed_capture(cmd):
    """Like timed(), keeping stdout (peers report their counts there)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_LIMIT, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
    LAST_STDOUT[0] = p.stdout
    return wall, after.ru_maxrss, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), p.stderr


def wrk_requests(text):
    for line in text.splitlines():
        if "requests in" in line:
            return int(line.strip().split()[0])
    raise RuntimeError("no request count in wrk output:\n" + text)


def oha_requests(text):
    data = json.loads(text)
    dist = data.get("statusCodeDistribution", {})
    return sum(int(v) for v in dist.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["parse", "pacing", "memory", "throughput", "cpu", "all"])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    build()
    if a.what in ("parse", "all"):
        bench_parse(a.rounds)
    if a.what in ("pacing", "all"):
        bench_pacing(a.rounds)
    if a.what in ("memory", "all"):
        bench_memory(a.rounds)
    if a.what in ("throughput", "all"):
        bench_throughput(a.rounds)
    if a.what in ("cpu", "all"):
        bench_cpu(a.rounds)


if __name__ == "__main__":
    main()
