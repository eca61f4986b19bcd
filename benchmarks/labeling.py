"""Labeling server latency and store throughput.

    .venv/bin/python benchmarks/labeling.py [--votes 100] [--annotators 20]
    .venv/bin/python benchmarks/labeling.py --database-url postgresql://… [--votes 50]   # SQLite vs PostgreSQL only

1. Latency from vote to next pair: a real labeling server process (API only) and real HTTP
   clients: one annotator; N concurrent ones at a human-like pace (each pauses a random
   ``--think-ms`` on average between votes; a person takes seconds per pair); and N flat out
   (no pause: the server's saturation, where round trip is N / throughput by Little's law).
   Each POST /votes commits the vote and returns the next pair. Reported: the server-side time
   (``Server-Timing``, lock wait and commit included) and the client round trip, p50 and p99,
   the server process's CPU time per vote, and the load average before and after (the
   machine is shared: say which). The clients run on the same CPUs as the server.
2. Coverage at overlap 1 with pair reservation: N annotators at once in sequential order, each
   casting as many votes as leave one spare pair each; reported: distinct pairs covered per
   vote (1.00 = no annotator's time spent on a pair someone else was judging) and votes/s.
   Then the cost of sharing reservations through the store (issue 22): N annotators flat out
   in sequential order at overlap 1 on one server process, and on two server processes over
   the same home (half the annotators on each), side by side in the same run: votes/s,
   server and round-trip p50/p99, and distinct pairs per vote.
3. Browser-perceived latency: the labeling server with its UI, Debian's headless Chromium
   driven by Playwright, keyboard votes on the fast page ``/label/<session>`` (``1``: one key
   votes; the Labeling tab embeds this page since issue 21, so the old Gradio-tab path is
   gone), in ``--rounds`` rounds; reported: p50/p99 from the keydown that sends the vote to
   the next pair's prompt in the DOM (measured in the page), and the per-round p50's median
   and IQR.
4. Store throughput: ``LabelingStore.vote`` (one durable transaction per vote) against a bare
   sqlite3 insert with the same pragmas (WAL, synchronous=FULL, one commit per row), in the
   same run, ``--rounds`` interleaved rounds of ``--store-votes`` votes each (the four
   contenders rotated). In one thread, ``ratio_vs_<bare>`` (the median of the per-round
   ratios) is the cost of the bookkeeping: on the process's CPU clock, with ``synchronous=OFF``
   on both sides for that part, so neither the disk traffic of other processes (an fsync's
   0.2–4 ms, and its kernel time, are set by whoever else writes: on the wall clock they swung
   the ratio by +119 % between two runs) nor a CPU-bound neighbour decides it. Each vote is
   timed and a round counts at its 10th-percentile vote (``votes_cpu`` says why: the votes a
   context switch meets cost ours far more than bare, so round totals moved with the
   neighbours); the ratio at each round's mean vote is printed beside it. From N threads
   at once, as N annotators' requests arrive, the store's group commit shares one fsync among
   the votes queued meanwhile while bare sqlite serialises one commit and one fsync per row:
   that speedup is the disk's, on the wall clock, so it is printed as
   ``group_commit_speedup_vs_bare_sqlite`` beside the fsync floor it depends on, not as a
   ``ratio_vs_`` line.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peers import add_round_args, interleave, load_line, report_rates, spread  # noqa: E402

from workbench.data.types import Pair  # noqa: E402
from workbench.db import mask_url  # noqa: E402
from workbench.labeling import LabelingStore  # noqa: E402
from workbench.store import Store  # noqa: E402

API = "/api/labeling"


def prepare(home: Path, n_pairs: int, overlap: int, target: str | Path | None = None) -> None:
    with Store(target or home / "workbench.sqlite") as store:
        store.import_pairs("ds", [Pair(f"prompt {i} " + "word " * 50, "left " * 80, "right " * 80, id=f"p{i:05d}") for i in range(n_pairs)])
        lab = LabelingStore(store)
        for name in ("one", "paced", "many", "browser", "page"):
            lab.create_session(name, "ds", {"overlap": overlap, "order": "random"})
        for name in ("cover", "solo", "duo"):
            lab.create_session(name, "ds", {"overlap": 1, "order": "sequential"})


def coverage(home: Path, session: str, target: str | Path | None = None) -> tuple[int, int]:
    """(distinct pairs voted on, votes) in ``session``."""
    with Store(target or home / "workbench.sqlite") as store:
        pairs = [j.pair_id for j in LabelingStore(store).judgments(session)]
    return len(set(pairs)), len(pairs)


def start_server(home: Path, *, ui: bool = False, database_url: str | None = None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    env.pop("WORKBENCH_DATABASE_URL", None)
    if database_url:
        env["WORKBENCH_DATABASE_URL"] = database_url
    argv = [sys.executable, "-m", "apps.labeling_server", "--port", str(port)] + ([] if ui else ["--api-only"])
    proc = subprocess.Popen(argv, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("labeling server did not start")


def annotate(url: str, session: str, name: str, votes: int, server_ms: list[float], client_ms: list[float],
             barrier: threading.Barrier | None, think_s: float = 0.0) -> None:
    pause = random.Random(name)  # exponential pauses between votes, as people's arrive
    token = httpx.post(f"{url}{API}/sessions/{session}/annotators", json={"name": name}, timeout=30).json()["token"]
    with httpx.Client(base_url=url, headers={"x-annotator-token": token}, timeout=60) as http:
        item = http.get(f"{API}/sessions/{session}/annotators/{name}/next").json()["item"]
        if barrier:
            barrier.wait()
        for k in range(votes):
            if think_s:
                time.sleep(pause.expovariate(1 / think_s))
            t0 = time.perf_counter()
            r = http.post(f"{API}/sessions/{session}/annotators/{name}/votes",
                          json={"pair_id": item["pair_id"], "choice": "left" if k % 2 else "right", "displayed_order": item["displayed_order"]})
            client_ms.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            server_ms.append(float(re.search(r"dur=([0-9.]+)", r.headers["server-timing"]).group(1)))
            item = r.json()["next"]["item"]


def latency(url: str | list[str], session: str, annotators: int, votes: int, think_s: float = 0.0) -> tuple[list[float], list[float], float]:
    """Server and round-trip ms of every vote, and the wall time; with several ``url``s the
    annotators are dealt out over those servers in turn."""
    urls = [url] if isinstance(url, str) else url
    server_ms: list[float] = []
    client_ms: list[float] = []
    barrier = threading.Barrier(annotators) if annotators > 1 else None
    threads = [threading.Thread(target=annotate, args=(urls[i % len(urls)], session, f"a{i}", votes, server_ms, client_ms, barrier, think_s))
               for i in range(annotators)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return server_ms, client_ms, time.perf_counter() - t0


@contextmanager
def chromium() -> Iterator[Callable[[str], Any]]:
    """Headless Debian Chromium: yields ``open_page(url)``, a new page (own window) at ``url``; closed afterwards.

    One Playwright and one browser for every page: the sync API cannot be entered twice, and
    pages voted on in turn must not be throttled as background tabs.
    """
    # Playwright only here: it is a test/benchmark extra, not needed for the API figures.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                                          "--disable-backgrounding-occluded-windows"])

        def open_page(url: str) -> Any:
            page = browser.new_context(viewport={"width": 1300, "height": 1300}).new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            return page
        try:
            yield open_page
        finally:
            browser.close()


# In the fast page: a vote key's keydown to the moment a new prompt text is shown.
PAGE_MEASURE_JS = """() => {
  window.__wbLatency = [];
  let t0 = null, before = null;
  const prompt = () => document.getElementById('prompt').textContent;
  document.addEventListener('keydown', (e) => {
    if (e.key === '1' || e.key === '2') { t0 = performance.now(); before = prompt(); }
  }, true);
  new MutationObserver(() => {
    if (t0 === null) return;
    if (prompt() !== before) { window.__wbLatency.push(performance.now() - t0); t0 = null; }
  }).observe(document.getElementById('prompt'), {subtree: true, childList: true, characterData: true});
}"""


def page_voter(open_page: Callable[[str], Any], url: str) -> Callable[[int], list[float]]:
    """The fast page ``/label/page`` open in Chromium: ``vote(n)`` casts n keyboard votes and
    returns their keydown (1/2) → next prompt latencies in ms."""
    page = open_page(url + "/label/page")
    page.fill("#name", "bench")
    page.keyboard.press("Enter")
    # Waits are functions, not expression strings: the page's CSP forbids eval, which those need.
    page.wait_for_function("() => document.getElementById('progress').textContent.includes('Pair 1 of')")
    page.evaluate(PAGE_MEASURE_JS)
    done = 0

    def vote(n: int) -> list[float]:
        nonlocal done
        for k in range(done, done + n):
            page.keyboard.press("1" if k % 2 else "2")
            page.wait_for_function("k => window.__wbLatency.length > k", arg=k)
        done += n
        return page.evaluate("window.__wbLatency")[done - n:done]
    return vote


def browser_rounds(url: str, votes: int, rounds: int) -> list[list[float]]:
    """Keydown → next prompt latencies (ms) on the fast page, in ``rounds`` rounds of ``votes // rounds`` votes.

    The Labeling tab embeds this same page since issue 21, so there is no second browser path
    to set beside it; per-round medians show how much the machine's load moved the figure.
    """
    per = max(1, votes // rounds)
    with chromium() as open_page:
        vote = page_voter(open_page, url)
        vote(1)  # warm-up: first render, first request
        out: list[list[float]] = []
        interleave({"fast_page": lambda r: out.append(vote(per))}, rounds)
    return out


def concurrently(n_threads: int, work: Any) -> float:
    """Seconds for ``n_threads`` threads running ``work(thread_index)`` from one barrier."""
    barrier = threading.Barrier(n_threads + 1)

    def run(i: int) -> None:
        barrier.wait()
        work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def bare_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def bare_insert(conn: sqlite3.Connection, pair_id: str, annotator: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO votes (pair_id, annotator, outcome, submitted_at) VALUES (?, ?, ?, ?)", (pair_id, annotator, "A", time.time()))
    conn.execute("COMMIT")


def timer_cost_ns(samples: int = 2000) -> int:
    """The CPU clock's own cost in one per-vote reading (a system call, ~0.6 µs here), taken off
    every vote's time: left in, it adds ~4 % to a bare insert's ~14 µs and ~0.4 % to ours."""
    pt = time.process_time_ns
    costs = []
    for _ in range(samples):
        t = pt()
        costs.append(pt() - t)
    return int(np.median(costs))


QUANTILE = 10  # the one-thread bookkeeping's per-round figure: this percentile of the round's votes' CPU times


def votes_cpu(vote: Callable[[str], Any], pair_ids: list[str], cost_ns: int) -> np.ndarray:
    """CPU seconds of this process for each ``vote(pair_id)`` call, the timer's cost taken off.

    Every vote of a round does the same work, so the round is summed up by its ``QUANTILE``th-
    percentile vote, not its total: interference only adds time (timeit's reasoning), and here
    it is not the same on both sides. A vote that meets a context switch, and ours' next few
    votes, cost more CPU (caches refilled after the other process; measured at load 3: ours
    383 µs against 206, its next five 308; bare 115 against 17, 22 after), ours meets ten
    times as many (its votes are ten times longer), and how many is the neighbours' doing.
    """
    pt = time.process_time_ns
    times = np.empty(len(pair_ids))
    for k, pid in enumerate(pair_ids):
        t = pt()
        vote(pid)
        times[k] = pt() - t - cost_ns
    return times / 1e9


def store_throughput(folder: Path, per_round: int, threads: int,
                     rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]], list[float]]:
    """Votes (rows) per second per round, ours and bare, in one thread (per CPU second of the
    round's ``QUANTILE``th-percentile vote) and in ``threads`` threads (wall clock); the one-thread
    rates per CPU second of the round's mean vote; and every bare one-thread durable commit's
    time in ms (the fsync floor of a lone vote).

    A round gives each of the four contenders ``per_round`` fresh pairs, order rotated, so a
    burst of load (or of another process's fsyncs) falls on the contenders of a round alike.
    """
    n = per_round * rounds
    ids = [f"p{i:05d}" for i in range(n)]
    per = per_round // threads
    one, many = "ours_1_thread", f"ours_{threads}_threads"
    bare_one, bare_many = "bare_sqlite_1_thread", f"bare_sqlite_{threads}_threads"
    commit_ms: list[float] = []
    with Store(folder / "tp.sqlite") as store:
        store.import_pairs("ds", [Pair(f"q{i}", "a", "b", id=pid) for i, pid in enumerate(ids)])
        lab = LabelingStore(store)
        for session in ("one", "many"):
            lab.create_session(session, "ds")
        lab.join("one", "x")
        for i in range(threads):
            lab.join("many", f"x{i}")
        conn = bare_connection(folder / "bare.sqlite")
        conn.execute("CREATE TABLE votes (id INTEGER PRIMARY KEY, pair_id TEXT, annotator TEXT, outcome TEXT, submitted_at REAL)")
        conns = [bare_connection(folder / "bare.sqlite") for _ in range(threads)]  # one per thread, as sqlite wants

        def bare_timed(pid: str) -> None:
            t1 = time.perf_counter()
            bare_insert(conn, pid, "x")
            commit_ms.append((time.perf_counter() - t1) * 1000)

        def part(r: int) -> list[str]:
            return ids[r * per_round:(r + 1) * per_round]

        # The bookkeeping: no fsync on either side (the kernel time of an fsync is set by whoever else
        # writes to the disk) and the CPU clock (a neighbour's CPU use is not ours); restored after.
        store._conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        cost = timer_cost_ns()
        per_vote: dict[str, list[np.ndarray]] = {one: [], bare_one: []}
        interleave({
            one: lambda r: per_vote[one].append(votes_cpu(lambda pid: lab.vote("one", "x", pid, "A"), part(r), cost)),
            bare_one: lambda r: per_vote[bare_one].append(votes_cpu(lambda pid: bare_insert(conn, pid, "x"), part(r), cost)),
        }, rounds)
        store._conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA synchronous=FULL")
        for pid in ids[:per_round]:  # the fsync floor of a lone durable vote, for the group-commit figure
            bare_timed(pid.replace("p", "f"))
        seconds = interleave({  # wall clock: the group commit's gain is fsyncs saved, i.e. disk time
            many: lambda r: concurrently(threads, lambda i: [lab.vote("many", f"x{i}", pid, "A") for pid in part(r)[i * per:(i + 1) * per]]),
            bare_many: lambda r: concurrently(threads, lambda i: [bare_insert(conns[i], pid, f"x{i}") for pid in part(r)[i * per:(i + 1) * per]]),
        }, rounds)
        for c in (conn, *conns):
            c.close()
    rates = {name: [1 / float(np.percentile(t, QUANTILE)) for t in ts] for name, ts in per_vote.items()}
    rates |= {name: [threads * per / t for t in ts] for name, ts in seconds.items()}
    return rates, {name: [1 / float(t.mean()) for t in ts] for name, ts in per_vote.items()}, commit_ms


def shared_leases(home: Path, url: str, annotators: int, votes: int) -> None:
    """One server process against two on the same home, N annotators flat out at overlap 1:
    what the leases in the store cost, and that no pair is judged twice either way."""
    second, url2 = start_server(home)
    try:
        print(f"shared leases, {annotators} annotators x {votes} votes flat out, overlap 1, sequential:")
        print("servers          votes/s   server p50   server p99   round trip p50   round trip p99   distinct pairs/votes")
        for label, session, urls in (("1 process", "solo", [url]), ("2 processes", "duo", [url, url2])):
            server_ms, client_ms, wall = latency(urls, session, annotators, votes)
            distinct, n = coverage(home, session)
            print(f"{label:<15}{n / wall:>9.0f}{pct(server_ms, 50):>13.1f}{pct(server_ms, 99):>13.1f}"
                  f"{pct(client_ms, 50):>17.1f}{pct(client_ms, 99):>17.1f}{distinct:>14}/{n}")
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)


def compare_backends(tmp: Path, database_url: str, annotators: int, votes: int, n_pairs: int) -> None:
    """The same labeling runs with the store in the home's SQLite file and in PostgreSQL
    (``--database-url``, an empty database), one after the other in this run."""
    print(f"SQLite vs PostgreSQL ({mask_url(database_url)}), load average {os.getloadavg()[0]:.1f}:")
    print("store        run                                    votes/s   server p50   server p99   round trip p50   round trip p99"
          "   distinct pairs/votes")
    for label, url in (("SQLite", None), ("PostgreSQL", database_url)):
        home = tmp / label
        home.mkdir(parents=True)
        prepare(home, n_pairs, overlap=annotators, target=url)
        servers = [start_server(home, database_url=url) for _ in range(2)]
        try:
            for run, session, urls, n in (("1 annotator", "one", servers[:1], 1),
                                          (f"{annotators} flat out, 1 process", "solo", servers[:1], annotators),
                                          (f"{annotators} flat out, 2 processes", "duo", servers, annotators)):
                server_ms, client_ms, wall = latency([u for _, u in urls], session, n, votes)
                distinct, cast = coverage(home, session, url)
                print(f"{label:<13}{run:<38}{cast / wall:>8.0f}{pct(server_ms, 50):>13.1f}{pct(server_ms, 99):>13.1f}"
                      f"{pct(client_ms, 50):>17.1f}{pct(client_ms, 99):>17.1f}{distinct:>14}/{cast}")
        finally:
            for proc, _ in servers:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=100, help="votes per annotator")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--think-ms", type=float, default=1000,
                        help="mean pause between one annotator's votes in the paced run (people take seconds per pair)")
    parser.add_argument("--browser-votes", type=int, default=50, help="keyboard votes in Chromium (0 skips the browser figure)")
    parser.add_argument("--store-votes", type=int, default=200, help="votes per contender per round in the store throughput")
    parser.add_argument("--database-url", default=None,
                        help="an empty PostgreSQL database: run only the SQLite-vs-PostgreSQL comparison (issue 22 §2)")
    add_round_args(parser, torch_threads=False)
    args = parser.parse_args()
    if args.database_url:
        with tempfile.TemporaryDirectory() as tmp:
            compare_backends(Path(tmp), args.database_url, args.annotators, args.votes, args.pairs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        prepare(home, args.pairs, overlap=args.annotators)
        proc, url = start_server(home)
        try:
            print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
            print(f"paced: each annotator pauses {args.think_ms:.0f} ms on average (exponential) between votes; "
                  "flat out: no pause, so round trip = annotators / throughput")
            print("vote → next pair latency, ms   server p50   server p99   round trip p50   round trip p99   votes/s"
                  "   server CPU ms/vote")
            runs = (("1 annotator", "one", 1, 0.0),
                    (f"{args.annotators} annotators, paced", "paced", args.annotators, args.think_ms / 1000),
                    (f"{args.annotators} annotators, flat out", "many", args.annotators, 0.0))
            for label, session, n, think_s in runs:
                cpu0 = cpu_seconds(proc.pid)
                server_ms, client_ms, wall = latency(url, session, n, args.votes, think_s)
                cpu = (cpu_seconds(proc.pid) - cpu0) * 1000 / len(server_ms)
                print(f"{label:<31}{pct(server_ms, 50):>11.1f}{pct(server_ms, 99):>13.1f}{pct(client_ms, 50):>17.1f}"
                      f"{pct(client_ms, 99):>17.1f}{len(server_ms) / wall:>10.0f}{cpu:>21.1f}")
            per_annotator = (args.pairs - args.annotators) // args.annotators
            _, _, wall = latency(url, "cover", args.annotators, per_annotator)
            distinct, votes = coverage(home, "cover")
            print(f"coverage at overlap 1, sequential, {args.annotators} annotators x {per_annotator} votes: "
                  f"{distinct} distinct pairs of {votes} votes ({distinct / votes:.2f}), {votes / wall:.0f} votes/s")
            shared_leases(home, url, args.annotators, min(args.votes, per_annotator))
            print(f"load average after: {os.getloadavg()[0]:.1f}")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        if args.browser_votes:
            proc, url = start_server(home, ui=True)
            try:
                load = load_line()
                lat = browser_rounds(url, args.browser_votes, args.rounds)
                ms = [x for part in lat for x in part]
                print(f"browser, fast page /label/<session> (also what the Labeling tab embeds), key 1/2 → next prompt in the DOM "
                      f"({len(ms)} keyboard votes in {len(lat)} rounds, Chromium): p50 {pct(ms, 50):.0f} ms, p99 {pct(ms, 99):.0f} ms; "
                      f"per-round p50 {spread([float(np.median(part)) for part in lat], '.0f')} ms")
                print(f"browser rounds: {load} before, {load_line()} after")
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        rates, mean_rates, commit_ms = store_throughput(Path(tmp), args.store_votes, args.annotators, args.rounds)
        names = list(rates)
        print(f"store bookkeeping, one thread ({args.rounds} interleaved rounds of {args.store_votes} votes; "
              f"synchronous=OFF on both sides; votes per CPU second of this process at each round's {QUANTILE}th-percentile vote):")
        report_rates({k: rates[k] for k in names[:2]}, "votes/CPU s", metric="store", ours=names[0], fmt=",.0f", ratio_fmt=".3f")
        ours_mean, bare_mean = (np.asarray(mean_rates[k]) for k in names[:2])
        print(f"at each round's mean vote instead (context switches, checkpoints included): ours {spread(ours_mean, ',.0f')}, "
              f"bare {spread(bare_mean, ',.0f')} votes/CPU s; ours ÷ bare {spread(ours_mean / bare_mean, '.3f')}")
        print(f"store throughput, {args.annotators} threads, wall clock (group commit: one fsync per batch of queued votes; "
              "bare: one per row; a disk figure, see the fsync floor below):")
        for name in names[2:]:
            print(f"{name}_store: {spread(rates[name], ',.0f')} votes/s")
        print(f"group_commit_speedup_vs_bare_sqlite: {spread(np.asarray(rates[names[2]]) / np.asarray(rates[names[3]]))}")
        print(f"one bare durable commit (the fsync floor of a lone vote), ms: p50 {pct(commit_ms, 50):.1f}, "
              f"p99 {pct(commit_ms, 99):.1f}, max {max(commit_ms):.1f}")
        print(f"at_end: {load_line()}")


if __name__ == "__main__":
    main()
