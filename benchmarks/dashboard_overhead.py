"""What the live `TrainingDashboard` costs a training run.

Each step does the work of one quickstart GRPO step on the tiny model, in the same process: batched sampling of
64 rollouts over two turns (24 new tokens each, the observation appended between them) and a forward + backward +
AdamW update over the 64 sequences (~60 tokens). After it, the dashboard gets that step's metrics and 64 rollouts
(`every=1`), as the trainer feeds it. Both are timed; the result is (step + dashboard) / step.

    python benchmarks/dashboard_overhead.py [--steps 40] [--threads 1] [--max-overhead 0.02|none] [--in-process]

By default the whole measurement runs inside a real IPython kernel (started with jupyter_client) with the dashboard
displayed, so every widget update is serialised and sent as a comm message, as in a notebook. `--in-process` runs
it in this process instead, where widgets send nothing.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from retrain.testing import build_tiny_model
from retrain.testing import demo_logs
from retrain.widgets import TrainingDashboard


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (stated with the result)")
    ap.add_argument("--batch", type=int, default=64, help="rollouts per step")
    ap.add_argument("--prompt-len", type=int, default=37)
    ap.add_argument("--new-tokens", type=int, default=24, help="tokens sampled per turn")
    ap.add_argument("--obs-tokens", type=int, default=8, help="observation tokens appended after turn 1")
    ap.add_argument("--max-overhead", default="0.02", help="the dashboard's render budget, or 'none'")
    ap.add_argument("--in-process", action="store_true", help="measure in this process, not inside a kernel")
    ap.add_argument("--display", action="store_true", help=argparse.SUPPRESS)  # set inside the kernel
    args = ap.parse_args()
    if not args.in_process: return run_in_kernel([a for a in sys.argv[1:]] + ["--in-process", "--display"])
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tok = build_tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    vocab = len(tok)
    B, P, N, O = args.batch, args.prompt_len, args.new_tokens, args.obs_tokens

    def training_step():
        t0 = time.perf_counter()
        model.eval()
        ids = torch.randint(10, vocab, (B, P))
        with torch.no_grad():
            for turn in range(2):  # one batched generate per turn, as the environment does
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=N, min_new_tokens=N,
                                     do_sample=True, temperature=1.0, pad_token_id=tok.pad_token_id)
                ids = torch.cat([out, torch.randint(10, vocab, (B, O))], 1) if turn == 0 else out
        t1 = time.perf_counter()
        model.train()
        seq = ids[:, P - 4:]  # ~60 tokens: the end of the prompt and the completion
        loss = model(seq, labels=seq).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        return t1 - t0, time.perf_counter() - t1

    budget = None if args.max_overhead.lower() == "none" else float(args.max_overhead)
    logs = [demo_logs(s, B) for s in range(args.warmup + args.steps)]  # made beforehand, as the trainer has them
    dash = TrainingDashboard(every=1, max_rollouts_per_step=64, max_overhead=budget)
    if args.display: dash.display()
    gen_t, train_t, dash_t = [], [], []
    for s, (metrics, rollouts) in enumerate(logs):
        g, t = training_step()
        t0 = time.perf_counter()
        dash.on_step(s, metrics, rollouts)
        d = time.perf_counter() - t0
        if s >= args.warmup: gen_t.append(g); train_t.append(t); dash_t.append(d)
    step = np.array(gen_t) + np.array(train_t)
    dash_s = np.array(dash_t)
    fb = np.array(train_t)
    print(f"threads={args.threads} steps={args.steps} batch={B} max_overhead={budget} "
          f"{'inside a kernel, dashboard displayed' if args.display else 'in process'}")
    print(f"training step: {step.mean():.3f} s mean (generation {np.mean(gen_t):.3f} s, forward+backward+update "
          f"{fb.mean():.3f} s)")
    print(f"dashboard.on_step: {1e3 * dash_s.mean():.2f} ms mean, {1e3 * np.median(dash_s):.2f} ms median, "
          f"{1e3 * dash_s.max():.1f} ms max; {dash.renders} figure renders, "
          f"{dash.render_seconds:.2f} s rendering in all")
    print(f"against forward+backward+update alone: {(fb.sum() + dash_s.sum()) / fb.sum():.4f}")
    print(f"RESULT dashboard_overhead={(step.sum() + dash_s.sum()) / step.sum():.4f}")


def run_in_kernel(argv: list[str]):
    "Run this script with `argv` inside a fresh IPython kernel and relay what it prints."
    try:
        from jupyter_client import KernelManager
    except ImportError as e:
        sys.exit(f"{e}: install the dev extras (pip install -e '.[dev]') or pass --in-process")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    km = KernelManager(kernel_name="python3", transport="ipc")
    km.start_kernel(cwd=str(root), env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        msg_id = kc.execute(f"import runpy, sys; sys.argv = {[__file__, *argv]!r}; runpy.run_path(sys.argv[0], "
                            "run_name='__main__')")
        while True:
            msg = kc.get_iopub_msg(timeout=900)
            if msg["parent_header"].get("msg_id") != msg_id: continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream": print(content["text"], end="", flush=True)
            elif kind == "error":
                sys.exit("the benchmark failed inside the kernel:\n" + "\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle": break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
