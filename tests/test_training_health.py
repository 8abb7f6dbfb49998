"""Through the command line: a reward that modifies its rollout is named in one line (exit 2); a run that collapses
(learning_rate 1000) is flagged within 3 steps in the console, metrics.jsonl and the report, and stopped with
`algorithm.stop_on_collapse: true`; a run whose weights become non-finite stops in one line naming the step."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _rows(n: int = 8) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "configs/data/calculator_train.jsonl").read_text().splitlines()[:n]]


def _cfg(tmp_path: Path, model: str = "retrain/tiny-calculator-agent", lr: float = 1000.0,
         steps: int = 5, save_steps: int = 2,
         stop: bool = False, **extra) -> Path:
    cfg = {
        "model": {"name_or_path": model},
        "algorithm": {"stop_on_collapse": stop,
                      "hyperparameters": {"max_steps": steps, "per_device_train_batch_size": 16, "num_generations": 4,
                                          "max_completion_length": 64, "save_steps": save_steps, "learning_rate": lr}},
        "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 32},
        "prompt_source": {"type": "list", "prompts": _rows()},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": "h", "num_threads": 1, "seed": 0, **extra,
    }
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _retrain(cfg: Path, tmp_path: Path, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RETRAIN_DEBUG"}
    env.update(HF_HUB_OFFLINE="1", TRL_EXPERIMENTAL_SILENCE="1",  # RETRAIN_CACHE: the agent, built once
               RETRAIN_CACHE=str(cache or os.environ.get("RETRAIN_CACHE", Path.home() / ".cache" / "retrain")),
               PYTHONPATH=os.pathsep.join([str(tmp_path / "mods"), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "retrain.cli", "run", str(cfg)],
                          capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)


def _metrics(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "runs" / "h" / "metrics.jsonl").read_text().splitlines()]


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("retrain: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def test_a_reward_that_modifies_its_rollout_is_named_in_one_line(tmp_path):
    m = tmp_path / "mods"
    m.mkdir()
    (m / "meddling.py").write_text("def cheat(rollout):\n    rollout.final_answer = '42'\n    rollout.turns.clear()\n  "
                                   "  return 1.0\n")
    cfg = _cfg(tmp_path, model="retrain/tiny-random", lr=1e-3, steps=1,
               reward_setup={"rollout_reward_configs": {"meddling:cheat": {}}})
    r = _retrain(cfg, tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 2, r.stderr[-3000:]
    line = _one_line(r.stderr)
    assert "reward 'meddling:cheat' on rollout 0" in line and "rollout.final_answer is read-only" in line, line
    assert "the run stopped in step 1" in line and "mask check" not in r.stderr, line


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory):
    "The issue's run: learning_rate 1000 on the calculator agent, 5 steps (reward 0.31 at step 1, 0 from step 2)."
    tmp = tmp_path_factory.mktemp("lr1000")
    return tmp, _retrain(_cfg(tmp), tmp)


def test_a_collapse_is_flagged_within_3_steps(collapsed):
    tmp, r = collapsed
    assert r.returncode == 0, r.stderr[-3000:]  # flagged, not stopped: stop_on_collapse is off by default
    ms = _metrics(tmp)
    # the collapse is there
    assert ms[0]["reward"] > 0 and all(m["reward"] == 0 for m in ms[1:]), [m["reward"] for m in ms]
    flagged = [m["step"] for m in ms if m.get("health/collapse")]
    # from step 2: flagged by step 4
    assert flagged and flagged[0] <= 4 and flagged == list(range(flagged[0], 6)), flagged
    warnings = [line for line in r.stderr.splitlines() if "training collapsed" in line]
    assert len(warnings) == 1 and f"step {flagged[0]}: training collapsed" in warnings[0], r.stderr[-3000:]  # said once
    assert "learning rate (1000) is likely too high" in warnings[0]
    assert "Training health" in (tmp / "runs" / "h" / "report.html").read_text()


def test_stop_on_collapse_stops_the_run_in_one_line(tmp_path):
    r = _retrain(_cfg(tmp_path, stop=True, save_steps=1), tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    line = _one_line(r.stderr)
    assert line.startswith("retrain: step 3: training collapsed") and "algorithm.stop_on_collapse" in line, line
    ms = _metrics(tmp_path)
    # the flagged step is logged, then the end
    assert [m["step"] for m in ms] == [1, 2, 3] and ms[-1]["health/collapse"] == 1.0
    ckpts = sorted(p.name for p in (tmp_path / "runs" / "h" / "checkpoints").glob("checkpoint-*"))
    # every step is saved, but not the collapsed one
    assert "checkpoint-2" in ckpts and "checkpoint-3" not in ckpts, ckpts
    assert not (tmp_path / "runs" / "h" / "final").exists()


def test_non_finite_weights_stop_the_run_in_one_line_naming_the_step(tmp_path):
    r = _retrain(_cfg(tmp_path, lr=float("inf"), steps=3), tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    line = _one_line(r.stderr)
    assert (line.startswith("retrain: step 1: training diverged: the weights are no longer finite")
            and "learning rate (inf)" in line), line
    assert _metrics(tmp_path)[-1]["health/non_finite"] == 1.0
    assert not list((tmp_path / "runs" / "h" / "checkpoints").glob("checkpoint-*"))
