"""The notebooks as users see them: JupyterLab (its own venv, `.venv-lab`, made by `make lab`) with a kernel on the
project's `.venv`, Debian's Chromium driven by playwright, Run All on the quickstart tutorial and `09_widgets`.

Asserted from the DOM: every code cell ran, the dashboard rendered, and while the training cell was still running the
step dropdown gained steps and the reward and held-out success panels were redrawn at least twice; no "Error
displaying widget" / "model not found"; no stderr output beyond `ALLOWED_STDERR` (empty). Then, from the notebook as
JupyterLab saved it: the dashboard's output carries its last state as text and HTML. Screenshots of each checked
moment go to `test-artifacts/browser/`.

Where Chromium or `.venv-lab` is missing the test is skipped with what to install, except under CI
(`RETRAIN_REQUIRE_BROWSER=1`, set by `.ci/run`), where it fails.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / ".venv-lab"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
ALLOWED_STDERR: list[str] = []  # regular expressions of stderr lines a notebook may print; none so far


def _missing() -> str | None:
    if not Path(CHROMIUM).exists(): return f"no {CHROMIUM}: `apt-get install -y chromium` (Debian/Ubuntu)"
    if not (LAB / "bin" / "jupyter-lab").exists(): return f"no {LAB}/bin/jupyter-lab: run `make lab`"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A JupyterLab server on a copy of the notebooks, `python3` being the project's `.venv`; yields its URL and folder."
    if why := _missing():
        if os.environ.get("RETRAIN_REQUIRE_BROWSER"): pytest.fail(f"the notebook browser test cannot run: {why}")
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("lab")
    root, data = tmp / "nbs", tmp / "jupyter-data"
    root.mkdir()
    for nb in ("tutorials/quickstart.ipynb", "09_widgets.ipynb"): shutil.copy(ROOT / "nbs" / nb, root)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # the kernel shows what a user would see
    kernel = data / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(ROOT / ".venv" / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "retrain (.venv)", "language": "python",
        "env": {"IN_TEST": "1"}}))  # the quickstart's short run (its TESTING switch), as under nbdev-test
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell in the DOM
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notes = settings.parent / "apputils-extension"
    notes.mkdir()
    (notes / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                        "checkForUpdates": False}))  # offline
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    env.update(JUPYTER_PATH=str(data), JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "ws"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen([str(LAB / "bin" / "jupyter-lab"), "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                             f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
                             "--ServerApp.disable_check_xsrf=True", "--allow-root", "--LabApp.news_url=None",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):  # ~60 s
            if proc.poll() is not None: break
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2); break
            except OSError: time.sleep(0.5)
        if proc.poll() is not None or _ == 119: pytest.fail("JupyterLab did not "
                                                            f"start:\n{(tmp / 'lab.log').read_text()[-3000:]}")
        yield url, tmp
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp / "lab.log", ARTIFACTS / "lab.log")


def _run_all(lab, notebook: str, watch: str = "<no watched cell>", timeout: float = 150) -> dict:
    url, tmp = lab
    proc = subprocess.run([str(LAB / "bin" / "python"),
                           str(ROOT / "tests" / "browser" / "lab_driver.py"), url, notebook,
                           str(ARTIFACTS), "--watch-cell", watch, "--timeout", str(timeout), "--chromium", CHROMIUM],
                          capture_output=True, text=True, timeout=timeout + 120)
    assert proc.returncode == 0, f"the browser driver failed:\n{proc.stderr[-4000:]}"
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    (ARTIFACTS / f"{Path(notebook).stem}.json").write_text(json.dumps(res, indent=1))
    return res


def _check_clean(res: dict):
    assert not res["timed_out"], f"Run All did not finish in time: {[c['prompt'] for c in res['cells']]}"
    assert not res["widget_errors"], res["widget_errors"]
    unran = [c["source"] for c in res["cells"] if not re.fullmatch(r"\[\d+\]:", c["prompt"])]
    assert not unran, f"cells that did not run (an error stops Run All): {unran}"
    stderr = [line for c in res["cells"] for s in c["stderr"] for line in s.splitlines()
              if line.strip() and not any(re.search(p, line) for p in ALLOWED_STDERR)]
    assert not stderr, "unexpected stderr in the notebook's outputs:\n" + "\n".join(stderr[:40])


def test_quickstart_dashboard_live(lab):
    res = _run_all(lab, "quickstart.ipynb", watch="await run(cfg")
    _check_clean(res)
    cell = res["cells"][res["watched"]]
    assert cell["widgets"] >= 1, "the dashboard did not render"
    during = [e for e in res["events"] if e["running"]]
    steps = [e["n"] for e in during if e["kind"] == "steps"]
    assert len(set(steps)) >= 2 and max(steps) >= 2, f"the step dropdown did not gain steps while training: {steps}"
    for panel in ("rt-panel-reward", "rt-panel-held-out-success"):
        n = sum(e["kind"] == "img" and e["panel"] == panel and not e.get("added") for e in during)
        assert n >= 2, f"{panel} was redrawn {n} times while the cell ran: {during}"
    assert len(res["step_options"]) >= 3, res["step_options"]
    assert len(res["shots"]) >= 3
    # saved from JupyterLab, the dashboard's output carries its last state for viewers without a kernel (GitHub,
    # nbviewer)
    saved = json.loads((lab[1] / "nbs" / "quickstart.ipynb").read_text())
    outs = [o for c in saved["cells"] if "await run(cfg" in "".join(c["source"]) for o in c.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(outs) == 1, outs
    last = res["step_options"][-1].replace("\xa0", " ")  # "step 3"
    plain = "".join(outs[0]["data"]["text/plain"])
    assert plain.startswith(f"retrain TrainingDashboard: {last} |"), plain
    assert "".join(outs[0]["data"]["text/html"]).count("<svg") == 4


def test_widgets_notebook(lab):
    res = _run_all(lab, "09_widgets.ipynb", timeout=120)
    _check_clean(res)
    assert sum(c["widgets"] for c in res["cells"]) >= 1, "no dashboard rendered"
    assert res["shots"], "no screenshot of the dashboard"
