"""What retrain does when things go wrong, as a user meets it on the command line: one run per directory,
resume that checks what it restores, and user errors as one line with exit status 2 (no traceback)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BATCH = 8


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _cfg(tmp_path: Path, **over) -> dict:
    cfg = {
        "model": {"name_or_path": "retrain/tiny-random"},
        "algorithm": {"hyperparameters": {"max_steps": 2, "per_device_train_batch_size": BATCH, "num_generations": 4,
                                          "max_completion_length": 24, "save_steps": 1, "learning_rate": 1e-3}},
        "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 8},
        "prompt_source": {"type": "list",
                          "prompts": [{"prompt": f"What is {a}*7?", "answer": str(7 * a)} for a in range(100, 104)]},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": "r", "num_threads": 1, "seed": 3,
    }
    for k, v in over.items():
        d = cfg
        *path, last = k.split(".")
        for p in path: d = d.setdefault(p, {})
        d[last] = v
    return cfg


def _write(tmp_path: Path, cfg: dict, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def _env(tmp_path, cache, **extra):
    env = {k: v for k, v in os.environ.items() if k != "RETRAIN_DEBUG"}
    return {**env, "RETRAIN_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1",
            "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), os.environ.get("PYTHONPATH", "")]), **extra}


def _retrain(*args, tmp_path, cache, timeout=300, **extra):
    return subprocess.run([sys.executable, "-m", "retrain.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=_env(tmp_path, cache, **extra), timeout=timeout)


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_runs_on_one_directory_exactly_one_trains(tmp_path, cache):
    cfg = _write(tmp_path, _cfg(tmp_path, **{"algorithm.hyperparameters.max_steps": 3}))
    env = _env(tmp_path, cache)
    ps = [subprocess.Popen([sys.executable, "-m", "retrain.cli", "run", str(cfg)], cwd=ROOT, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in ps]
    codes = sorted(p.returncode for p in ps)
    assert codes == [0, 2], [o[1][-2000:] for o in outs]
    refused = next(o[1] for p, o in zip(ps, outs) if p.returncode == 2)
    assert ("is in use by process" in refused
            or "already holds a run" in refused) and "Traceback" not in refused, refused
    assert _steps(tmp_path / "runs" / "r") == [1, 2, 3]


def test_resume_of_a_finished_run_adds_no_step(tmp_path, cache):
    cfg = _write(tmp_path, _cfg(tmp_path))
    assert _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache).returncode == 0
    r = _retrain("run", str(cfg), "--resume", tmp_path=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "already finished at step 2" in r.stderr + r.stdout
    assert _steps(tmp_path / "runs" / "r") == [1, 2]


def test_resume_after_a_kill_at_the_last_checkpoint_trains_no_further(tmp_path, cache):
    cfg = _write(tmp_path, _cfg(tmp_path))
    assert _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache).returncode == 0
    run_dir = tmp_path / "runs" / "r"
    (run_dir / "results.json").unlink()  # as if killed after the last checkpoint, before the end of the run
    r = _retrain("run", str(cfg), "--resume", tmp_path=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _steps(run_dir) == [1, 2]
    assert json.loads((run_dir / "results.json").read_text())["global_step"] == 2


def test_checkpoint_missing_its_optimizer_is_refused_by_name(tmp_path, cache):
    cfg = _write(tmp_path, _cfg(tmp_path))
    assert _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache).returncode == 0
    run_dir = tmp_path / "runs" / "r"
    (run_dir / "checkpoints" / "checkpoint-2" / "optimizer.pt").unlink()
    more = ["--set", "algorithm.hyperparameters.max_steps=3"]
    r = _retrain("run", str(cfg), "--resume", *more, tmp_path=tmp_path, cache=cache)
    assert r.returncode == 2 and "optimizer.pt is missing" in r.stderr and "--fresh-state" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and _steps(run_dir) == [1, 2]
    r = _retrain("run", str(cfg), "--resume", "--fresh-state", *more, tmp_path=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _steps(run_dir) == [1, 2, 3]


def test_resume_with_nothing_to_resume_says_so(tmp_path, cache):
    cfg = _write(tmp_path, _cfg(tmp_path, **{"algorithm.hyperparameters.max_steps": 1}))
    r = _retrain("run", str(cfg), "--resume", tmp_path=tmp_path, cache=cache)
    assert r.returncode == 0 and "nothing to resume" in r.stderr, r.stderr[-2000:]
    assert _steps(tmp_path / "runs" / "r") == [1]


def test_a_crash_before_the_first_step_does_not_block_a_plain_rerun(tmp_path, cache):
    run_dir = tmp_path / "runs" / "r"
    (run_dir / "checkpoints" / "checkpoint-1").mkdir(parents=True)  # a save killed half-way, no step logged
    (run_dir / "metrics.jsonl").write_text("")
    cfg = _write(tmp_path, _cfg(tmp_path, **{"algorithm.hyperparameters.max_steps": 1}))
    r = _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _steps(run_dir) == [1]



def test_a_run_that_crashed_in_its_first_step_starts_again_without_resume(tmp_path, cache):
    """A reward that raises in step 1 (after the evaluation before training wrote results.json): once it is fixed, the
    same command starts again, without --resume."""
    m = tmp_path / "mods"
    m.mkdir()
    (m / "flaky_reward.py").write_text(
        "import os\nCALLS = 0\n\ndef flaky(rollout):\n    global CALLS\n    CALLS += 1\n"
        "    if CALLS > 4 and not os.path.exists(os.environ['FIXED']): raise ValueError('scorer backend is down')\n"
        "    return 1.0\n")  # the 4 held-out rollouts score; training's first scoring raises
    fixed = tmp_path / "fixed"
    cfg = _write(tmp_path, _cfg(tmp_path, **{
        "algorithm.hyperparameters.max_steps": 1,
        "reward_setup.rollout_reward_configs": {"flaky_reward:flaky": {}},
        "evaluation": {"prompt_source": {"type": "list", "prompts": [{"prompt": f"What is {a}*3?"} for a in range(4)]},
                       "after": False}}))
    run_dir = tmp_path / "runs" / "r"
    r = _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache, FIXED=str(fixed))
    assert r.returncode != 0 and "scorer backend is down" in r.stderr, r.stderr[-2000:]
    assert (run_dir / "results.json").is_file() and not (run_dir / "metrics.jsonl").exists()  # crashed in step 1
    fixed.write_text("")
    r = _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache, FIXED=str(fixed))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--resume" not in r.stderr, r.stderr[-2000:]
    assert _steps(run_dir) == [1]
    assert json.loads((run_dir / "results.json").read_text())["global_step"] == 1

def _mods(tmp_path: Path):
    m = tmp_path / "mods"
    m.mkdir(exist_ok=True)
    (m / "broken_on_import.py").write_text("raise RuntimeError('this module fails on import')\n")
    (m / "not_callable.py").write_text("thing = 42\n")
    (m / "bad_rewards.py").write_text("def exits(rollout):\n    raise SystemExit(3)\n\ndef text(rollout):\n    return "
                                      "'high'\n\ndef keyerror(rollout):\n    raise KeyError('gold')\n\n"
                                      "async def async_raises(rollout):\n    raise ZeroDivisionError('async scorer "
                                      "divided by zero')\n\ndef verifier_raises(rollout):\n    raise TypeError('cannot "
                                      "compare str and int')\n")
    (m / "prompts.jsonl").write_bytes(b'{"prompt": "What is 2*3?", "answer": "6"}\n{"prompt": "caf\xe9", "answer": '
                                      b'"1"}\n')
    (m / "bad.jsonl").write_text('{"prompt": "What is 2*3?", "answer": "6"}\n{"prompt": "What is 2*4?", "answer": 8\n')


# (overrides of the config, text the one-line message must contain)
CASES = {
    "non-utf8-prompt-file": ({"prompt_source": "FILE"}, "not valid UTF-8"),
    "prompt-is-a-number": ({"prompt_source.prompts": [{"prompt": 12345, "answer": "1"}] * 4},
                           "'prompt' is a int (12345)"),
    "message-without-role": ({"prompt_source.prompts": [{"prompt": [{"content": "hi"}],
                                                         "answer": "1"}] * 4}, "has no string 'role'"),
    "answer-missing": ({"prompt_source.prompts": [{"prompt": "2*3?"}] * 4},
                       "'answer' is missing (reward 'numeric_match' needs it)"),
    "answer-null": ({"prompt_source.prompts": [{"prompt": "2*3?", "answer": None}] * 4}, "'answer' is null"),
    "answer-not-a-number": ({"prompt_source.prompts": [{"prompt": "2*3?", "answer": "six"}] * 4}, "not a number"),
    "empty-model-dir": ({"model.name_or_path": "EMPTY"}, "model.name_or_path"),
    "output-dir-in-proc": ({"output_dir": "/proc/x"}, "cannot create the run directory"),
    "output-dir-is-a-file": ({"output_dir": "AFILE"}, "cannot create the run directory"),
    "tool-module-missing": ({"environment.tools": ["no_such_module_xyz:tool"]}, "no_such_module_xyz"),
    "tool-module-raises": ({"environment.tools": ["broken_on_import:tool"]}, "this module fails on import"),
    "tool-not-callable": ({"environment.tools": ["not_callable:thing"]}, "not_callable:thing"),
    "reward-module-missing": ({"reward_setup.rollout_reward_configs": {"no_such_module_xyz:f": {}}},
                              "no_such_module_xyz"),
    "reward-module-raises": ({"reward_setup.rollout_reward_configs": {"broken_on_import:f": {}}},
                             "this module fails on import"),
    "reward-not-callable": ({"reward_setup.rollout_reward_configs": {"not_callable:thing": {}}}, "not_callable:thing"),
    "reward-raises-systemexit": ({"reward_setup.rollout_reward_configs": {"bad_rewards:exits": {}}},
                                 "raised SystemExit"),
    "reward-returns-text": ({"reward_setup.rollout_reward_configs": {"bad_rewards:text": {}}},
                            "a reward must be a number"),
    # a scorer that raises in training: its own exception, named, with the rollout it scored (never "no running event
    # loop")
    "reward-raises": ({"reward_setup.rollout_reward_configs": {"bad_rewards:keyerror": {}}},
                      ") raised KeyError: 'gold'; the run stopped in step 1"),
    "async-reward-raises": ({"reward_setup.rollout_reward_configs": {"bad_rewards:async_raises": {}}},
                            "raised ZeroDivisionError: async scorer divided by zero"),
    "verifier-raises": ({"reward_setup.rollout_reward_configs":
                             {"numeric_match": {"verifiers": ["bad_rewards:verifier_raises"]}}},
                        "raised TypeError: cannot compare str and int"),
    "import-not-installed": ({"environment.authorized_imports": ["no_such_module_xyz"]}, "authorized_imports"),
    # eight 100 k-character prompts once allocated a 40 GB attention mask; now refused at load, before the model
    "prompt-longer-than-context": ({"prompt_source.prompts": [{"prompt": "What is 2*3? " * 8000, "answer": "6"}] * 8},
                                   "8 of 8 rows have prompts longer than 1000 tokens (the model's context 1024 - "
                                   "completion budget 24)"),
    "malformed-jsonl-line": ({"prompt_source": "BADJSONL"}, "bad.jsonl:2: invalid JSON at column"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_user_errors_are_one_line_with_status_2(tmp_path, cache, name, monkeypatch, capsys):
    "In-process `main()`, as the command calls it (one interpreter start for all cases)."
    from retrain.cli import main
    _mods(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    for k, v in _env(tmp_path, cache).items():
        if k.startswith(("RETRAIN_", "HF_", "TRL_")): monkeypatch.setenv(k, v)
    monkeypatch.delenv("RETRAIN_DEBUG", raising=False)
    over, expected = CASES[name]
    fix = {"FILE": {"type": "file", "path": str(tmp_path / "mods" / "prompts.jsonl")},
           "BADJSONL": {"type": "file", "path": str(tmp_path / "mods" / "bad.jsonl")},
           "AFILE": str(tmp_path / "cfg.yaml"),
           "EMPTY": str(tmp_path / "empty_model")}
    (tmp_path / "empty_model").mkdir()
    over = {k: fix.get(v, v) if isinstance(v, str) else v for k, v in over.items()}
    cfg = _write(tmp_path, _cfg(tmp_path, **over))
    rc = main(["run", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2, (rc, err[-3000:])
    assert "Traceback" not in err and "no running event loop" not in err and expected in err, err[-3000:]
    last = [line for line in err.splitlines() if line.startswith("retrain: ")]
    assert len(last) == 1, err[-3000:]


@pytest.mark.parametrize("name", ["tool-module-raises", "reward-raises-systemexit"])
def test_debug_shows_the_traceback(tmp_path, cache, name):
    _mods(tmp_path)
    cfg = _write(tmp_path, _cfg(tmp_path, **CASES[name][0]))
    r = _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache)
    assert r.returncode == 2 and "Traceback" not in r.stderr and CASES[name][1] in r.stderr, r.stderr[-3000:]
    r = _retrain("run", str(cfg), "--debug", tmp_path=tmp_path, cache=cache)
    assert r.returncode == 2 and "Traceback" in r.stderr and CASES[name][1] in r.stderr, r.stderr[-3000:]
    if name == "reward-raises-systemexit":  # the training loop stopped at step 1: a plain re-run is not blocked
        r = _retrain("run", str(cfg), "--debug", tmp_path=tmp_path, cache=cache, RETRAIN_DEBUG="1")
        assert "already holds a run" not in r.stderr, r.stderr[-3000:]


def test_damaged_logs_are_one_line_with_status_2(tmp_path, cache):
    cfg = _write(tmp_path, _cfg(tmp_path, **{"algorithm.hyperparameters.max_steps": 1}))
    assert _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache).returncode == 0
    run_dir = tmp_path / "runs" / "r"
    (run_dir / "results.json").write_text("{not json")
    r = _retrain("run", str(cfg), "--resume", tmp_path=tmp_path, cache=cache)
    assert r.returncode == 2 and "results.json is damaged" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    (run_dir / "results.json").unlink()
    (run_dir / "metrics.jsonl").write_text('garbage\n{"step": 1}\n')
    r = _retrain("run", str(cfg), "--resume", tmp_path=tmp_path, cache=cache)
    assert (r.returncode == 2 and "metrics.jsonl:1: not a valid log line" in r.stderr
            and "Traceback" not in r.stderr), r.stderr[-2000:]
    r = _retrain("report", str(run_dir), tmp_path=tmp_path, cache=cache)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_a_code_action_holding_300_mb_does_not_grow_the_trainer(tmp_path):
    code = r'''
import resource
from retrain.code_actions import run_code_action
from retrain.tools import CalculatorTool, with_final_answer
tools = with_final_answer([CalculatorTool()])
run_code_action("x = 1", tools)  # warm: the first fork and imports
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
state = {}
for _ in range(4):
    o = run_code_action('big = "x" * (300 * 2**20)\nsmall = len(big)', tools, timeout=30, state=state)
    state = o.state
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) // 1024, sorted(state), o.observation.splitlines()[-1])
'''
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    grew_mb, kept, note = r.stdout.split(" ", 2)
    assert int(grew_mb) < 16, r.stdout  # the state budget is 1 MB
    assert kept == "['small']" and "big (over the 1.0 MB state budget)" in note, r.stdout


def test_long_prompts_are_cut_or_dropped_when_the_config_says_so(tmp_path, cache):
    long = [{"prompt": "What is 2*3? " * 8000, "answer": "6"}] * 4
    short = [{"prompt": f"What is {a}*7?", "answer": str(7 * a)} for a in range(100, 104)]
    cfg = _write(tmp_path,
                 _cfg(tmp_path, **{"algorithm.hyperparameters.max_steps": 1, "prompt_source.prompts": long + short,
                                             "prompt_source.too_long": "truncate"}))
    r = _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "prompt_source: cut the last user message of 4 of 8 rows to fit 1000 tokens" in r.stderr, r.stderr[-2000:]
    cfg = _write(tmp_path,
                 _cfg(tmp_path, **{"algorithm.hyperparameters.max_steps": 1, "prompt_source.prompts": long + short,
                                             "prompt_source.too_long": "drop", "experiment_name": "d"}))
    r = _retrain("run", str(cfg), tmp_path=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "prompt_source: dropped 4 of 8 rows whose prompts are longer than 1000 tokens" in r.stderr, r.stderr[-2000:]
