"""Preemption as a cluster scheduler does it: SIGTERM to `retrain run` in the middle of a step. The step finishes and
is saved, one line says so (exit status 143), and `--resume` continues exactly: every step's rollouts and rewards
equal those of a run that was never stopped."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from retrain.rundir import check_checkpoint

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4
BATCH = 8

# sleeps in the first scoring of step 2 after saying so in a file: the test then knows the run is mid-step
REWARD = """
import os, time
CALLS = 0

def pause_in_step_2(rollout):
    global CALLS
    CALLS += 1
    if CALLS == 9 and os.environ.get("MID_STEP"):
        open(os.environ["MID_STEP"], "w").close()
        time.sleep(1.0)
    return 0.0
"""


def _config(tmp_path: Path, name: str) -> Path:
    cfg = {
        "model": {"name_or_path": "retrain/tiny-random"},
        "algorithm": {"hyperparameters": {"max_steps": STEPS,
                                          "per_device_train_batch_size": BATCH, "num_generations": 4,
                                          "max_completion_length": 24, "save_steps": 100, "learning_rate": 1e-3}},
        "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 8},
        "prompt_source": {"type": "list",
                          "prompts": [{"prompt": f"What is {a}*7?", "answer": str(7 * a)} for a in range(100, 104)]},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {},
                                                    "length_penalty": {"weight": 0.5, "params": {"budget": 3}},
                                                    "pausing_reward:pause_in_step_2": {}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": name, "num_threads": 1, "seed": 3,
    }
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RETRAIN_DEBUG", "MID_STEP")}
    return {**env, "RETRAIN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1",
            "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), os.environ.get("PYTHONPATH", "")]), **extra}


def _retrain(*args, tmp_path: Path):
    return subprocess.run([sys.executable, "-m", "retrain.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=_env(tmp_path), timeout=300)


def _per_step(run_dir: Path) -> dict[int, list]:
    "Each step's rollouts: what was sampled (segments) and how it scored, in order."
    out = {}
    for line in (run_dir / "rollouts.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.setdefault(r["step"], []).append((r["index"], r["segments"], r["rewards"], r["total_reward"]))
    return out


def _rewards(run_dir: Path) -> list[tuple[int, float]]:
    return [(m["step"], m["reward"]) for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


def test_sigterm_mid_step_saves_it_and_resume_is_exact(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "pausing_reward.py").write_text(REWARD)
    r = _retrain("run", str(_config(tmp_path, "whole")), tmp_path=tmp_path)  # never stopped
    assert r.returncode == 0, r.stderr[-3000:]
    whole = tmp_path / "runs" / "whole"

    cfg, run_dir, mid = _config(tmp_path, "stopped"), tmp_path / "runs" / "stopped", tmp_path / "mid_step"
    p = subprocess.Popen([sys.executable, "-m", "retrain.cli", "run", str(cfg)], cwd=ROOT,
                         env=_env(tmp_path, MID_STEP=str(mid)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None and not mid.exists(): time.sleep(0.02)
    assert p.poll() is None, p.stderr.read()[-3000:]
    p.send_signal(signal.SIGTERM)  # step 2 is being scored
    err = p.communicate(timeout=120)[1]
    ckpt = run_dir / "checkpoints" / "checkpoint-2"
    lines = [line for line in err.splitlines() if line.startswith("retrain:")]
    assert p.returncode == 143 and "Traceback" not in err, err[-3000:]
    assert lines == [f"retrain: stopped by SIGTERM (exit status 143): step 2 finished and is saved in {ckpt}; "
                     "continue with `retrain run --resume`"], err[-3000:]
    assert check_checkpoint(ckpt).ok and check_checkpoint(ckpt).step == 2  # the only checkpoint (save_steps is 100)
    assert [s for s, _ in _rewards(run_dir)] == [1, 2] and not (run_dir / "results.json").exists()

    r = _retrain("run", str(cfg), "--resume", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _rewards(run_dir) == _rewards(whole)  # the same reward at every step
    assert _per_step(run_dir) == _per_step(whole)  # the same rollouts, scored the same
    assert json.loads((run_dir / "results.json").read_text())["global_step"] == STEPS
