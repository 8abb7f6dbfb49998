"""Tools that misbehave, through `retrain run`: with `environment.tool_isolation: process` a tool that ends its
process (`os._exit(7)`) fails only its call, as an infrastructure failure, and training goes on; what tools print
(1 MB a call here) goes, bounded, to the run directory's `tool_output.jsonl`, never to the console."""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL = '''
import os, sys
from smolagents import Tool
from retrain.tools import calculate

class Calculator(Tool):
    name, output_type = "calculator", "string"
    description = "Evaluates an arithmetic expression and returns the result."
    inputs = {"expression": {"type": "string", "description": "The arithmetic expression, e.g. '(3+4)*2'"}}
    def forward(self, expression: str) -> str:
        print("o" * 2**20); print("e" * 2**20, file=sys.stderr)  # 1 MB to each stream, every call
        fd = os.open(os.environ["CALLS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, b"x"); os.close(fd)
        if os.path.getsize(os.environ["CALLS_FILE"]) == int(os.environ.get("CRASH_AT", "0")): os._exit(7)
        return calculate(expression)

calculator = Calculator()
'''


def _run(tmp_path: Path, isolation: str, crash_at: int) -> tuple[subprocess.CompletedProcess, Path]:
    (tmp_path / "mods").mkdir(exist_ok=True)
    (tmp_path / "mods" / "loud_tools.py").write_text(TOOL)
    rows = [json.loads(line) for line in (ROOT / "configs/data/calculator_train.jsonl").read_text().splitlines()[:4]]
    cfg = {
        "model": {"name_or_path": "retrain/tiny-calculator-agent"},
        "algorithm": {"hyperparameters": {"max_steps": 2, "per_device_train_batch_size": 16, "num_generations": 8,
                                          "max_completion_length": 64, "save_steps": 2, "learning_rate": 1e-4}},
        "environment": {"tools": ["loud_tools:calculator"], "max_turns": 2, "max_tokens_per_turn": 32,
                        "tool_isolation": isolation},
        "prompt_source": {"type": "list", "prompts": rows},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": isolation, "num_threads": 1, "seed": 0,
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    # the warm-started agent, built once
    cache = Path(os.environ.get("RETRAIN_CACHE", Path.home() / ".cache" / "retrain"))
    env = {**os.environ, "RETRAIN_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), os.environ.get("PYTHONPATH", "")]),
           "CALLS_FILE": str(tmp_path / f"calls-{isolation}"), "CRASH_AT": str(crash_at)}
    r = subprocess.run([sys.executable, "-m", "retrain.cli", "run", str(tmp_path / "cfg.yaml")], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=600)
    return r, tmp_path / "runs" / isolation


def _turns(run_dir: Path) -> list[dict]:
    return [t for line in (run_dir / "rollouts.jsonl").read_text().splitlines() for t in json.loads(line)["turns"]
            if t["tool_call"] and t["tool_result"] is not None]


def _check_output_log(run_dir: Path, calls: int):
    recs = [json.loads(line) for line in (run_dir / "tool_output.jsonl").read_text().splitlines()]
    assert len(recs) == calls, (len(recs), calls)  # one record for each call that returned
    assert all(r["tool"] == "calculator" and r["bytes"] >= 2 * 2**20 and r["cut"]
               and len(r["output"]) == 64 * 2**10 for r in recs)
    assert (run_dir / "tool_output.jsonl").stat().st_size < calls * 70 * 2**10 + 2**20


def test_a_crashing_tool_is_an_infrastructure_failure_under_process_isolation(tmp_path):
    r, run_dir = _run(tmp_path, "process", crash_at=2)
    assert r.returncode == 0, r.stderr[-3000:]
    # 1 MB a call never reached the console
    assert len(r.stdout) + len(r.stderr) < 200_000, (len(r.stdout), len(r.stderr))
    turns = _turns(run_dir)
    infra = [t for t in turns if t["infra_error"]]
    assert len(infra) == 1 and "ended its worker process (exit code 7)" in infra[0]["tool_result"], infra
    answered = [t for t in turns if not t["infra_error"] and not t["tool_error"]]
    assert len(answered) >= 2, len(turns)  # calls before and after the crash worked
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and max(m["tool_infra_error_rate"] for m in metrics) > 0
    _check_output_log(run_dir, calls=len(turns) - 1)


def test_tool_prints_are_captured_in_process_too(tmp_path):
    r, run_dir = _run(tmp_path, "none", crash_at=0)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(r.stdout) + len(r.stderr) < 200_000, (len(r.stdout), len(r.stderr))
    turns = _turns(run_dir)
    assert turns and not any(t["infra_error"] or t["tool_error"] for t in turns)
    _check_output_log(run_dir, calls=len(turns))
