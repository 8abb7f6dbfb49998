"""Training steps per second on 2 processes against 1, same config and same global batch.

The quickstart config (the embedded calculator agent, rollout and step rewards) runs for `--steps` steps without
evaluation or checkpoints: once as `python -m retrain run` with one torch thread and a per-device batch of
`--batch`, once as `torchrun --nproc_per_node 2 -m retrain run` with one torch thread per process and a
per-device batch of `--batch / 2`, so both train on the same global batch (same prompts per step, same
`num_generations`). Step times are read from each run's `metrics.jsonl` (`step_seconds`, the main process's
time from step begin to step end); the first step is warm-up and not counted. Rounds alternate (1, 2, 1, 2, ...).

    python benchmarks/scaling.py [--steps 6] [--batch 64] [--rounds 2]
Last line: RESULT speedup_2proc=<median step time on 1 process / median step time on 2 processes>
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(nproc: int, steps: int, batch: int, out: Path, name: str) -> list[float]:
    "Step times (seconds) of one training run on `nproc` processes, first step dropped."
    per_device = batch // nproc
    sets = [f"algorithm.hyperparameters.max_steps={steps}",
            f"algorithm.hyperparameters.per_device_train_batch_size={per_device}",
            "algorithm.hyperparameters.save_steps=100000", "evaluation=null", "num_threads=1",
            f"output_dir={out}", f"experiment_name={name}"]
    args = [a for s in sets for a in ("--set", s)]
    launcher = [sys.executable, "-m", "retrain"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m", "retrain"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([*launcher, "run", "configs/quickstart.yaml", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0: raise SystemExit(f"{nproc}-process run failed:\n{r.stderr[-3000:]}")
    lines = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
    if [m["step"] for m in lines] != list(range(1, steps + 1)):
        raise SystemExit(f"{nproc}-process run logged steps {[m['step'] for m in lines]}, expected 1..{steps}")
    return [m["step_seconds"] for m in lines[1:]]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=64, help="global batch (rollouts per step); a multiple of 16")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    if a.batch % 16: raise SystemExit("--batch must be a multiple of 16 (two processes, whole groups of 8)")
    times = {1: [], 2: []}
    tmp = Path(tempfile.mkdtemp(prefix="retrain-scaling-"))
    try:
        for r in range(a.rounds):
            for n in (1, 2):
                t = run(n, a.steps, a.batch, tmp, f"r{r}-p{n}")
                times[n] += t
                print(f"round {r}, {n} process(es): median step {statistics.median(t):.3f} s over {len(t)} steps",
                      flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"global batch {a.batch}, 1 torch thread per process: 1 process {one:.3f} s/step, 2 processes {two:.3f} "
          "s/step")
    print(f"RESULT speedup_2proc={one / two:.3f}")


if __name__ == "__main__":
    main()
