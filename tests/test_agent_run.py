"""`retrain run` on a smolagents agent as it is: `environment.agent` names a factory module that builds a `CodeAgent`
(or a `ToolCallingAgent`)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

FACTORY = '''
import importlib.resources

import yaml
from smolagents import CodeAgent, ToolCallingAgent, tool

@tool
def add(a: int, b: int) -> int:
    """Adds two whole numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b

def build(model, tools, max_steps=2):
    # a short system prompt of the agent's own (smolagents' default: ~7,000 tiny-tokenizer tokens, slow on a CPU)
    t = yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath("code_agent.yaml").read_text())
    t["system_prompt"] = ("Solve the task in Python inside <code></code>; call final_answer(x) at the end. "
                          "{{ custom_instructions }}")
    return CodeAgent(tools=[add, *tools], model=model, instructions="Use add for sums.", max_steps=max_steps,
                     prompt_templates=t)

def build_caller(model, tools, max_steps=2):
    t = yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath("toolcalling_agent.yaml").read_text())
    t["system_prompt"] = "Call one tool a reply, as JSON. {{ custom_instructions }}"
    return ToolCallingAgent(tools=[add, *tools], model=model, instructions="Use add for sums.", max_steps=max_steps,
                            prompt_templates=t)
'''


@pytest.mark.parametrize("factory", ["build", "build_caller"])
def test_retrain_run_trains_an_agent(tmp_path, factory):
    (tmp_path / "my_agents.py").write_text(FACTORY)
    cfg = {
        "model": {"name_or_path": "retrain/tiny-random"},
        "algorithm": {"hyperparameters": {"max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 4,
                                          "max_completion_length": 64, "learning_rate": 1e-3}},
        "environment": {"agent": f"my_agents:{factory}", "agent_kwargs": {"max_steps": 1}, "max_tokens_per_turn": 8},
        "prompt_source": {"type": "list", "prompts": [{"prompt": "What is 2+3?", "answer": "5"}]},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {}}},
        "evaluation": {"prompt_source": {"type": "list",
                                         "prompts": [{"prompt": "What is 4+4?", "answer": "8"}]}, "before": False},
        "output_dir": str(tmp_path / "runs"), "experiment_name": "agent", "num_threads": 1, "seed": 3,
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "RETRAIN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    def retrain(*args):
        return subprocess.run([sys.executable, "-m", "retrain.cli", *args], capture_output=True, text=True,
                              cwd=ROOT, env=env, timeout=600)
    r = retrain("validate", str(tmp_path / "cfg.yaml"))
    assert r.returncode == 0, r.stderr[-3000:]
    r = retrain("run", str(tmp_path / "cfg.yaml"))
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "runs" / "agent"
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["mask_check/failures"] == 0.0 for m in metrics)  # token-exact, per `check_rollout`
    assert "each call trains on its own prompt" in r.stderr + r.stdout  # which case applies, and why, said once
    recs = [json.loads(x) for x in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(recs) == 8
    for rec in recs:  # a step of the agent, then smolagents' answer after max_steps
        assert [t["agent_step"] for t in rec["turns"]] == ["action", "final_answer"]
        assert rec["termination"] == "max_steps"
    assert (run_dir / "report.html").is_file()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["eval_after"]["success_rate"] == 0.0  # the held-out evaluation ran the agent (greedy)
    r = retrain("eval", str(tmp_path / "cfg.yaml"), "--model", str(run_dir), "--out", str(tmp_path / "eval"))
    assert r.returncode == 0, r.stderr[-3000:]
    ends = [json.loads(x)["termination"] for x in (tmp_path / "eval" / "eval_rollouts.jsonl").read_text().splitlines()]
    assert ends and set(ends) == {"max_steps"}


def test_torchrun_two_processes_train_an_agent(tmp_path):
    "Two processes (`torchrun`, gloo): each plays its share of the episodes; per-call entries are padded alike on both."
    (tmp_path / "my_agents.py").write_text(FACTORY)
    cfg = {
        "model": {"name_or_path": "retrain/tiny-random"},
        "algorithm": {"hyperparameters": {"max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 4,
                                          "max_completion_length": 64, "learning_rate": 1e-3}},
        "environment": {"agent": "my_agents:build_caller", "agent_kwargs": {"max_steps": 1}, "max_tokens_per_turn": 8},
        "prompt_source": {"type": "list", "prompts": [{"prompt": "What is 2+3?", "answer": "5"},
                                                      {"prompt": "What is 4+4?", "answer": "8"}]},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": "mp", "num_threads": 1, "seed": 3,
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "RETRAIN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "retrain", "run", str(tmp_path / "cfg.yaml")], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "runs" / "mp"
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all(m["mask_check/failures"] == 0.0 for m in metrics)
    recs = [json.loads(x) for x in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(recs) == 2 * 8  # both ranks' episodes (4 each a step), gathered on the main process
