"""Every tutorial run headless in a real IPython kernel, as a notebook user runs it (the cells `nbdev-test` runs, with
IN_TEST set as it sets it): no cell may fail, print to stderr (Jupyter shows stderr as trouble) or show a Python
warning. A kernel rather than nbdev's in-process shell, because retrain behaves as in a notebook only in a kernel (the
dashboard instead of a progress bar, its log lines on stdout).

`make nbtest` leaves `nbs/tutorials/` to this test, so each tutorial runs once in `make test`. The browser test
(`test_notebooks_browser.py`) checks the quickstart's outputs again as JupyterLab shows them.
"""
import os
import queue
import re
import shutil
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from nbdev.config import get_config
from nbdev.test import nb_test_cells

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "nbs" / "tutorials").glob("*.ipynb"))
WARNING = re.compile(r"\b\w*Warning\b: |^WARNING\b|\bwarnings\.warn\(", re.M)
ALLOWED_STDERR: list[str] = []  # regular expressions of stderr lines a tutorial may print; none so far


def run_in_kernel(nb: Path, cwd: Path, cell_timeout: float = 600) -> list[tuple[str, list[dict]]]:
    "Run the cells `nbdev-test` runs, in order, in a fresh kernel; each cell's source and iopub outputs (to an error)."
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # the warnings a user would see
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(cwd), env={**env, "IN_TEST": "1"})
    kc = km.client()
    kc.start_channels()
    ran = []
    try:
        kc.wait_for_ready(timeout=120)
        for cell in nb_test_cells(nb, skip_flags=get_config().tst_flags.split()):
            msg_id, outs = kc.execute(cell.source), []
            ran.append((cell.source, outs))
            while True:
                try: msg = kc.get_iopub_msg(timeout=cell_timeout)
                except queue.Empty: pytest.fail(f"{nb.name}: a cell ran past {cell_timeout} s:\n{cell.source[:300]}")
                if msg["parent_header"].get("msg_id") != msg_id: continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "status" and content["execution_state"] == "idle": break
                if kind in ("stream", "error", "display_data", "execute_result"): outs.append({"type": kind, **content})
            if any(o["type"] == "error" for o in outs): break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return ran


@pytest.mark.parametrize("nb", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_outputs_are_clean(nb, tmp_path):
    shutil.copy(nb, tmp_path / nb.name)
    bad = []
    for source, outs in run_in_kernel(tmp_path / nb.name, tmp_path):
        for o in outs:
            if o["type"] == "error":
                bad.append(f"{o['ename']}: {o['evalue']}\n" + "\n".join(o["traceback"])[-3000:])
                continue
            text = o.get("text", "") if o["type"] == "stream" else (o.get("data") or {}).get("text/plain", "")
            stderr = [line for line in text.splitlines() if o.get("name") == "stderr" and line.strip()
                      and not any(re.search(p, line) for p in ALLOWED_STDERR)]
            if stderr or WARNING.search(text): bad.append(f"in the cell starting {source[:60]!r}:\n{text[:800]}")
    assert not bad, f"{nb.name} shows what a reader should not see:\n" + "\n".join(bad)
