"""Cold and warm render times of every app page in a real browser, and the server's peak RSS.

Starts ``streamlit run app.py`` on a store (``QUALITY_DB``, ``QUALITY_DEMO=0``, a users file with one team
lead), drives Debian's Chromium headless through Playwright (the flags of ``tests/browser/conftest.py``),
logs in as the lead and opens every page of the lead's navigation (``ui.navigation``) by its sidebar link:

* cold: the page's first open after a fresh server start (the first page is timed from the "Log in" click,
  which opens it; with ``restart_per_page`` every page gets its own fresh server and is that first page);
* warm: the page opened again later in the same session (navigating away and back), ``warm_runs`` times.

A page counts as rendered when the script run is over (``stApp``'s ``data-test-script-state`` is
``notRunning``), no stale element of the previous page is left, the page's own title (``h1``) is shown, no
visible element is still a loading skeleton (lazily loaded charts and grids), every visible Plotly chart has
drawn its SVG and every visible data grid its canvas, and all of that still holds 0.25 s later. A page whose job is still computing (a progress bar instead of results) is reported as
computing, with the time until its results arrived (or a timeout), never as fast. A thread samples the
summed VmRSS of the server's process group (the server and any children) every 0.2 s.

Used by ``bench_scale.py``; :func:`run` is the entry point.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
LEAD = "bench-lead"
#: The issue's targets after analyze: first open <= 3 s, warm <= 1 s, server RSS <= 3 GB.
TARGET_COLD_S, TARGET_WARM_S, TARGET_SERVER_RSS_MB = 3.0, 1.0, 3072
SETTLE_S = 0.25  # the rendered state must still hold this long after it is first seen

# How far the page titled arguments[0] is: 0 its run is not over, 1 run over (the server's part done) but
# something is still drawing, 2 rendered.
_RENDERED_JS = """
(title) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return 0;
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main || main.querySelector('[data-stale="true"]')) return 0;
  if (![...main.querySelectorAll('h1')].some((h) => h.textContent.trim() === title)) return 0;
  // checkVisibility: false in a closed expander, an inactive tab, display: none
  const visible = (el) => el.checkVisibility();
  // a lazily loaded element (chart, grid, ...) whose code is still loading shows a skeleton
  for (const el of main.querySelectorAll('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]')) {
    if (visible(el)) return 1;
  }
  for (const el of main.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    if (visible(el) && !el.querySelector('.main-svg')) return 1;
  }
  for (const el of main.querySelectorAll('[data-testid="stDataFrame"]')) {
    if (visible(el) && !el.querySelector('canvas')) return 1;
  }
  return 2;
}
"""
# What the rendered page shows: progress bars (a job still computing), exceptions, error boxes.
_STATE_JS = """
() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const visible = (el) => el.checkVisibility();
  const count = (sel) => main ? [...main.querySelectorAll(sel)].filter(visible).length : 0;
  return {progress: count('[data-testid="stProgress"]'), exceptions: count('[data-testid="stException"]'),
          errors: count('[data-testid="stAlertContentError"]'), charts: count('[data-testid="stPlotlyChart"]'),
          tables: count('[data-testid="stDataFrame"]'), metrics: count('[data-testid="stMetric"]')};
}
"""


def free_port(start: int = 8611) -> int:
    """The first port from ``start`` on that 127.0.0.1 can bind."""
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + 199}")


class RssSampler:
    """Samples the summed VmRSS (MB) of the processes in one process group every ``interval`` seconds."""

    def __init__(self, pgid: int, interval: float = 0.2) -> None:
        self.pgid, self.interval = pgid, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def rss_mb(self) -> float:
        total_kb = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[2]) != self.pgid:
                    continue
                for line in Path(entry.path, "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
                        break
            except (OSError, ValueError, IndexError):
                continue  # the process ended meanwhile
        return total_kb / 1024

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.rss_mb()))
            self._stop.wait(self.interval)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max((mb for t, mb in self.samples if since <= t <= until), default=0.0)


class Server:
    """``streamlit run app.py`` on ``db`` in its own process group, with a users file holding one lead."""

    def __init__(self, db: Path, users: Path, work: Path, port: int) -> None:
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.log_path = work / f"server-{port}-{time.strftime('%H%M%S')}.log"
        env = dict(os.environ, QUALITY_DB=str(db), QUALITY_DEMO="0", QUALITY_USERS_FILE=str(users),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        env.pop("QUALITY_JOBS_WAIT", None)  # the app's own wait, as a user gets it
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit did not become healthy in {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """Stop the server's process group (by the server's own PID), hard if it does not exit."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._log.close()


def write_users(path: Path) -> str:
    """A users file with one team lead (as tests/browser/test_roles.py writes it); returns the password."""
    from core.auth import hash_password

    password = secrets.token_urlsafe(12)
    path.write_text(f'[users.{LEAD}]\nrole = "lead"\npassword_hash = "{hash_password(password)}"\n',
                    encoding="utf-8")
    return password


def _url_path(spec) -> str:
    return Path(spec.path).stem


def lead_pages(only: list[str] | None = None) -> list:
    """The lead's pages in menu order (``only``: url paths or titles to keep, case-insensitive)."""
    from core import roles
    from ui.navigation import pages_for

    pages = pages_for(roles.LEAD)
    if only:
        wanted = {o.strip().lower() for o in only}
        pages = [p for p in pages if _url_path(p).lower() in wanted or p.title.lower() in wanted]
        if not pages:
            raise SystemExit(f"no page matches {', '.join(only)}")
    return pages


class PageTimer:
    """One browser context logged in as the lead on one server; times page opens."""

    def __init__(self, browser, server: Server, password: str, sampler: RssSampler, timeout: float,
                 screenshots: Path | None, login_delay: float = 0.0) -> None:
        self.server, self.password, self.sampler = server, password, sampler
        self.login_delay = login_delay
        self.timeout, self.screenshots = timeout, screenshots
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)

    def close(self) -> None:
        self.context.close()

    def _stage(self, title: str) -> int:
        try:
            return int(self.page.evaluate(_RENDERED_JS, title))
        except Exception:  # noqa: BLE001 - the document is being replaced (a navigation, a reload)
            return 0

    def _rendered(self, title: str) -> bool:
        return self._stage(title) == 2

    def _wait_rendered(self, title: str, t0: float, deadline: float) -> tuple[float | None, float | None]:
        """Seconds from ``t0`` until the page's run was over and until it was rendered (and stayed so for
        SETTLE_S); None on a timeout."""
        run_s = None
        while time.monotonic() < deadline:
            stage = self._stage(title)
            now = time.monotonic() - t0
            if stage >= 1 and run_s is None:
                run_s = now
            elif stage == 0:
                run_s = None  # a rerun started
            if stage == 2:
                time.sleep(SETTLE_S)
                if self._rendered(title):
                    return run_s, now
                continue
            time.sleep(0.04)
        return run_s, None

    def open(self, spec, action, kind: str, index: int) -> dict:
        """Run ``action`` (a click or a navigation that opens ``spec``) and time it until rendered."""
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        action()
        run_s, seconds = self._wait_rendered(spec.title, t0, deadline)
        state = self.page.evaluate(_STATE_JS)
        row = {"seconds": seconds, "run_s": run_s, "computing": bool(state["progress"]), "timeout": seconds is None,
               "exceptions": state["exceptions"], "errors": state["errors"],
               "content": {k: state[k] for k in ("charts", "tables", "metrics")}}
        if row["computing"]:
            # results are not there yet: how long until they are (the progress fragment reruns the page)
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if self._rendered(spec.title) and not self.page.evaluate(_STATE_JS)["progress"]:
                    row["results_s"] = time.monotonic() - t0
                    break
            else:
                row["results_s"] = None
        row["peak_rss_mb"] = self.sampler.peak(since=t0)
        if self.screenshots is not None:
            self.screenshots.mkdir(parents=True, exist_ok=True)
            shot = self.screenshots / f"{index:02d}-{_url_path(spec)}-{kind}.png"
            self.page.screenshot(path=str(shot))
            row["screenshot"] = str(shot)
        return row

    def login_open(self, spec, first_page_default: bool, index: int) -> dict:
        """Open ``spec``'s URL (the login form stands in for it), log in, time the page from the click."""
        self.page.goto(self.server.url + ("/" if first_page_default else "/" + _url_path(spec)))
        name_box = self.page.get_by_label("User name", exact=True)
        name_box.wait_for(state="visible", timeout=self.timeout * 1000)
        name_box.fill(LEAD)
        self.page.get_by_label("Password", exact=True).fill(self.password)
        if self.login_delay > 0:  # a person reading the form and typing: the server meanwhile warms up (untimed)
            time.sleep(self.login_delay)
        return self.open(spec, lambda: self.page.get_by_role("button", name="Log in").click(), "cold", index)

    def ensure_dataset(self, dataset: str, spec, index: int) -> dict | None:
        """Select ``dataset`` in the sidebar picker if another one is shown; the page's rerun, timed, or None."""
        box = self.page.get_by_test_id("stSidebar").get_by_role("combobox", name="Dataset")
        box.wait_for(state="visible")
        if box.input_value() == dataset:
            return None

        def choose() -> None:
            box.click()
            self.page.get_by_role("option", name=dataset, exact=True).click()

        return self.open(spec, choose, "cold", index)

    def click_open(self, spec, kind: str, index: int) -> dict:
        link = self.page.get_by_test_id("stSidebarNav").locator("a").filter(
            has_text=re.compile(re.escape(spec.title) + r"$"))
        return self.open(spec, lambda: link.first.click(), kind, index)


def run(db: Path, dataset: str, *, only: list[str] | None = None, warm_runs: int = 1, timeout: float = 600,
        screenshots: Path | None = None, restart_per_page: bool = False, port: int = 8611,
        log=print, login_delay: float = 0.0) -> dict:
    """Time every page of the lead's navigation on ``db``; a dict of figures (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} not found (apt-get install chromium)")
    sys.path.insert(0, str(ROOT))
    specs = lead_pages(only)
    cold: dict[str, dict] = {}
    warm: dict[str, list[dict]] = {s.title: [] for s in specs}
    peaks: list[float] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp, sync_playwright() as pw:
        work = Path(tmp)
        users = work / "users.toml"
        password = write_users(users)
        # Chromium puts its singleton socket under $TMPDIR; a deep one (pytest's tmp_path in the smoke test) passes
        # the 107-byte limit of a socket path and Chromium aborts: give it the short system one
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     env={**os.environ, "TMPDIR": "/tmp" if os.path.isdir("/tmp") else tmp})
        try:
            groups = [[s] for s in specs] if restart_per_page else [specs]
            for group in groups:
                server = Server(db, users, work, free_port(port))
                t_start = time.monotonic()
                try:
                    with RssSampler(server.proc.pid) as sampler:
                        server.wait_healthy()
                        log(f"  server on {server.url} (pid {server.proc.pid}) up in "
                            f"{time.monotonic() - t_start:.1f} s, RSS {sampler.rss_mb():.0f} MB", flush=True)
                        timer = PageTimer(browser, server, password, sampler, timeout, screenshots, login_delay)
                        try:
                            _time_group(timer, group, specs, dataset, warm_runs, cold, warm, notes, log)
                        finally:
                            timer.close()
                        peaks.append(sampler.peak())
                except Exception:
                    log(f"  server log tail:\n{server.log_tail()}", flush=True)
                    raise
                finally:
                    server.stop()
        finally:
            browser.close()
    pages = {}
    for spec in specs:
        c, ws = cold[spec.title], warm[spec.title]
        best = min(ws, key=lambda w: float("inf") if w["seconds"] is None else w["seconds"], default=None)
        pages[spec.title] = {
            "url_path": _url_path(spec), "cold": c["seconds"], "cold_run": c["run_s"],
            "warm": best["seconds"] if best else None, "warm_run": best["run_s"] if best else None,
            "warm_runs": [w["seconds"] for w in ws],
            "computing": c["computing"] or any(w["computing"] for w in ws), "results_s": c.get("results_s"),
            "timeout": c["timeout"] or any(w["timeout"] for w in ws),
            "exceptions": c["exceptions"] + sum(w["exceptions"] for w in ws),
            "errors": c["errors"] + sum(w["errors"] for w in ws), "content": c["content"],
            "peak_rss_mb": max([c["peak_rss_mb"], *(w["peak_rss_mb"] for w in ws)]),
            "screenshot": c.get("screenshot"),
        }
        pages[spec.title]["target_met"] = target_met(pages[spec.title])
    return {"pages": pages, "server_peak_rss_mb": max(peaks, default=0.0), "mode":
            "fresh server per page" if restart_per_page else "one server, pages in menu order",
            "warm_runs": warm_runs, "notes": notes}


def _time_group(timer: PageTimer, group: list, specs: list, dataset: str, warm_runs: int, cold: dict,
                warm: dict, notes: list[str], log) -> None:
    """Cold opens of ``group`` on a fresh server (the first through the login), then the warm opens."""
    from ui.navigation import DEFAULT_PAGE

    for spec in group:
        index = specs.index(spec) + 1
        if spec is group[0]:
            row = timer.login_open(spec, spec.path == DEFAULT_PAGE, index)
            switched = timer.ensure_dataset(dataset, spec, index)
            if switched is not None:
                notes.append(f"{spec.title}: cold is the rerun after selecting {dataset!r} (the store's first "
                             f"dataset opened after login)")
                row = switched
        else:
            row = timer.click_open(spec, "cold", index)
        cold[spec.title] = row
        log("  " + _line(spec.title, "cold", row), flush=True)
    for run_no in range(warm_runs):
        for spec in group:
            index = specs.index(spec) + 1
            kind = "warm" if run_no == 0 else f"warm{run_no + 1}"
            if len(group) == 1:  # a page alone on its server: leave it for another page (untimed), then come back
                away = next(s for s in reversed(lead_pages()) if s.path != spec.path)  # Import, light
                timer.click_open(away, "away", index)
            row = timer.click_open(spec, kind, index)
            warm[spec.title].append(row)
            log("  " + _line(spec.title, kind, row), flush=True)


def _line(title: str, kind: str, row: dict) -> str:
    s = "timeout" if row["seconds"] is None else f"{row['seconds']:.2f} s"
    if row["run_s"] is not None:
        s += f" (run {row['run_s']:.2f} s)"
    extra = ""
    if row["computing"]:
        r = row.get("results_s")
        extra += "  COMPUTING, results " + ("not within the timeout" if r is None else f"after {r:.1f} s")
    if row["exceptions"] or row["errors"]:
        extra += f"  {row['exceptions']} exception(s), {row['errors']} error box(es)"
    return f"{title:<16} {kind:<5} {s:>22}   server RSS {row['peak_rss_mb']:6.0f} MB{extra}"


def target_met(p: dict) -> bool:
    return (p["cold"] is not None and p["warm"] is not None and p["cold"] <= TARGET_COLD_S
            and p["warm"] <= TARGET_WARM_S and not p["computing"] and not p["timeout"]
            and not p["exceptions"] and not p["errors"])


def print_table(result: dict, out=print) -> None:
    """page | cold s | warm s | target met, then the server's peak RSS against the target."""
    out(f"{'page':<16} {'cold s':>7} {'(run)':>7} {'warm s':>7} {'(run)':>7} {'RSS MB':>7}  target: cold <= "
        f"{TARGET_COLD_S:g} s, warm <= {TARGET_WARM_S:g} s")

    def fmt(v, paren: bool = False) -> str:
        if v is None:
            return f"{'-' if paren else 'timeout':>7}"
        return f"{f'({v:.2f})' if paren else f'{v:.2f}':>7}"

    for title, p in result["pages"].items():
        why = []
        if p["computing"]:
            r = p.get("results_s")
            why.append("still computing" + (", no results within the timeout" if r is None
                                            else f", results after {r:.1f} s"))
        if p["exceptions"] or p["errors"]:
            why.append(f"{p['exceptions']} exception(s), {p['errors']} error box(es)")
        if p["timeout"]:
            why.append("timed out")
        out(f"{title:<16} {fmt(p['cold'])} {fmt(p['cold_run'], True)} {fmt(p['warm'])} {fmt(p['warm_run'], True)} "
            f"{p['peak_rss_mb']:7.0f}  {'OK' if p['target_met'] else 'MISSED'}" + (f" ({'; '.join(why)})" if why else ""))
    peak = result["server_peak_rss_mb"]
    out("(run) = until the script run was over; the first figure also waits for the browser to draw every chart and grid")
    out(f"server peak RSS {peak:.0f} MB (target <= {TARGET_SERVER_RSS_MB} MB: "
        f"{'OK' if peak <= TARGET_SERVER_RSS_MB else 'MISSED'}); {result['mode']}")
    for note in result["notes"]:
        out(f"note: {note}")
