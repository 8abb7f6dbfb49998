"""`report_to: [tensorboard, trackio]` in a 2-step `retrain run`: TensorBoard's event files and Trackio's local
database (offline) hold retrain's reward components, per-turn rewards, tool rates, held-out success and a
table of sample rollouts."""
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("tensorboard", reason="the 'tensorboard' extra")
pytest.importorskip("trackio", reason="the 'trackio' extra")
ROOT = Path(__file__).resolve().parents[1]


def test_tensorboard_and_trackio_receive_retrains_figures(tmp_path):
    rows = [json.loads(line) for line in (ROOT / "configs/data/calculator_train.jsonl").read_text().splitlines()[:8]]
    cfg = {
        "model": {"name_or_path": "retrain/tiny-calculator-agent"},
        "algorithm": {"report_to": ["tensorboard", "trackio"],
                      "hyperparameters": {"max_steps": 2, "per_device_train_batch_size": 32, "num_generations": 8,
                                          "max_completion_length": 64, "save_steps": 2, "learning_rate": 1e-4}},
        "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 32},
        "prompt_source": {"type": "list", "prompts": rows},
        "evaluation": {"prompt_source": {"type": "list", "prompts": rows[:4]}, "success_reward": "numeric_match"},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {"verifiers": ["answer_is_number"]}},
                         "step_reward_configs": {"tool_call_valid": {"weight": 0.2}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": "trk", "num_threads": 1, "seed": 0,
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    # where the quickstart keeps the agent
    cache = Path(os.environ.get("RETRAIN_CACHE", Path.home() / ".cache" / "retrain"))
    env = {**os.environ, "RETRAIN_CACHE": str(cache), "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    r = subprocess.run([sys.executable, "-m", "retrain.cli", "run", str(tmp_path / "cfg.yaml")],
                       capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "runs" / "trk"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    def tags(d):
        ea = EventAccumulator(d); ea.Reload()
        return ea, ea.Tags()
    [trl_dir] = glob.glob(str(run_dir / "checkpoints" / "runs" / "*"))
    _, t = tags(trl_dir)
    for tag in ("train/rewards/numeric_match/mean", "train/step_rewards/tool_call_valid/mean",
                "train/turn_rewards/0/mean",
                "train/tool_call_rate", "train/tool_error_rate", "train/termination/final_answer", "train/tokens/env"):
        assert tag in t["scalars"], (tag, t["scalars"])
    ea, t = tags(str(run_dir / "tensorboard"))
    assert [e.step for e in ea.Scalars("heldout/success_rate")] == [0, 2]
    assert [e.step for e in ea.Tensors("train/rollouts/text_summary")] == [1, 2]

    # read Trackio's local database in a process of its own (trackio reads TRACKIO_DIR when imported)
    out = subprocess.run([sys.executable, "-c", (
        "import json, trackio; runs = trackio.SQLiteStorage.get_runs('huggingface'); "
        "print(json.dumps([sorted({k for row in trackio.SQLiteStorage.get_logs('huggingface', r) for k in row}) for r "
        "in runs]))")],
        capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    [keys] = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("train/rewards/numeric_match/mean", "train/step_rewards/tool_call_valid/mean", "train/tool_call_rate",
                "heldout/success_rate", "train/rollouts"):
        assert key in keys, (key, keys)
