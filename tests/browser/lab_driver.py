"""Drive a running JupyterLab in Debian's Chromium with playwright: open a notebook, Run All, watch the DOM while it
runs.

Run by `tests/test_notebooks_browser.py` with the JupyterLab venv's python (`.venv-lab`, where playwright lives):

    python lab_driver.py URL NOTEBOOK OUT_DIR [--watch-cell TEXT] [--timeout S]

It prints one JSON object: per code cell its prompt, stderr and error outputs; the widget errors seen on the page;
and, for the cell whose source contains TEXT, what changed while it ran (step options, panel images redrawn).
Screenshots of each checked moment go to OUT_DIR.
"""
import argparse
import json
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

# Records, with the time and whether the watched cell was running, every panel image redrawn and every option
# added to the step dropdown. A MutationObserver sees each change, however fast the run goes.
OBSERVE = """(watch) => {
  const st = window.__rt = {events: [], t0: performance.now()};
  const cells = () => [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  const watched = () => cells().find(c => c.querySelector('.jp-InputArea-editor')?.textContent.includes(watch));
  const running = () => (watched()?.querySelector('.jp-InputArea-prompt')?.textContent || '').includes('*');
  const inWatched = (el) => { const w = watched(); return !!(w && w.contains(el)); };
  const panel = (img) => [...img.classList].find(c => c.startsWith('rt-panel-')) || '';
  const rec = (e) => st.events.push({t: Math.round(performance.now() - st.t0), running: running(), ...e});
  new MutationObserver(muts => {
    for (const m of muts) {
      const el = m.target;
      if (m.type === 'attributes' && el.matches('img.widget-image') && inWatched(el))
        rec({kind: 'img', panel: panel(el)});
      if (m.type === 'childList') {
        if (el.tagName === 'SELECT' && inWatched(el) &&
            el.parentElement?.querySelector('label')?.textContent.trim() === 'step')
          rec({kind: 'steps', n: el.options.length});
        for (const n of m.addedNodes) {
          if (n.nodeType !== 1) continue;
          for (const img of (n.matches('img.widget-image') ? [n] : n.querySelectorAll('img.widget-image')))
            if (inWatched(img)) rec({kind: 'img', panel: panel(img), added: true});
        }
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""

STATE = """(watch) => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell.jp-CodeCell')];
  const out = cells.map(c => ({
    source: c.querySelector('.jp-InputArea-editor')?.textContent.slice(0, 80) || '',
    prompt: (c.querySelector('.jp-InputArea-prompt')?.textContent || '').trim(),
    stderr: [...c.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
      .map(e => e.innerText),
    widgets: c.querySelectorAll('.jp-OutputArea-output .widget-vbox').length,
  }));
  const w = cells.findIndex(c => c.querySelector('.jp-InputArea-editor')?.textContent.includes(watch));
  const sel = w < 0 ? null : [...cells[w].querySelectorAll('.widget-dropdown')]
    .find(d => d.querySelector('label')?.textContent.trim() === 'step');
  return {cells: out, watched: w, step_options: sel ? [...sel.querySelectorAll('option')].map(o => o.textContent) : [],
          text: document.body.innerText};
}"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url"); ap.add_argument("notebook"); ap.add_argument("out")
    ap.add_argument("--watch-cell", default="<no watched cell>")
    ap.add_argument("--timeout", type=float, default=150)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    out, name = Path(a.out), Path(a.notebook).stem
    out.mkdir(parents=True, exist_ok=True)
    shots, t_start = [], time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        console = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        page.goto(f"{a.url}/lab/workspaces/rt-{name}/tree/{a.notebook}?reset", timeout=60_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_function("() => /\\|\\s*Idle/.test(document.querySelector('.jp-StatusBar-Widget')"
                               "?.parentElement?.innerText || document.body.innerText)", timeout=60_000)
        page.evaluate(OBSERVE, a.watch_cell)
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        seen_running, idle_since, state, moments = False, None, None, set()
        while time.monotonic() - t_start < a.timeout:
            time.sleep(0.25)
            state = page.evaluate(STATE, a.watch_cell)
            busy = any("*" in c["prompt"] for c in state["cells"])
            seen_running |= busy
            w = state["watched"]
            if w >= 0 and "*" in state["cells"][w]["prompt"] and state["cells"][w]["widgets"]:
                n = len(state["step_options"])
                for k, (need, label) in enumerate([(0, "dashboard-shown"), (1, "first-step"), (2, "training")]):
                    if n >= need and k not in moments:
                        moments.add(k)
                        shot = out / f"{name}-{k + 1}-{label}.png"
                        cell = page.locator(".jp-Notebook .jp-Cell.jp-CodeCell").nth(w)
                        cell.locator(".jp-OutputArea").screenshot(path=shot)
                        shots.append(str(shot))
            if seen_running and not busy:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 2: break
            else: idle_since = None
        timed_out = not (seen_running and idle_since)
        time.sleep(1)  # the cell-end update of the dashboard's output
        page.click(".lm-MenuBar-itemLabel:text-is('File')")  # saved as a user saves it: the outputs as they stand
        page.click(".lm-Menu-itemLabel:text-is('Save Notebook')")
        time.sleep(2)
        state = page.evaluate(STATE, a.watch_cell)
        events = page.evaluate("() => window.__rt.events")
        shot = out / f"{name}-9-done.png"
        if state["watched"] >= 0:
            cell = page.locator(".jp-Notebook .jp-Cell.jp-CodeCell").nth(state["watched"])
            cell.locator(".jp-OutputArea").screenshot(path=shot)
            shots.append(str(shot))
        # no watched cell: the last dashboard drawn
        elif page.locator(".jp-OutputArea-output:has(.widget-vbox)").count():
            page.locator(".jp-OutputArea-output:has(.widget-vbox)").last.screenshot(path=shot, timeout=15_000)
            shots.append(str(shot))
        page.screenshot(path=out / f"{name}-page.png", full_page=False)
        browser.close()
    text = state.pop("text")
    print(json.dumps({**state, "events": events, "shots": shots, "timed_out": timed_out, "console_errors": console,
                      "widget_errors": [s for s in ("Error displaying widget", "model not found") if s in text],
                      "seconds": round(time.monotonic() - t_start, 1)}))


if __name__ == "__main__":
    main()
