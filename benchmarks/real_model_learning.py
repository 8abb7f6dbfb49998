"""Does a real pretrained model get better through retrain, on this machine? SmolLM2-135M-Instruct, held-out success.

Three figures on the same held-out questions (greedy decoding, the config's `evaluation` rows), all in one process:

- `base`: the model as loaded (SmolLM2-135M-Instruct makes no tool call at all in the json format);
- `warm`: after the config's warm start (`warm_start`: supervised steps on demonstrations of *other* questions, played
  with the real tools), which teaches the action format without solving the task (`= base` when the config has none);
- `after`: after GRPO (`retrain run` with the same config).

`minutes` is the wall time of all stages (the warm start is trained again: its cache entry is removed first),
evaluations included; `peak_rss_gb` the process's peak resident memory over all of them
(`retrain.memory.process_peak_rss_mb`: `ru_maxrss` is cleared with the per-step peak, so it misses earlier stages).

Tasks: `calculator` (one call: `configs/smollm2-cpu-calculator.yaml`) and `chained` (two tools in sequence, the second
call using what the first returned: `configs/smollm2-cpu-chained.yaml`).

Last line: `RESULT base=<> warm=<> after=<> minutes=<> peak_rss_gb=<>`

usage: python benchmarks/real_model_learning.py --task calculator|chained [--seed 0] [--steps N] [--threads 2]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from retrain.config_models import TrainingConfig  # noqa: E402
from retrain.evaluation import evaluate_sync  # noqa: E402
from retrain.models import cache_dir  # noqa: E402
from retrain.memory import process_peak_rss_mb  # noqa: E402
from retrain.runner import run  # noqa: E402
from retrain.warm_start import warm_start_key  # noqa: E402

CONFIGS = {"calculator": "configs/smollm2-cpu-calculator.yaml", "chained": "configs/smollm2-cpu-chained.yaml"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the config's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", default=None, help="keep the run directory here (default: a temporary one)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.chdir(ROOT)  # the configs' data paths are relative to the repository
    over = [f"seed={a.seed}", f"num_threads={a.threads}", f"experiment_name={a.task}-seed{a.seed}"]
    if a.steps: over += [f"algorithm.hyperparameters.max_steps={a.steps}",
                         f"algorithm.hyperparameters.save_steps={a.steps}"]
    cfg = TrainingConfig.from_yaml(CONFIGS[a.task], overrides=over)
    if cfg.warm_start is not None: shutil.rmtree(cache_dir() / "warm-starts" / warm_start_key(cfg), ignore_errors=True)
    out = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="real-model-"))
    t0 = time.perf_counter()
    base_cfg = cfg.model_copy(update={"warm_start": None})
    base = next(iter(evaluate_sync(base_cfg, output_dir=out / "base")["models"].values()))["success_rate"]
    print(f"base: held-out success {base:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    cfg = cfg.model_copy(update={"output_dir": out})
    res = asyncio.run(run(cfg, progress=True, dashboard=False))
    warm = res["eval_before"]["success_rate"]
    after = res["eval_after"]["success_rate"]
    minutes = (time.perf_counter() - t0) / 60
    peak = process_peak_rss_mb() / 1024
    print(f"warm start: {res.get('warm_start')}")
    print(f"run directory: {res['run_dir']}")
    print(f"RESULT base={base:.3f} warm={warm:.3f} after={after:.3f} minutes={minutes:.1f} peak_rss_gb={peak:.2f}")


if __name__ == "__main__":
    main()
