#!/usr/bin/env python3
"""Redirects a second, and their latency, from the redirect service while a job sends.

Starts the local stack (embedded Redis, local Ray, the simulator, the API and the redirect service
as processes of their own), submits a campaign whose template has ``{link}`` with the operators'
caps lifted, and once it is sending, a *second process* follows its links (a different code each
request, a phone's user agent: every one a click counted) on a fixed schedule over loopback and
reports the achieved rate and latency percentiles (open loop, as ``bench_api.py``'s).

    .venv/bin/python scripts/bench/bench_redirect.py --rows 300000 --rate 5000 --seconds 20
    .venv/bin/python scripts/bench/bench_redirect.py --rows 20000 --rate 2000 --idle  # nothing sending

With ``--wrk CONNECTIONS`` the load comes from ``wrk`` (Debian's package: ``apt-get install wrk``), a
compiled load generator, as fast as the service answers on that many connections (closed loop: wrk
4 has no fixed rate), each request a code from the job's links in turn: the Python loader ate the
server's CPU on this 2-core machine. Every fetch is counted afterwards (a person's click or a bot's:
the scanner rule makes a click within ``links.scanner_seconds`` of its delivery a bot's), and the
counts must equal wrk's requests.

    .venv/bin/python scripts/bench/bench_redirect.py --rows 20000 --idle --wrk 32 --seconds 15
    .venv/bin/python scripts/bench/bench_redirect.py --rows 300000 --wrk 32 --seconds 15

``--wrk-delay MS`` paces wrk: each connection waits MS before each request (wrk's ``delay()``; wrk 4
has no fixed rate, so the rate is what comes of it, about CONNECTIONS / (MS + latency); wrk's latency
counts from the request's sending, after the wait). ``--baseline`` first measures the job's own
rate for the same seconds with no load, so that what the redirects cost the job shows beside them:

    .venv/bin/python scripts/bench/bench_redirect.py --rows 600000 --wrk 48 --wrk-delay 5 \\
        --baseline --seconds 15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.client import ApiClient  # noqa: E402
from scripts.bench.bench_api import _load, bench_stack  # noqa: E402
from ulak import keys, redisclient  # noqa: E402

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def _codes(client: redis.Redis, n: int) -> list[str]:
    found: list[str] = []
    for key in client.scan_iter(match=keys.link("*"), count=5000):
        found.append(key.decode().rpartition(":")[2])
        if len(found) >= n:
            break
    return found


WRK_SCRIPT = """
local codes = {}
for line in io.lines(os.getenv("ULAK_CODES")) do codes[#codes + 1] = "/" .. line end
local counter = 0
local headers = {["User-Agent"] = os.getenv("ULAK_AGENT")}
local pause = tonumber(os.getenv("ULAK_DELAY_MS") or "0")
function init(args)
  counter = math.random(#codes)  -- threads start apart
end
function request()
  counter = counter % #codes + 1
  return wrk.format("GET", codes[counter], headers)
end
if pause > 0 then
  function delay()
    return pause
  end
end
"""


def _wrk(url: str, codes: Path, *, connections: int, seconds: float, pause: int = 0) -> dict[str, object]:
    """wrk against *url* with a distinct code a request (see the module docstring); *pause* ms before
    each request on a connection."""
    script = codes.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "ULAK_CODES": str(codes), "ULAK_AGENT": PHONE, "ULAK_DELAY_MS": str(pause)}
    command = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    load = f"wrk -t2 -c{connections} -d{int(seconds)}s" + (
        f", {int(pause)} ms before each request" if pause else ""
    )
    result: dict[str, object] = {"load": load, "wrk_output": out}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("50%", "75%", "90%", "99%"):
            result[f"p{words[0][:-1]}_ms"] = _ms(words[1])
        elif line.strip().startswith("Requests/sec:"):
            result["redirects_per_second"] = float(words[1])
        elif "requests in" in line:
            result["requests"] = int(words[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            result["not_redirected"] = int(words[-1])
    result.setdefault("not_redirected", 0)
    return result


def _ms(text: str) -> float:
    """wrk's latency (``812.00us``, ``3.21ms``, ``1.02s``) in milliseconds."""
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * factor, 3)
    return float(text)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=5000.0, help="redirects a second asked for")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--tps-scale", type=float, default=100.0, help="lift the operators' caps")
    parser.add_argument("--idle", action="store_true", help="measure after the job is done (nothing sending)")
    parser.add_argument(
        "--wrk", type=int, metavar="CONNECTIONS", help="load from wrk on this many connections"
    )
    parser.add_argument(
        "--wrk-delay", type=int, default=0, metavar="MS", help="pace wrk: MS before each request"
    )
    parser.add_argument(
        "--baseline", action="store_true", help="first measure the job's rate without load, as long"
    )
    parser.add_argument("--load", nargs=2, metavar=("URL", "CODES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:  # the second process
        paths = [f"/{c}" for c in Path(args.load[1]).read_text().split()]
        result = _load(
            args.load[0], "", "", args.rate, args.seconds,
            threads=args.threads, paths=paths, ok=302, headers={"User-Agent": PHONE},
        )  # fmt: skip
        print(json.dumps(result))
        return 0
    if args.wrk and shutil.which("wrk") is None:  # before a stack is started for nothing
        parser.error("--wrk needs wrk on PATH: apt-get install wrk (Debian's package)")
    with tempfile.TemporaryDirectory(prefix="ulak-bench-redirect-") as tmp:
        workdir = Path(tmp)
        stack, campaign = bench_stack(workdir, rows=args.rows, tps_scale=args.tps_scale)
        try:
            assert stack.token is not None
            with ApiClient(stack.api_url, stack.token) as client:
                options = {"template": "Merhaba {Ad}, kampanya: {link}", "link_url": "https://shop.example/k"}
                job_id = client.submit(campaign, options)["id"]
                wanted = ("done", "failed") if args.idle else ("sending", "done", "failed")
                while client.job(job_id)["state"] not in wanted:
                    time.sleep(0.1)
                r = redisclient.client(stack.redis_url)
                codes = workdir / "codes.txt"
                codes.write_text("\n".join(_codes(r, 20_000)))
                baseline = None
                if args.baseline:
                    start = client.job(job_id)["counts"]["submitted"]
                    time.sleep(args.seconds)
                    baseline = (client.job(job_id)["counts"]["submitted"] - start) / args.seconds
                before = client.job(job_id)
                began = time.monotonic()
                if args.wrk:
                    result = _wrk(
                        stack.redirect_url,
                        codes,
                        connections=args.wrk,
                        seconds=args.seconds,
                        pause=args.wrk_delay,
                    )
                else:
                    env = {**os.environ, "PYTHONPATH": str(ROOT)}
                    loader = subprocess.run(
                        [sys.executable, __file__, "--rate", str(args.rate), "--seconds", str(args.seconds),
                         "--threads", str(args.threads), "--load", stack.redirect_url, str(codes)],
                        capture_output=True, text=True, check=True, env=env,
                    )  # fmt: skip
                    result = json.loads(loader.stdout)
                view = client.job(job_id)
                took = time.monotonic() - began
                clicks = view["clicks"]
                result["fetches_counted"] = sum(clicks[k] - before["clicks"][k] for k in ("total", "bots"))
                result["clicks_counted"] = view["clicks"]["total"]
                result["job_state_at_end"] = view["state"]
                result["job_msgs_per_s_at_end"] = view["rates"]["messages_per_second"]
                result["job_sent_during"] = view["counts"]["submitted"] - before["counts"]["submitted"]
                result["job_msgs_per_s_during"] = round(int(result["job_sent_during"]) / took)
                if baseline is not None:
                    result["job_msgs_per_s_before_load"] = round(baseline)
                if view["state"] == "sending":
                    client.steer(job_id, "cancel")
                r.close()
        finally:
            stack.stop()
    result["command"] = " ".join(["scripts/bench/bench_redirect.py", *sys.argv[1:]])
    result["machine"] = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
