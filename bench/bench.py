#!/usr/bin/env python3
"""Side-by-side benchmarks for sluice, run by hand (never by CI).

    python3 bench/bench.py parse   [--rounds 3]   # parse speed vs wc -l, and flat memory
    python3 bench/bench.py pacing  [--rounds 3]   # rate accuracy and lag at 1k/5k/20k req/s, CSV on
    python3 bench/bench.py memory  [--rounds 3]   # peak RSS: 2M-line log vs 10k-line log at max rate
    python3 bench/bench.py throughput [--rounds 3] # --rate max vs oha -z and wrk -t1, 64 connections
    python3 bench/bench.py cpu     [--rounds 3]   # loader CPU per 100k requests at 5k and 20k req/s vs oha -q
    python3 bench/bench.py https   [--rounds 3]   # https max throughput, HTTP/1.1 (vs oha, wrk -t1) and
                                                  # HTTP/2 (vs oha --http2); CPU per 100k at 5k req/s vs oha -q
    python3 bench/bench.py shapes  [--rounds 3] [--rate R] [--seconds S] [--smoke]
                                                  # fixed --rate R vs --stages (ramp peaking at R) vs
                                                  # --arrivals poisson vs --speed on a log logged at R/4
    python3 bench/bench.py kafka   [--rounds 3] [--seconds S]
                                                  # --target kafka:// into Tansu: messages/s at
                                                  # --rate max and CPU per 100k messages at 2,000/s,
                                                  # against `tansu perf produce` on the same broker
    python3 bench/bench.py all

Each comparison runs its configurations interleaved, round after round, and reports the median
and min-max: the machine is small and shared, so absolute figures wander and only same-run
ratios mean much. Results are appended to bench/RESULTS.md with the date, machine and commands.

Load goes only to a server this script starts on 127.0.0.1: nginx when it is installed (the
neutral target), else `sluice mock`; the kafka suite starts a Tansu broker (in-memory storage) on
127.0.0.1. Every run is bounded in time.
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
import socket
import sqlite3
import statistics
import struct
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


def make_certificates(directory):
    """A throwaway CA and a leaf for 127.0.0.1 signed by it (openssl CLI), for the https rows:
    sluice trusts the CA through SSL_CERT_FILE, as a user trusts a staging CA."""
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca-key.pem")
    leaf, leaf_key = os.path.join(directory, "leaf.pem"), os.path.join(directory, "leaf-key.pem")
    csr, ext = os.path.join(directory, "leaf.csr"), os.path.join(directory, "leaf.ext")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
        "-out", ca, "-days", "2", "-subj", "/CN=sluice bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign"], **quiet)
    sh(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", leaf_key,
        "-out", csr, "-subj", "/CN=127.0.0.1"], **quiet)
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
                "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    sh(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", leaf,
        "-days", "2", "-extfile", ext], **quiet)
    return ca, leaf, leaf_key


class Target:
    """nginx on 127.0.0.1 with a minimal config when installed (the neutral target), else sluice mock.
    nginx also listens for https (HTTP/1.1 and h2 by ALPN) with a certificate made for the run."""

    def __init__(self):
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="sluice-bench-")
        self.https_url = None
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx:
            port, tls_port = 18181, 18443
            self.ca, leaf, leaf_key = make_certificates(self.tmp)
            conf = os.path.join(self.tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""worker_processes 1; daemon off; pid {self.tmp}/nginx.pid; error_log {self.tmp}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 300;
  client_body_temp_path {self.tmp}; proxy_temp_path {self.tmp}; fastcgi_temp_path {self.tmp};
  uwsgi_temp_path {self.tmp}; scgi_temp_path {self.tmp};
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
  server {{ listen 127.0.0.1:{tls_port} ssl http2; ssl_certificate {leaf}; ssl_certificate_key {leaf_key};
    ssl_session_cache shared:TLS:1m; location / {{ return 200 "ok\\n"; }} }} }}
""")
            self.https_url = f"https://127.0.0.1:{tls_port}"
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
    """Lag figures straight from the CSV: p99 and the earliest send, in ms, plus the row count.
    Rows not sent have no lag."""
    with open(path, newline="") as f:
        return lag_figures([float(row["lag_ms"]) for row in csv.DictReader(f) if row["lag_ms"]])


def lag_figures(lags):
    lags = sorted(lags)
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
    return {"n": len(lags), "p50": p(0.5), "p99": p(0.99), "max": lags[-1], "min": lags[0],
            "early": sum(1 for x in lags if x < 0) / len(lags)}


def oha_lag(cmd, rate):
    """oha's pacing from its per-request database: the i-th send against first token + i/rate, in ms."""
    db = os.path.join(OUT, "oha-lag.db")
    if os.path.exists(db):
        os.remove(db)
    subprocess.run(cmd + ["--latency-correction", "--db-url", db], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=RUN_LIMIT, check=True)
    rows = sqlite3.connect(db).execute("select start, start_latency_correction from oha").fetchall()
    t0 = min(token for _, token in rows)
    sends = sorted(start for start, _ in rows)
    return lag_figures([(sent - (t0 + i / rate)) * 1000 for i, sent in enumerate(sends)])


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
                    _, _, cpu, _ = timed(cmd)
                    done = json.load(open(os.path.join(OUT, "max.json")))["requests_sent"]
                else:
                    cpu, done = peer_run(name, cmd)
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


# --------------------------------------------------------------------------------------------
# https: the direct TLS path (HTTP/1.1) and HTTP/2 against oha and wrk


def bench_https(rounds, seconds=8):
    log = ensure_log("get-2m.log", 2_000_000, get_only=True)
    os.makedirs(OUT, exist_ok=True)
    oha = oha_bin()
    target = Target()
    if not target.https_url:
        sys.exit("the https rows need nginx")
    url = target.https_url
    env = dict(os.environ, SSL_CERT_FILE=target.ca)

    def sluice(version, rate, name, *more):
        return [SLUICE, "replay", log, "--format", "nginx", "--target", url, "--rate", rate, "--http-version", version,
                *more, "--concurrency", "64", "--duration", f"{seconds}s", "--out", os.path.join(OUT, f"{name}.csv"),
                "--progress", "never", "--summary-json", os.path.join(OUT, f"{name}.json")]

    # oha skips verification (--insecure): it costs one handshake per connection, for sluice too.
    oha_max = [oha, "-z", f"{seconds}s", "-c", "64", "--no-tui", "--output-format", "json", "--insecure"]
    cmds = {
        "sluice --http-version 1.1 --rate max (CSV on)": sluice("1.1", "max", "https-h1"),
        "oha -c 64": oha_max + [url + "/"],
        "wrk -t1 -c64": ["wrk", "-t1", "-c64", f"-d{seconds}s", url + "/"],
        "sluice --http-version 2 --rate max (CSV on)": sluice("2", "max", "https-h2"),
        "oha -c 64 --http2": oha_max + ["--http2", url + "/"],
        "sluice --http-version 1.1 --rate 5000 (CSV on)": sluice("1.1", "5000", "https-h1-5k"),
        "oha -c 64 -q 5000": oha_max + ["-q", "5000", url + "/"],
        # Woken at most every 1 ms, the granularity of oha's tokio timer: CPU at (at least) oha's precision.
        "sluice --http-version 1.1 --rate 5000 --release-every 1ms (CSV on)":
            sluice("1.1", "5000", "https-h1-5k-1ms", "--release-every", "1ms"),
    }
    if not oha:
        print("oha is not installed (bench/run.sh installs it): its rows are left out", file=sys.stderr)
        cmds = {k: v for k, v in cmds.items() if not k.startswith("oha")}
    rates = {k: [] for k in cmds}
    cpus = {k: [] for k in cmds}
    try:
        for _ in range(rounds):
            for name, cmd in cmds.items():
                if name.startswith("sluice"):
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                       timeout=RUN_LIMIT, env=env)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if p.returncode != 0:
                        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
                    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    summary = json.load(open(cmd[cmd.index("--summary-json") + 1]))
                    if summary["errors"]:
                        raise RuntimeError(f"{name}: {summary['errors']} errors: {summary['error_messages']}")
                    done = summary["requests_sent"]
                else:
                    cpu, done = peer_run(name, cmd)
                rates[name].append(done / seconds)
                cpus[name].append(cpu / (done / 1e5))
                time.sleep(1)
        # How close to its schedule each loader sent at 5,000/s (a separate run for oha: writing its
        # per-request database would cost it CPU in the measured one).
        precision = {"sluice": csv_lag(os.path.join(OUT, "https-h1-5k.csv")),
                     "sluice --release-every 1ms": csv_lag(os.path.join(OUT, "https-h1-5k-1ms.csv"))}
        if oha:
            precision["oha -q"] = oha_lag(oha_max + ["-q", "5000", url + "/"], 5000)
    finally:
        target.close()

    def ratio(a, b, of):
        return med([x / y for x, y in zip(of[a], of[b])]) if b in of else float("nan")

    h1, h2, slow = ("sluice --http-version 1.1 --rate max (CSV on)", "sluice --http-version 2 --rate max (CSV on)",
                    "sluice --http-version 1.1 --rate 5000 (CSV on)")
    coarser = "sluice --http-version 1.1 --rate 5000 --release-every 1ms (CSV on)"
    lines = [
        f"Target: {target.name} on 127.0.0.1 (same 2 cores), https with a P-256 certificate made for the run "
        f"(openssl), h2 by ALPN. {seconds} s per run, 64 connections (sluice HTTP/2: 64 streams on 8 connections; "
        f"oha --http2: 64 connections); sluice writes its CSV and verifies the certificate, oha runs --insecure. "
        f"{rounds} rounds interleaved; median (min–max). Peers: {version_of(['wrk', '-v'])}; "
        f"{version_of([oha, '--version']) if oha else 'oha not installed'}.",
        "",
        "| tool | req/s | CPU s / 100k req |",
        "|---|---|---|",
    ]
    for k in cmds:
        lines.append(f"| `{k}` | {fmt_range(rates[k], '{:,.0f}')} | {fmt_range(cpus[k], '{:.2f}')} |")
    lines += [
        "",
        f"- https/1.1 max throughput: **{ratio(h1, 'oha -c 64', rates):.2f}× oha** (bar ≥ 1.0), "
        f"{ratio(h1, 'wrk -t1 -c64', rates):.2f}× wrk -t1.",
        f"- h2 max throughput: **{ratio(h2, 'oha -c 64 --http2', rates):.2f}× oha --http2** (bar ≥ 1.0).",
        f"- CPU per 100k requests at 5,000 req/s over https: **{ratio(slow, 'oha -c 64 -q 5000', cpus):.2f}× oha** "
        f"(bar ≤ 0.8); woken at most every 1 ms (`--release-every 1ms`): {ratio(coarser, 'oha -c 64 -q 5000', cpus):.2f}× oha.",
        "",
        "Pacing at 5,000/s over https (last round; lag = sent − due on the ideal schedule T0 + n/5000, in ms; "
        "oha's from a separate run with `--latency-correction --db-url`, its first token as T0):",
        "",
        "| loader | lag p50 | lag p99 | lag max | sent before due |",
        "|---|---|---|---|---|",
    ]
    for name, lag in precision.items():
        lines.append(f"| {name} | {lag['p50']:.3f} | {lag['p99']:.3f} | {lag['max']:.1f} | {lag['early']:.1%} |")
    lines += [
        "",
        "Commands: " + "; ".join(f"`{' '.join(c).replace(ROOT + '/', '')}`" for c in cmds.values()),
        "", "Command: `python3 bench/bench.py https`",
    ]
    record("HTTPS: HTTP/1.1 and HTTP/2", lines)


# --------------------------------------------------------------------------------------------
# shapes: pacing accuracy and CPU of each traffic shape next to a fixed rate


def ensure_timed_log(per_second, seconds):
    """A combined log of `seconds` logged seconds with `per_second` GET lines each (whole-second
    times, as nginx writes them): replayed with --speed X it plans per_second × X req/s."""
    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, f"timed-{per_second}x{seconds}.log")
    if not os.path.exists(path):
        start = datetime.datetime(2026, 11, 21, 10, 0, 0)
        with open(path, "w") as f:
            n = 0
            for s in range(seconds):
                stamp = (start + datetime.timedelta(seconds=s)).strftime("%d/%b/%Y:%H:%M:%S +0000")
                for _ in range(per_second):
                    f.write(f'10.0.0.{n % 250 + 1} - - [{stamp}] "GET /products/{n}?page={n % 7} HTTP/1.1" 200 512 '
                            f'"-" "bench-shapes"\n')
                    n += 1
    return path


def clock_seconds(text):
    """`2026-11-21 10:00:01.250` → seconds since that day's midnight (runs here never cross one)."""
    hms = text[11:]
    return int(hms[0:2]) * 3600 + int(hms[3:5]) * 60 + float(hms[6:])


def csv_per_second(path):
    """Planned (by scheduled_at) and achieved (by sent_at) requests per second of the run, from T0,
    over the whole seconds of the plan (its last, partial second left out)."""
    scheduled, sent = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            scheduled.append(clock_seconds(row["scheduled_at"]))
            if row["error"] != "not_sent":
                sent.append(clock_seconds(row["sent_at"]))
    t0 = min(scheduled)
    whole = int(max(scheduled) - t0)
    planned = [0] * whole
    achieved = [0] * whole
    for t in scheduled:
        if int(t - t0) < whole:
            planned[int(t - t0)] += 1
    for t in sent:
        if 0 <= int(t - t0) < whole:
            achieved[int(t - t0)] += 1
    return [(p, a) for p, a in zip(planned, achieved) if p > 0]


def bench_shapes(rounds, rate, seconds, smoke):
    log = ensure_log("get-200k.log", 200_000, get_only=True)
    speed = 4
    timed_log = ensure_timed_log(rate // speed, seconds * speed)
    quarter = seconds / 4
    q = f"{round(quarter * 1000)}ms"
    stages = f"{q}:0-{rate},{round(2 * quarter * 1000)}ms:{rate},{q}:{rate}-0"
    base = ["--target", None, "--concurrency", "64", "--progress", "never"]
    shapes = {
        f"fixed --rate {rate}": [log, "--format", "nginx", "--rate", str(rate), "--duration", f"{seconds}s"],
        f"--stages {stages}": [log, "--format", "nginx", "--stages", stages],
        f"--arrivals poisson --rate {rate}": [log, "--format", "nginx", "--rate", str(rate), "--duration", f"{seconds}s",
                                              "--arrivals", "poisson", "--seed", "1"],
        f"--speed {speed} (log at {rate // speed}/s)": [timed_log, "--format", "nginx", "--speed", str(speed)],
    }
    os.makedirs(OUT, exist_ok=True)
    target = Target()
    base[1] = target.url
    res = {k: [] for k in shapes}
    try:
        for _ in range(rounds):
            for i, (name, args) in enumerate(shapes.items()):
                out, summary = os.path.join(OUT, f"shape-{i}.csv"), os.path.join(OUT, f"shape-{i}.json")
                cmd = [SLUICE, "replay"] + args + base + ["--out", out, "--summary-json", summary]
                _, _, cpu, _ = timed(cmd)
                s = json.load(open(summary))
                seconds_ = csv_per_second(out)
                off = [abs(a - p) / p * 100 for p, a in seconds_]
                res[name].append({
                    "sent": s["requests_sent"], "p50": s["lag"]["p50_ms"], "p99": s["lag"]["p99_ms"],
                    "cpu": cpu / (s["requests_sent"] / 1e5),
                    "off_mean": statistics.mean(off) if off else 0.0, "off_worst": max(off) if off else 0.0,
                })
                time.sleep(1)
    finally:
        target.close()
    fixed = next(iter(shapes))
    scale = "Smoke figures: small scale on a shared, busy machine — re-run on a quiet one before quoting. " if smoke else ""
    lines = [
        f"{scale}Target: {target.name} on 127.0.0.1 (same cores). Peak {rate:,} req/s, {seconds} s of plan per run, "
        f"64 connections, CSV on. {rounds} rounds, shapes interleaved; median (min–max). Lag from the summary JSON; "
        "planned vs achieved per whole second of the plan from the CSV (planned: rows by `scheduled_at`; achieved: "
        "by `sent_at`), as the mean and the worst |achieved − planned| / planned; loader user+sys CPU per 100,000 "
        "requests (getrusage of the child).",
        "",
        "| shape | requests | per-second off plan: mean | worst | lag p50 ms | lag p99 ms | CPU s / 100k req | × fixed CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios = {}
    for name, rs in res.items():
        ratios[name] = med([r["cpu"] / f["cpu"] for r, f in zip(rs, res[fixed])])
        lines.append(
            f"| `{name}` | {fmt_range([r['sent'] for r in rs], '{:,.0f}')} | "
            f"{fmt_range([r['off_mean'] for r in rs], '{:.2f}')}% | {fmt_range([r['off_worst'] for r in rs], '{:.2f}')}% | "
            f"{fmt_range([r['p50'] for r in rs], '{:.3f}')} | {fmt_range([r['p99'] for r in rs], '{:.3f}')} | "
            f"{fmt_range([r['cpu'] for r in rs], '{:.2f}')} | {ratios[name]:.2f} |")
    bar = [f"{k.split()[0]} {v:.2f}× ({'within' if v <= 1.1 else 'OVER'} 1.1×)"
           for k, v in ratios.items() if k.startswith(("--stages", "--arrivals"))]
    lines += [
        "",
        "CPU bar (stages and Poisson within 1.1× of the fixed rate's CPU per request): " + "; ".join(bar) + ".",
        "",
        f"Command: `python3 bench/bench.py shapes --rounds {rounds} --rate {rate} --seconds {seconds}"
        f"{' --smoke' if smoke else ''}` (each run: `sluice replay LOG --format nginx SHAPE --target URL "
        "--concurrency 64 --out bench/out/shape-N.csv --summary-json bench/out/shape-N.json`)",
    ]
    record("Traffic shapes: pacing accuracy and CPU" + (" (smoke run)" if smoke else ""), lines)


# --------------------------------------------------------------------------------------------
# kafka: --target kafka:// against Tansu's own producer benchmark, same broker, same run


def tansu_bin():
    found = shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")
    if not os.path.exists(found):
        sys.exit("tansu is not installed: cargo install tansu --locked --features dynostore")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_kafka(rounds, seconds=10, rate=2000, in_flight=8):
    tansu = tansu_bin()
    log = ensure_log("get-2m.log", 2_000_000, get_only=True)
    with open(log, "rb") as f:
        head = [next(f) for _ in range(10_000)]
    record_size = round(sum(len(l) - 1 for l in head) / len(head))
    os.makedirs(OUT, exist_ok=True)
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                               "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = {}
    cmds = {}
    topics = [0]

    def topic(partitions):
        topics[0] += 1
        name = f"bench-{topics[0]}"
        sh([tansu, "topic", "create", "--broker", url, "--partitions", str(partitions), name], stdout=subprocess.DEVNULL)
        return name

    def on_topic(name, partitions):
        return sum(topic_end_offset(port, name, p) for p in range(partitions))

    try:
        time.sleep(2)
        for _ in range(rounds):
            for mode in ("max", "fixed"):
                # tansu perf's --per-second does not hold (asked 2,000/s, it sends ~5,000/s): at a
                # fixed rate sluice then runs at the rate tansu perf achieved, so the CPU per
                # message is compared at one rate.
                paced = rate
                for tool in ("tansu perf", "sluice"):
                    # sluice keeps each partition's order over one connection, so it spreads over
                    # partitions; tansu perf's producers all write partition 0 (its --partition),
                    # each over its own connection, in no common order.
                    partitions = in_flight if tool == "sluice" else 1
                    name = topic(partitions)
                    if tool == "sluice":
                        cmd = [SLUICE, "replay", log, "--format", "nginx", "--target", f"kafka://127.0.0.1:{port}/{name}",
                               "--rate", "max" if mode == "max" else str(paced), "--concurrency", str(in_flight),
                               "--duration", f"{seconds}s", "--out", os.path.join(OUT, "kafka.csv"),
                               "--progress", "never", "--summary-json", os.path.join(OUT, "kafka.json")]
                        _, _, cpu, _ = timed(cmd)
                        done = json.load(open(os.path.join(OUT, "kafka.json")))["responses"]
                        held = on_topic(name, partitions)
                        if held != done:
                            raise RuntimeError(f"sluice counted {done} acknowledged, the topic holds {held}")
                    else:
                        cmd = [tansu, "perf", "--broker", url, name, "produce", "--batch-size", "1",
                               "--record-size", str(record_size), "--producers", str(in_flight),
                               "--duration", f"{seconds}s"] + ([] if mode == "max" else ["--per-second", str(rate)])
                        _, _, cpu, _ = timed_capture(cmd)
                        # tansu perf prints no count: the topic says what arrived.
                        done = on_topic(name, partitions)
                        paced = round(done / seconds)
                    cmds[(mode, tool)] = cmd
                    res.setdefault((mode, tool), []).append((done / seconds, cpu / (done / 1e5) if done else float("nan")))
                    time.sleep(1)
    finally:
        broker.terminate()
        broker.wait()
    lines = [
        f"Kafka produce into Tansu (in-memory storage, 127.0.0.1, same machine): one message per produce request, "
        f"{in_flight} in flight (sluice: into {in_flight} partitions, each in order over its connection; tansu perf: "
        f"{in_flight} producers into partition 0), values of ~{record_size} bytes (sluice: the log lines; tansu perf: --record-size), "
        f"{seconds} s per run, {rounds} rounds interleaved; median (min–max). sluice writes its CSV.",
        "",
        "| mode | tool | messages/s | CPU s / 100k messages |",
        "|---|---|---|---|",
    ]
    for mode in ("max", "fixed"):
        for tool in ("sluice", "tansu perf"):
            r = res[(mode, tool)]
            label = "--rate max" if mode == "max" else f"--per-second {rate:,} (tansu perf); its achieved rate (sluice)"
            lines.append(f"| {label} | {tool} | {fmt_range([x for x, _ in r], '{:,.0f}')} | "
                         f"{fmt_range([c for _, c in r], '{:.2f}')} |")
    lines += ["", "Commands: " + "; ".join(f"`{' '.join(c).replace(ROOT + '/', '')}`" for c in cmds.values()),
              "", "Command: `python3 bench/bench.py kafka`"]
    record("Kafka: messages per second and CPU per 100k messages", lines)


def topic_end_offset(port, topic, partition=0):
    """A partition's end offset on the broker at 127.0.0.1:`port` (the messages it holds, from 0),
    by a Kafka ListOffsets v1 request for the latest offset."""
    name, client = topic.encode(), b"sluice-bench"
    body = struct.pack(">hhih", 2, 1, 1, len(client)) + client
    body += struct.pack(">iih", -1, 1, len(name)) + name + struct.pack(">iiq", 1, partition, -1)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        answer = s.makefile("rb")
        size, = struct.unpack(">i", answer.read(4))
        resp = answer.read(size)
    # correlation id, topic count, topic name, partition count; then the partition's answer.
    at = 8 + 2 + struct.unpack_from(">h", resp, 8)[0] + 4
    _, error, _, offset = struct.unpack_from(">ihqq", resp, at)
    if error:
        raise RuntimeError(f"ListOffsets {topic}/{partition}: Kafka error code {error}")
    return offset


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


def peer_run(name, cmd):
    """Runs a peer, wrk or oha by its name: its CPU seconds and the requests it says it completed."""
    _, _, cpu, _ = timed_capture(cmd)
    return cpu, (wrk_requests if name.startswith("wrk") else oha_requests)(LAST_STDOUT[0])


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
    ap.add_argument("what", choices=["parse", "pacing", "memory", "throughput", "cpu", "https", "shapes", "kafka", "all"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=5000, help="shapes: the peak rate, req/s")
    ap.add_argument("--seconds", type=int, default=None, help="shapes (20), kafka (10): seconds of plan per run")
    ap.add_argument("--smoke", action="store_true", help="shapes: mark the figures as a smoke run")
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
    if a.what in ("https", "all"):
        bench_https(a.rounds)
    if a.what in ("shapes", "all"):
        bench_shapes(a.rounds, a.rate, a.seconds or 20, a.smoke)
    if a.what in ("kafka", "all"):
        bench_kafka(a.rounds, a.seconds or 10)


if __name__ == "__main__":
    main()
