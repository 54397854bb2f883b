#!/usr/bin/env python3
"""Two sluice binaries side by side, against nginx on 127.0.0.1: is a change a regression?

    python3 bench/ab.py OLD_SLUICE NEW_SLUICE [--rounds 3] [--seconds 8]

For each round, interleaved (old, new, old, new, …): the achieved requests/s at `--rate max -c 64`
with the CSV written, and the CPU seconds (user + sys) per 100k requests at a fixed 5,000 req/s.
Prints medians and the median of the same-round ratios new/old. Load goes only to the nginx this
script starts on 127.0.0.1, and every run is bounded by `--duration`.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG = os.path.join(ROOT, "fixtures", "demo-access.log")
PORT = 18090


def start_nginx(tmp):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            f"""worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{PORT}; location / {{ return 200 "ok\\n"; }} }} }}
"""
        )
    proc = subprocess.Popen([nginx, "-c", conf, "-p", tmp])
    time.sleep(0.5)
    return proc


def replay(binary, tmp, rate, seconds):
    out, summary = os.path.join(tmp, "r.csv"), os.path.join(tmp, "s.json")
    cmd = [binary, "replay", LOG, "--target", f"http://127.0.0.1:{PORT}", "--rate", rate, "-c", "64",
           "--duration", f"{seconds}s", "--progress", "never", "--out", out, "--summary-json", summary]
    start = os.times()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    end = os.times()
    cpu = (end.children_user - start.children_user) + (end.children_system - start.children_system)
    with open(summary) as f:
        s = json.load(f)
    return s["requests_sent"], s["achieved_rate"], cpu


def main():
    p = argparse.ArgumentParser()
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=8)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-ab-")
    nginx = start_nginx(tmp)
    try:
        rates = {"old": [], "new": []}
        cpus = {"old": [], "new": []}
        for r in range(a.rounds):
            for name in ("old", "new"):
                binary = getattr(a, name)
                sent, rate, _ = replay(binary, tmp, "max", a.seconds)
                rates[name].append(rate)
                sent, _, cpu = replay(binary, tmp, "5000", a.seconds)
                cpus[name].append(cpu * 100_000 / max(sent, 1))
                print(f"round {r + 1} {name}: max {rate:,.0f} req/s; CPU at 5k/s {cpus[name][-1]:.2f} s per 100k",
                      flush=True)
        ratio = lambda d: statistics.median(n / o for o, n in zip(d["old"], d["new"]))
        print(f"max rate: old {statistics.median(rates['old']):,.0f} req/s, new {statistics.median(rates['new']):,.0f}"
              f" req/s, new/old {ratio(rates):.3f}")
        print(f"CPU per 100k at 5k/s: old {statistics.median(cpus['old']):.2f} s, new {statistics.median(cpus['new']):.2f}"
              f" s, new/old {ratio(cpus):.3f}")
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
