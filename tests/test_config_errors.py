"""Malformed configs: each error message names the file and the offending field; the CLI exits 2 without a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retrain.config_models import ConfigError, TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
GOOD = {
    "model": {"name_or_path": "some/model"},
    "prompt_source": {"type": "list", "prompts": [{"prompt": "What is 2*3?", "answer": "6"}]},
    "reward_setup": {"rollout_reward_configs": {"numeric_match": {"weight": 1.0}}},
}

# (overrides applied to GOOD, text the message must contain)
CASES = [
    (["modle.name_or_path=x"], "modle: unknown key; did you mean 'model'?"),
    (["model.name_or_pth=x"], "model.name_or_pth: unknown key; did you mean 'name_or_path'?"),
    (["model.torch_dtype=float64"], "model.torch_dtype"),
    (["model.loader=vllm"], "model.loader"),
    (["model.peft_config.lora_alpah=8"],
     "model.peft_config: 'lora_alpah' is not a peft.LoraConfig field; did you mean 'lora_alpha'?"),
    (["algorithm.name=ppo"], "algorithm.name"),
    (["algorithm.hyperparameters.learnig_rate=1e-5"],
     "algorithm.hyperparameters: 'learnig_rate' is not a trl.GRPOConfig field; did you mean 'learning_rate'?"),
    (["algorithm.hyperparameters.num_generations=lots"], "algorithm.hyperparameters: 'num_generations' expects"),
    (["algorithm.hyperparameters.output_dir=/tmp/x"], "top-level 'output_dir'"),
    (["environment.max_turns=0"], "environment.max_turns: Input should be greater than or equal to 1"),
    (["environment.tool_call_format=xml"], "environment.tool_call_format"),
    (["environment.sampling.top_p=1.5"], "environment.sampling.top_p"),
    (["environment.tols=[calculator]"], "environment.tols: unknown key; did you mean 'tools'?"),
    (["prompt_source.type=database"], "prompt_source"),
    (["prompt_source.prompts=[]"], "prompt_source.prompts"),
    (["prompt_source={type: file}"], "prompt_source.path: required field is missing"),
    (["prompt_source={type: file, path: data.parquet}"], "prompt_source: cannot infer the format of 'data.parquet'"),
    (["prompt_source={type: hf_dataset}"], "prompt_source.name_or_path: required field is missing"),
    (["reward_setup.rollout_reward_configs.numeric_match.wieght=1"],
     "reward_setup.rollout_reward_configs.numeric_match.wieght: unknown key; did you mean 'weight'?"),
    (["reward_setup.rollout_reward_configs.numeric_match.weight=heavy"],
     "reward_setup.rollout_reward_configs.numeric_match.weight"),
    (["reward_setup.rollout_reward_configs={}"], "reward_setup: no reward functions"),
    (["seed=abc"], "seed"),
    (["experiment_name=a/b"], "experiment_name"),
    (["logging_level=LOUD"], "logging_level"),
    (["evaluation.success_threshold=1"], "evaluation.prompt_source: required field is missing"),
]


@pytest.mark.parametrize("overrides,expected", CASES, ids=[c[0][0].split("=")[0] for c in CASES])
def test_malformed_config_names_the_field(tmp_path, overrides, expected):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(ConfigError) as e:
        TrainingConfig.from_yaml(p, overrides=overrides)
    msg = str(e.value)
    assert expected in msg, msg
    assert str(p) in msg, msg


def test_file_level_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        TrainingConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name_or_path: x\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML"):
        TrainingConfig.from_yaml(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        TrainingConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        TrainingConfig.from_dict(GOOD, overrides=["seed"])


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = TrainingConfig.from_yaml(path)
    assert TrainingConfig.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "retrain.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_validate(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(GOOD))
    r = _cli("validate", str(p), "--set", "environment.max_turns=6")
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["environment"]["max_turns"] == 6
    r = _cli("validate", str(p), "--set", "environment.max_turns=-1")
    assert r.returncode == 2
    assert "environment.max_turns" in r.stderr and "Traceback" not in r.stderr
    r = _cli("validate", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "no such config file" in r.stderr and "Traceback" not in r.stderr


def test_cli_version():
    r = _cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("retrain ")


ROW_MODULE = '''
from retrain.checks import register_row_check

def unit_ok(rollout, unit: str) -> float:
    return 1.0

register_row_check("rowcheck_mod:unit_ok", "unit", lambda v: v in ("cm", "m"), "a unit (cm or m)")
'''


def test_validate_refuses_rows_exactly_as_run_does(tmp_path):
    "A config whose rows fail registered row checks (a built-in one and one a user module registers) is refused by "
    "`retrain validate` with the message `retrain run` stops with, before any weights load."
    (tmp_path / "rowcheck_mod.py").write_text(ROW_MODULE)
    cfg = {"model": {"name_or_path": "retrain/tiny-random"}, "environment": {"tools": ["calculator"]},
           "prompt_source": {"type": "list", "prompts": [{"prompt": "What is 2*3?", "answer": "six", "unit": "km"},
                                                          {"prompt": "What is 2*4?", "answer": "8", "unit": "m"}]},
           "reward_setup": {"rollout_reward_configs": {"numeric_match": {}, "rowcheck_mod:unit_ok": {}}},
           "output_dir": str(tmp_path / "runs"), "num_threads": 1}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "RETRAIN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    cli = lambda *a: subprocess.run([sys.executable, "-m", "retrain.cli", *a], capture_output=True, text=True, cwd=ROOT,
                                    env=env, timeout=300)
    v, r = cli("validate", str(p)), cli("run", str(p))
    want = ("prompt_source: 1 of 2 rows cannot be used; fix or remove them:\n"
            "  row 0: 'answer' is 'six', not a number (reward 'numeric_match' needs it); "
            "'unit' is 'km', not a unit (cm or m) (reward 'rowcheck_mod:unit_ok' needs it)")
    for res in (v, r):
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
        assert want in res.stderr, res.stderr[-3000:]
    assert not (tmp_path / "runs" / "default" / "final").exists()
    # with the rows fixed, validate passes
    cfg["prompt_source"]["prompts"][0].update(answer="6", unit="cm")
    p.write_text(yaml.safe_dump(cfg))
    ok = cli("validate", str(p))
    assert ok.returncode == 0, ok.stderr[-3000:]
