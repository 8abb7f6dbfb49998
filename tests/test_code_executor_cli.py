"""`environment.code_executor` from the command line: a name retrain does not know, and a tool that cannot be sent
into a remote executor, are each one line and status 2 (no daemon or account is needed to see either)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("executor,message", [
    ("podman", "retrain: unknown code_executor 'podman': use 'local' or one of ['docker', 'e2b', 'modal']"),
    ("docker",
     "retrain: code_executor 'docker': a tool cannot be sent into the executor (its code must be self-contained)"),
])
def test_code_executor_problems_are_one_line(tmp_path, executor, message):
    cfg = {"model": {"name_or_path": "retrain/tiny-random"},
           "algorithm": {"hyperparameters": {"max_steps": 1, "per_device_train_batch_size": 4, "num_generations": 4}},
           "environment": {"tools": ["calculator"], "tool_call_format": "code", "code_executor": executor},
           "prompt_source": {"type": "list", "prompts": [{"prompt": "What is 2*3?", "answer": "6"}]},
           "reward_setup": {"rollout_reward_configs": {"numeric_match": {}}},
           "output_dir": str(tmp_path / "runs"), "num_threads": 1}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "RETRAIN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    r = subprocess.run([sys.executable, "-m", "retrain.cli", "run", str(tmp_path / "cfg.yaml")],
                       capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(message), r.stderr[-2000:]
