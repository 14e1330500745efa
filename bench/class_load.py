"""A class on one server: N people sign in (each a Chromium context of their own, through a local
OpenID Connect provider), each starts a small training on the Train page, and the server runs
``NN_MAX_JOBS`` of them at once; meanwhile one more person draws on /draw.

    python bench/class_load.py                       # 20 people, NN_MAX_JOBS=2
    python bench/class_load.py --people 6 --epochs 1 --json bench/results/class.json

Printed: the sign-in time per person, the places in the queue each page showed, when each
training finished (from its Start click), how long all took, the stroke-to-prediction time on
/draw while the queue was full, and the server's peak memory. Every page is read from what the
browser shows; the script waits on the pages, never on fixed sleeps.

Needs: ``oidc-provider-mock`` (requirements.txt), Playwright and Debian's Chromium.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from streamlit_server import REPO, free_port, start_streamlit

CHROMIUM = "/usr/bin/chromium"
# Every person's page keeps rendering, as on their own machine (not throttled as a hidden tab).
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
COOKIE_SECRET = "tZ8qLw3Np7Vd2Hk9Rb4Mx6Gc1Fj5Sy0Ua8Ei3Ko7Qn2Pv6"


def put_user(provider: str, subject: str) -> None:
    body = json.dumps({"email": f"{subject}@example.com", "name": subject.title()}).encode()
    request = urllib.request.Request(
        f"{provider}/users/{subject}",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def sign_in(browser, url: str, provider: str, subject: str):
    put_user(provider, subject)
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(180_000)
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    page.locator(".st-key-login button").click()
    page.locator("input[name=sub]").fill(subject)
    page.keyboard.press("Enter")
    page.locator(".st-key-logout button").wait_for()
    return page, time.perf_counter() - started


def fill_form(page, url: str, epochs: int) -> None:
    """The Train page with the ``fast`` preset and ``epochs`` epochs, ready to start."""
    page.goto(f"{url}/train")
    page.locator(".st-key-preset_fast button:visible").first.click()
    page.wait_for_selector(IDLE)
    page.get_by_role("tab", name="Data", exact=True).click()
    box = page.locator(".st-key-tf_epochs input")
    box.fill(str(epochs))
    box.press("Enter")
    page.wait_for_selector(IDLE)


def progress_text(page) -> str:
    try:
        return " ".join(page.locator("[data-testid=stProgress]").all_inner_texts())
    except Exception:  # noqa: BLE001 - a page in the middle of a rerun: read it next time
        return ""


def draw_once(page, url: str) -> float:
    """Seconds from the end of a stroke on /draw to a prediction on the page."""
    page.goto(f"{url}/draw")
    page.locator(CANVAS).wait_for()
    page.wait_for_selector(IDLE)
    box = page.locator(CANVAS).bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 40)
    page.mouse.down()
    for y in range(40, 241, 8):
        page.mouse.move(box["x"] + 140, box["y"] + y)
    page.mouse.up()
    released = time.perf_counter()
    page.locator(".st-key-prediction", has_text=re.compile(r"\d")).first.wait_for()
    return time.perf_counter() - released


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run(people: int, epochs: int, max_jobs: int) -> dict:
    import oidc_provider_mock
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="class-load-"))
    with oidc_provider_mock.run_server_in_thread(port=0) as provider_server:
        provider = f"http://localhost:{provider_server.server_port}"
        port = free_port()
        secrets = work / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
            f'cookie_secret = "{COOKIE_SECRET}"\n'
            'client_id = "dashboard"\nclient_secret = "anything"\n'
            f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
        )
        env = dict(
            os.environ,
            NN_MAX_JOBS=str(max_jobs),
            NN_JOBS_PER_USER="1",
            NN_TRAIN_LIMIT="3000",
            NN_RUNS_DB=str(work / "runs.sqlite"),
            NN_WORKSPACES_DIR=str(work / "workspaces"),
        )
        proc, _ = start_streamlit(
            env, work / "streamlit.log", port=port, extra_args=("--secrets.files", str(secrets))
        )
        url = f"http://localhost:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                figures = _class(browser, url, provider, people, epochs)
                browser.close()
        finally:
            figures["server_peak_rss_mb"] = peak_rss_mb(proc.pid)
            proc.terminate()
            proc.wait(timeout=30)
    figures.update(people=people, epochs=epochs, max_jobs=max_jobs)
    return figures


def _class(browser, url: str, provider: str, people: int, epochs: int) -> dict:
    pages, sign_ins, clicked = [], [], []
    for i in range(people):
        page, seconds = sign_in(browser, url, provider, f"student{i:02d}")
        pages.append(page)
        sign_ins.append(seconds)
    drawer, _ = sign_in(browser, url, provider, "drawer")
    for page in pages:
        fill_form(page, url, epochs)
    began = time.perf_counter()
    for page in pages:  # everyone presses Start within a few seconds
        page.locator(".st-key-start_training button").click()
        clicked.append(time.perf_counter())
    places: list[set[int]] = [set() for _ in pages]
    finished: list[float | None] = [None] * people
    seen: set[str] = set()
    draw_seconds = None
    deadline = time.perf_counter() + 60 * 60
    while None in finished and time.perf_counter() < deadline:
        for i, page in enumerate(pages):
            if finished[i] is not None:
                continue
            text = progress_text(page)
            seen.add(text.split(" — ")[0][:60])
            places[i].update(int(n) for n in re.findall(r"place (\d+)", text))
            if text.startswith(("Finished", "Failed", "Stopped", "Diverged")):
                finished[i] = time.perf_counter() - clicked[i]
        queue_seen = any(places) or time.perf_counter() - began > 20
        if draw_seconds is None and queue_seen:  # a drawing while the queue is full
            draw_seconds = draw_once(drawer, url)
        pages[0].wait_for_timeout(500)  # the browser keeps polling; this only paces the reads
    done = [s for s in finished if s is not None]
    return {
        "sign_in_seconds_median": statistics.median(sign_ins),
        "sign_in_seconds_max": max(sign_ins),
        "saw_a_place": sum(1 for p in places if p),
        "largest_place": max(itertools.chain.from_iterable(places), default=0),
        "finished": len(done),
        "finish_seconds_median": statistics.median(done) if done else None,
        "all_done_seconds": time.perf_counter() - began,
        "draw_seconds_with_full_queue": draw_seconds,
        "progress_texts_seen": sorted(seen),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-jobs", type=int, default=2)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    figures = run(args.people, args.epochs, args.max_jobs)
    for key, value in figures.items():
        print(f"{key:32} {value:.2f}" if isinstance(value, float) else f"{key:32} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    ok = figures["finished"] == args.people and figures["saw_a_place"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
