"""The run report opened in real headless Chromium: the page renders (a screenshot that is not blank) and its DOM
holds the rollouts' text. Skipped, with a message saying how to get a browser, where none is installed (failed instead
under `RETRAIN_REQUIRE_BROWSER=1`, as `.ci/run` sets)."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from retrain.render import best_worst
from retrain.report import write_report
from retrain.testing import write_demo_run

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
STEPS = 12


def _find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name): return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def browser() -> str:
    path = _find_browser()
    # CI (.ci/run) installs one: missing there is a failure
    if path is None and os.environ.get("RETRAIN_REQUIRE_BROWSER"):
        pytest.fail("no Chromium found, and RETRAIN_REQUIRE_BROWSER is set: `apt-get install -y chromium`")
    if path is None:
        pytest.skip("no Chromium found: install one to run the browser check of report.html "
                    "(Debian/Ubuntu: `apt-get install -y chromium`)")
    return path


HELD_OUT = {0: 0.0, 4: 0.25, 8: 0.75}  # evaluated steps (evaluation.every_n_steps: 4) -> held-out success


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run_dir = write_demo_run(tmp_path_factory.mktemp("run"), steps=STEPS, n_rollouts=8, seed=3)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for m in lines:
        if m["step"] in HELD_OUT: m.update({"eval/success_rate": HELD_OUT[m["step"]],
                                            "eval/mean_reward": 1.2 * HELD_OUT[m["step"]]})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    return write_report(run_dir)


def _chromium(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def _last_step(report: Path) -> list[dict]:
    rows = [json.loads(line) for line in (report.parent / "rollouts.jsonl").read_text().splitlines()]
    return [r for r in rows if r["step"] == STEPS - 1]


def test_screenshot_is_not_blank(browser, report, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri())
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2000)
    colors = img.getcolors(maxcolors=1 << 22)  # [(count, rgb), ...]
    assert len(colors) > 200, f"only {len(colors)} distinct colours: the page did not render"
    top = max(count for count, _ in colors)
    assert top < 0.9 * img.width * img.height, "one colour covers 90% of the screenshot: the page is (nearly) blank"
    # the embedded curve figures rendered: the band below the summary holds the matplotlib line colours
    figures = img.crop((0, 600, 1280, 1500)).getcolors(maxcolors=1 << 22)
    assert any(abs(r - 31) < 40 and abs(g - 119) < 40 and abs(b - 180) < 40 for _,
               (r, g, b) in figures), "no curve pixels"


def test_dom_holds_the_rollouts(browser, report, tmp_path):
    dom = _chromium(browser, tmp_path, "--dump-dom", report.as_uri()).stdout
    last = _last_step(report)
    b, w = best_worst(last)
    assert f"best · step {STEPS - 1} · rollout {last[b]['index']}" in dom
    assert f"worst · step {STEPS - 1} · rollout {last[w]['index']}" in dom
    assert last[b]["messages"][0]["content"] in dom  # the question the agent was asked
    trained = next(s["text"] for s in last[b]["segments"] if s["trained"])
    assert trained.replace("<", "&lt;").replace(">", "&gt;") in dom  # the model's exact tokens, escaped
    assert dom.count('class="rt-rollout"') == 2 * STEPS
    assert dom.count('src="data:image/png;base64,') == 4  # reward, health, reward-hacking signals, other metrics
    assert 'class="rt-noflags"' in dom and "No reward-hacking flags" in dom  # the demo's success rises with its rewards
    assert "<script" not in dom


def test_dom_holds_the_heldout_evaluations(browser, report, tmp_path):
    dom = _chromium(browser, tmp_path, "--dump-dom", report.as_uri()).stdout
    assert "<h2>Held-out evaluation during training</h2>" in dom and "(3 evaluations)" in dom
    table = dom.split('id="heldout"')[1].split("</table>")[0]
    assert [(int(s), float(v)) for s,
            v in re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td>", table)] == list(HELD_OUT.items())


def test_dom_leads_with_the_result(browser, report, tmp_path):
    dom = _chromium(browser, tmp_path, "--dump-dom", report.as_uri()).stdout
    body = dom.split("<main>")[1]
    # the result, then the flags
    assert body.index('id="headline"') < body.index('id="flags"') < body.index("<h2>Summary</h2>")
    head = body[body.index('id="headline"'):body.index('id="flags"')]
    assert "held-out success <b>0.00 → 0.97</b>" in head and "61.5 s" in head
    assert head.count('src="data:image/svg+xml;base64,') == 2  # the reward curve and held-out success
    summary = body[body.index("<h2>Summary</h2>"):body.index("<h2>Reward</h2>")]
    # a table, not JSON; each figure once
    assert "{" not in summary.split("<details>")[0] and "success_after" not in summary
