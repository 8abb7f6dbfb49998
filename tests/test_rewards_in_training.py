"""math_verify and the LLM judge (both modes, over a stand-in OpenAI-compatible endpoint) in a 2-step training
run, then `retrain eval` on the run directory: before and after side by side."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from judge_server import JudgeServer  # noqa: E402


def _retrain(*args, tmp_path, timeout=300):
    env = {**os.environ, "RETRAIN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    return subprocess.run([sys.executable, "-m", "retrain.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


@pytest.fixture
def judge():
    with JudgeServer() as server: yield server


def test_math_verify_and_both_judge_modes_train_then_eval(tmp_path, judge):
    rows = [{"prompt": f"What is {a}*7?", "answer": f"{a}*7 = <<{a}*7={7 * a}>>{7 * a}\n#### {7 * a}"}
            for a in range(100, 104)]
    cfg = {
        "model": {"name_or_path": "retrain/tiny-random"},
        "algorithm": {"hyperparameters": {"max_steps": 2, "per_device_train_batch_size": 8, "num_generations": 4,
                                          "max_completion_length": 24, "save_steps": 10, "learning_rate": 1e-3}},
        "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 8},
        "prompt_source": {"type": "list", "prompts": rows},
        "evaluation": {"prompt_source": {"type": "list", "prompts": rows[:2]}, "success_reward": "math_verify"},
        "reward_setup": {"rollout_reward_configs": {
            "math_verify": {"weight": 1.0},
            "llm_judge": {"weight": 0.5,
                          "params": {"rubric": "The right product.", "model": "stand-in", "base_url": judge.base_url}},
            "llm_judge_group": {"weight": 0.5, "params": {"rubric": "The right product.", "model": "stand-in",
                                                          "base_url": judge.base_url}}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": "judged", "num_threads": 1, "seed": 0,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = _retrain("run", str(path), tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "runs" / "judged"
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(k in metrics[0]
               for k in ("rewards/math_verify/mean", "rewards/llm_judge/mean", "rewards/llm_judge_group/mean"))
    records = [json.loads(x) for x in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(records) == 16
    judged = records[0]["annotations"]["judge"]
    assert {j["mode"] for j in judged} == {"absolute", "relative"} and all("SCORE" in j["reply"]
                                                                           or "scores" in j["reply"] for j in judged)
    bodies = [b["messages"][0]["content"] for b in judge.requests]
    assert sum("compare 4 attempts" in b for b in bodies) >= 2 * 2  # one call per group of 4, two groups a step
    assert sum("grade one attempt" in b for b in bodies) >= 2 * 8  # one call per rollout

    r = _retrain("eval", str(path), "--model", str(run_dir), "--samples", "2", "--out",
                 str(tmp_path / "ev"), tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "greedy success" in r.stdout and "sampled pass@2" in r.stdout and "reward: llm_judge" in r.stdout, r.stdout
    ev = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert list(ev["models"]) == ["judged: before", "judged: after"]
    assert ev["success_reward"] == "math_verify" and ev["models"]["judged: after"]["sampled"]["samples"] == 2
    assert (tmp_path / "ev" / "eval.html").is_file() and (tmp_path / "ev" / "eval_rollouts.jsonl").is_file()
