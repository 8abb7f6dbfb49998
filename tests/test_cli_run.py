"""The `retrain` command as a user runs it: a short training run, and a run killed with SIGKILL then resumed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BATCH = 8


def _config(tmp_path: Path, max_steps: int, save_steps: int) -> Path:
    cfg = {
        "model": {"name_or_path": "retrain/tiny-random"},
        "algorithm": {"hyperparameters": {"max_steps": max_steps,
                                          "per_device_train_batch_size": BATCH, "num_generations": 4,
                                          "max_completion_length": 24,
                                          "save_steps": save_steps, "learning_rate": 1e-3}},
        "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 8},
        "prompt_source": {"type": "list",
                          "prompts": [{"prompt": f"What is {a}*7?", "answer": str(7 * a)} for a in range(100, 108)]},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {},
                                                    "length_penalty": {"weight": 0.5, "params": {"budget": 3}}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": "cli", "num_threads": 1, "seed": 3,
    }
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _env(tmp_path):
    return {**os.environ, "RETRAIN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
            "TRL_EXPERIMENTAL_SILENCE": "1"}


def _retrain(*args, tmp_path, **kw):
    return subprocess.run([sys.executable, "-m", "retrain.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=_env(tmp_path), **kw)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_run_writes_a_run_directory(tmp_path):
    cfg = _config(tmp_path, max_steps=3, save_steps=2)
    r = _retrain("run", str(cfg), "--set", "seed=5", tmp_path=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "runs" / "cli"
    assert f"run directory: {run_dir}" in r.stdout
    assert [m["step"] for m in _lines(run_dir / "metrics.jsonl")] == [1, 2, 3]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == 5
    assert len(_lines(run_dir / "rollouts.jsonl")) == 3 * BATCH
    for name in ("report.html", "results.json", "summary.txt", "final/model.safetensors", "checkpoints/checkpoint-2"):
        assert (run_dir / name).exists(), name
    # a second plain run refuses to overwrite, with a message and status 2
    r = _retrain("run", str(cfg), tmp_path=tmp_path, timeout=300)
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    # the report can be rebuilt from the logs
    (run_dir / "report.html").unlink()
    r = _retrain("report", str(run_dir), tmp_path=tmp_path, timeout=120)
    assert r.returncode == 0 and (run_dir / "report.html").is_file()


@pytest.mark.parametrize("kill_after_lines,delay", [(2, 0.0), (4, 0.15)])
def test_sigkill_then_resume_logs_every_step_once(tmp_path, kill_after_lines, delay):
    total = 7
    cfg = _config(tmp_path, max_steps=total, save_steps=1)
    metrics = tmp_path / "runs" / "cli" / "metrics.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "retrain.cli", "run", str(cfg)], cwd=ROOT, env=_env(tmp_path),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= kill_after_lines: break
        time.sleep(0.02)
    time.sleep(delay)
    assert p.poll() is None, "the run finished before it could be killed"
    p.send_signal(signal.SIGKILL); p.wait()
    r = _retrain("run", str(cfg), "--resume", tmp_path=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [m["step"] for m in _lines(metrics)] == list(range(1, total + 1))
    rollouts = _lines(metrics.parent / "rollouts.jsonl")
    assert sorted(r["step"] for r in rollouts) == sorted(s for s in range(1, total + 1) for _ in range(BATCH))
    results = json.loads((metrics.parent / "results.json").read_text())
    assert results["global_step"] == total
