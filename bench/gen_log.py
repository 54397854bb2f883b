#!/usr/bin/env python3
"""Writes a deterministic, realistic nginx `combined` access log for benchmarks.

Variety on purpose: Zipf-weighted client IPs (8% IPv6), GET/HEAD/POST/PUT/DELETE/OPTIONS, paths
with query strings and %-escapes, HTTP/1.0, 1.1 and 2.0, statuses 200-504, log-normal sizes,
referers, user agents with spaces and parentheses (2% with a `"` escaped as nginx writes it,
\\x22), 0.1% junk request lines (`-` and TLS bytes) that a parser must reject.

usage: gen_log.py LINES OUT [--get-only] [--seed N]
"""
import argparse
import datetime
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lines", type=int)
    ap.add_argument("out")
    ap.add_argument("--get-only", action="store_true", help="only well-formed GET lines (for replay benches)")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    rnd = random.Random(a.seed)

    ips = []
    for i in range(20000):
        if rnd.random() < 0.08:
            ips.append("2001:db8:%x:%x::%x" % (rnd.getrandbits(16), rnd.getrandbits(16), rnd.getrandbits(16)))
        else:
            ips.append("%d.%d.%d.%d" % (rnd.randint(1, 223), rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254)))
    weights = [1.0 / (i + 1) for i in range(len(ips))]
    ip_pool = rnd.choices(ips, weights, k=50000)

    paths = ["/", "/index.html", "/products/{n}", "/products/{n}/reviews?page={p}&sort=newest",
             "/api/v1/users/{n}/orders?limit=20&offset={p}", "/search?q={q}&lang=en", "/static/js/app.{h}.js",
             "/static/css/site.{h}.css", "/images/catalog/{n}/large.jpg", "/blog/2026/{p}/{slug}",
             "/wp-login.php", "/.env", "/cgi-bin/test.cgi?x=%2e%2e%2f%2e%2e%2fetc%2fpasswd",
             "/caf%C3%A9/men%C3%BC?item={n}", "/healthz"]
    queries = ["red+shoes", "laptop%20bag", "%E2%9C%93+done", "size%3A42", "gift+ideas", "usb-c+hub"]
    uas = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
           "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
           "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
           "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
           "curl/8.5.0", "python-requests/2.32.3", "Go-http-client/1.1",
           "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"]
    referers = ["-", "-", "https://www.google.com/search?q=shop+online", "https://shop.example/products/12",
                "https://news.example/article?id=991&utm_source=feed"]
    methods = ["GET"] * 85 + ["HEAD"] * 4 + ["POST"] * 7 + ["PUT", "DELETE", "OPTIONS", "PATCH"]
    statuses = [200] * 80 + [304] * 6 + [301, 302] + [404] * 6 + [400, 401, 403, 500, 502, 503, 504]
    protos = ["HTTP/1.1"] * 8 + ["HTTP/2.0", "HTTP/1.0"]

    t = datetime.datetime(2026, 11, 20, 0, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-7)))
    step_us = max(1, int(86_400_000_000 / max(a.lines, 1)))
    with open(a.out, "w", encoding="latin-1", newline="\n") as f:
        buf = []
        for i in range(a.lines):
            t += datetime.timedelta(microseconds=rnd.randint(0, 2 * step_us))
            ip = ip_pool[i % len(ip_pool)] if rnd.random() < 0.5 else rnd.choice(ip_pool)
            user = "-" if rnd.random() < 0.97 else "alice"
            ts = t.strftime("%d/%b/%Y:%H:%M:%S %z")
            junk = not a.get_only and rnd.random() < 0.001
            if junk:
                request = rnd.choice(["-", "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03"])
                status, size = 400, 0
            else:
                m = "GET" if a.get_only else rnd.choice(methods)
                p = rnd.choice(paths).format(n=rnd.randint(1, 999999), p=rnd.randint(1, 50), q=rnd.choice(queries),
                                             h="%012x" % rnd.getrandbits(48), slug="post-%d" % rnd.randint(1, 9999))
                request = "%s %s %s" % (m, p, rnd.choice(protos))
                status = rnd.choice(statuses)
                size = 0 if status in (204, 304) else int(rnd.lognormvariate(8, 1.5))
            ua = rnd.choice(uas)
            if rnd.random() < 0.02:
                ua = 'Mozilla/5.0 (compatible; \\x22QuotedBot\\x22/1.0; +https://bot.example/info)'
            buf.append('%s - %s [%s] "%s" %d %d "%s" "%s"\n' % (ip, user, ts, request, status, size, rnd.choice(referers), ua))
            if len(buf) >= 10000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


if __name__ == "__main__":
    main()
