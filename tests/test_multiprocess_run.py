"""`torchrun --nproc_per_node 2 -m retrain run configs/quickstart.yaml` as a user runs it (rollout and step rewards):
one run directory written by the main process, every rank's rollouts in it, evaluation split over the ranks."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_torchrun_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONWARNINGS": "ignore", "TRL_EXPERIMENTAL_SILENCE": "1"}
    sets = ["algorithm.hyperparameters.max_steps=3", f"output_dir={tmp_path}", "experiment_name=mp", "num_threads=1"]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "retrain", "run", "configs/quickstart.yaml", *[a for s in sets for a in ("--set", s)]],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    run_dir = tmp_path / "mp"
    assert [m["step"] for m in _lines(run_dir / "metrics.jsonl")] == [1, 2, 3]
    rollouts = _lines(run_dir / "rollouts.jsonl")
    per_step = Counter(x["step"] for x in rollouts)
    assert per_step == {1: 128, 2: 128, 3: 128}  # 2 ranks x 64 rollouts per step
    assert all(sorted(x["index"] for x in rollouts if x["step"] == s) == list(range(128)) for s in (1, 2, 3))
    assert all(x["group"] == x["index"] // 8 for x in rollouts)
    assert len({(x["group"], x["row"]["prompt"]) for x in rollouts if x["step"] == 1}) == 16  # one prompt per group
    results = json.loads((run_dir / "results.json").read_text())
    assert results["global_step"] == 3 and results["world_size"] == 2
    for key in ("eval_before", "eval_after"):  # 256 held-out rows, split 128 + 128, each evaluated once
        assert results[key]["n"] == 256 and results[key]["per_rank"] == [128, 128], results[key]
    assert r.stdout.count("run directory:") == 1 and r.stdout.count("held-out success") == 1  # one summary
    assert len(list(tmp_path.glob("mp/results.json"))) == 1 and (run_dir / "report.html").exists()
