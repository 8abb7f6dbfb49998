"""MCP servers as tool sources, from the command line: `retrain validate` connects to them, and a 2-step
`retrain run` whose calculator is served by the test MCP server (tests/mcp_server.py) survives the server
being killed in the middle of the run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mcp", reason="MCP servers need the 'mcp' extra")
ROOT = Path(__file__).resolve().parents[1]
SERVER = str(ROOT / "tests" / "mcp_server.py")


def _retrain(*args, tmp_path, cache: Path | None = None, **kw):
    env = {**os.environ, "RETRAIN_CACHE": str(cache or tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    return subprocess.run([sys.executable, "-m", "retrain.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, **kw)


def _config(tmp_path: Path, servers: list[dict], tools=()) -> Path:
    rows = [json.loads(line) for line in (ROOT / "configs/data/calculator_train.jsonl").read_text().splitlines()[:8]]
    cfg = {
        "model": {"name_or_path": "retrain/tiny-calculator-agent"},
        "algorithm": {"hyperparameters": {"max_steps": 2, "per_device_train_batch_size": 32, "num_generations": 8,
                                          "max_completion_length": 64, "save_steps": 2, "learning_rate": 1e-4}},
        "environment": {"tools": list(tools), "max_turns": 2, "max_tokens_per_turn": 32, "mcp_servers": servers},
        "prompt_source": {"type": "list", "prompts": rows},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {"verifiers": ["answer_is_number"]}},
                         "step_reward_configs": {"tool_call_valid": {"weight": 0.2}}},
        "output_dir": str(tmp_path / "runs"), "experiment_name": "mcp", "num_threads": 1, "seed": 0,
    }
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_validate_lists_the_tools_and_names_a_bad_server(tmp_path):
    good = {"name": "calc", "command": sys.executable, "args": [SERVER], "tools": ["slow_calculator"]}
    r = _retrain("validate", str(_config(tmp_path, [good], tools=["calculator"])), tmp_path=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "# mcp server 'calc': 1 tool(s): slow_calculator" in r.stdout
    bad = {"name": "search", "command": "no-such-mcp-server-xyz"}
    r = _retrain("validate", str(_config(tmp_path, [good, bad])), tmp_path=tmp_path, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert (len(lines) == 1
            and lines[0].startswith("retrain: mcp server 'search' did not start: FileNotFoundError")), lines
    clash = _config(tmp_path, [{"name": "calc", "command": sys.executable, "args": [SERVER]}], tools=["calculator"])
    r = _retrain("validate", str(clash), tmp_path=tmp_path, timeout=120)
    assert (r.returncode == 2
            and "tool 'calculator' of mcp server 'calc' clashes with the one from environment.tools" in r.stderr)


def test_two_step_run_calls_mcp_tools_and_survives_the_server_being_killed(tmp_path):
    calls, died = tmp_path / "calls.log", tmp_path / "died"
    server = {"name": "calc", "command": sys.executable, "args": [SERVER], "tools": ["calculator"],
              "env": {"MCP_CALL_LOG": str(calls), "MCP_DIE_AT_CALL": "2", "MCP_DIE_ONCE_FILE": str(died)}}
    # the warm-started agent is cached where the quickstart keeps it (built once per machine, ~1 min)
    cache = Path(os.environ.get("RETRAIN_CACHE", Path.home() / ".cache" / "retrain"))
    r = _retrain("run", str(_config(tmp_path, [server])), tmp_path=tmp_path, cache=cache, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "runs" / "mcp"
    assert died.exists(), "the server was never killed: the agent made fewer than 2 calls"
    turns = [t for line in (run_dir / "rollouts.jsonl").read_text().splitlines() for t in json.loads(line)["turns"]]
    called = [t for t in turns if t["tool_call"] and t["tool_call"]["name"] == "calculator"
              and t["tool_result"] is not None]
    answered = [t for t in called if not t["infra_error"] and not t["tool_error"] and t["tool_result"].isdigit()]
    infra = [t for t in called if t["infra_error"]]
    assert answered and infra, (len(called), len(answered), len(infra))
    assert all(not t["tool_error"] and "restarted" in t["tool_result"] for t in infra)
    # the answers came from the server: it logged each of them (and the call it died in; calls in flight then may not
    # have reached it)
    assert len(answered) + 1 <= calls.read_text().split().count("start:calculator") <= len(called)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["mcp"]["calc"] == {"calls": len(called), "restarts": 1, "infra_failures": len(infra), "down": None}
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and max(m["tool_infra_error_rate"] for m in metrics) > 0
    assert (run_dir / "mcp" / "calc.stderr.log").is_file()  # each stdio server's stderr is kept


def test_ctrl_c_stops_the_run_and_its_server(tmp_path):
    import signal
    import time
    pid_file = tmp_path / "server.pid"
    server = {"name": "calc", "command": sys.executable, "args": [SERVER], "tools": ["calculator"],
              "env": {"MCP_PID_FILE": str(pid_file)}}
    cfg = _config(tmp_path, [server])
    data = yaml.safe_load(cfg.read_text()); data["algorithm"]["hyperparameters"]["max_steps"] = 50
    cfg.write_text(yaml.safe_dump(data))
    cache = Path(os.environ.get("RETRAIN_CACHE", Path.home() / ".cache" / "retrain"))
    env = {**os.environ, "RETRAIN_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    # Ctrl-C as in a terminal: a shell starts background jobs (and so this test, when pytest runs in one) with SIGINT
    # ignored
    p = subprocess.Popen([sys.executable, "-m", "retrain.cli", "run", str(cfg)], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    metrics = tmp_path / "runs" / "mcp" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and not (metrics.exists()
                                                               and metrics.read_text().count("\n") >= 1):
        time.sleep(0.1)
    assert p.poll() is None, p.stderr.read()[-2000:]
    server_pid = int(pid_file.read_text())
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130 and "Traceback" not in err and "--resume" in err, err[-2000:]
    assert len(metrics.read_text().splitlines()) < 50  # training stopped at the end of the step it was in
    time.sleep(0.5)
    import psutil
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE


def test_eval_calls_the_mcp_tools(tmp_path):
    calls = tmp_path / "calls.log"
    server = {"name": "calc", "command": sys.executable, "args": [SERVER], "tools": ["calculator"],
              "env": {"MCP_CALL_LOG": str(calls)}}
    cfg = _config(tmp_path, [server])
    cache = Path(os.environ.get("RETRAIN_CACHE", Path.home() / ".cache" / "retrain"))
    r = _retrain("eval", str(cfg), "--samples", "2", "--out", str(tmp_path / "eval"), tmp_path=tmp_path,
                 cache=cache, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    turns = [t for line in (tmp_path / "eval" / "eval_rollouts.jsonl").read_text().splitlines()
             for t in json.loads(line)["turns"]]
    answered = [t for t in turns if t["tool_call"] and t["tool_result"] is not None and t["tool_result"].isdigit()]
    assert answered and calls.read_text().split().count("start:calculator") == len(answered)
    assert (tmp_path / "eval" / "mcp" / "calc.stderr.log").is_file()
