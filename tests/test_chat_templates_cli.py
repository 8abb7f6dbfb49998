"""Every imitation chat template trains one step through `retrain run`, token-exact, in the native and json formats."""
import json
import logging
import os

import pytest
import torch
import yaml

from retrain.cli import main
from retrain.env import SmolAgentEnv
from retrain.testing import IMITATION_TEMPLATES, build_tiny_model, build_tiny_tokenizer, tool_call_reply

# The default run takes one template per kind of behaviour; RETRAIN_SLOW=1 runs all of them (about 5-10 s each on 2 CPU
# cores).
QUICK = ["hermes", "r1_strip", "tool_followed", "llama_json", "no_tools_raise"]
NAMES = sorted(IMITATION_TEMPLATES) if os.environ.get("RETRAIN_SLOW") else QUICK
NO_TOOLS = {"no_tools_drop", "no_tools_raise"}  # templates without tool support: native is refused, json trains
ROWS = [{"prompt": f"What is {a}*{b}?", "answer": str(a * b)} for a, b in [(12, 34), (56, 7), (89, 10), (23, 45)]]


def _model_dir(tmp_path, name: str, fmt: str):
    "A tiny model saved with template `name`, taught a few steps to open with a tool call in `fmt`."
    tok = build_tiny_tokenizer(extra_tokens=["<think>", "</think>"])
    tok.chat_template = IMITATION_TEMPLATES[name]
    model, tok = build_tiny_model(tok, seed=0)
    env = SmolAgentEnv(tok, ["calculator"],
                       tool_call_format=fmt) if not (fmt == "native" and name in NO_TOOLS) else None
    if env is not None:
        parser = env.parser.name
        prompts = [env.renderer.text([*([{"role": "system", "content": env.system_prompt}]
                                        if env.system_prompt else []),
                                      {"role": "user", "content": r["prompt"]}],
                                     add_generation_prompt=True) for r in ROWS]
        reply = tool_call_reply(parser, "calculator", {"expression": "2*3"},
                                reasoning="ok</think>" if name == "r1_strip" else "<think>ok</think>") + tok.eos_token
        batch = tok([p + reply for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        # learn the reply only (padding is on the left): the prompt is given when sampling
        for i, p in enumerate(prompts):
            n_reply = int(batch["attention_mask"][i].sum()) - len(tok(p, add_special_tokens=False)["input_ids"])
            labels[i, :labels.shape[1] - n_reply] = -100
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        torch.manual_seed(0)
        for _ in range(30):
            loss = model(**batch, labels=labels).loss
            loss.backward(); opt.step(); opt.zero_grad()
    d = tmp_path / f"model-{name}"
    model.save_pretrained(d); tok.save_pretrained(d)
    assert (d / "chat_template.jinja").read_text() == IMITATION_TEMPLATES[name]
    return d


def _config(tmp_path, model_dir, fmt: str):
    cfg = {"model": {"name_or_path": str(model_dir)},
           "algorithm": {"hyperparameters": {"max_steps": 1, "per_device_train_batch_size": 8, "num_generations": 4,
                                             "max_completion_length": 200,
                                             "save_strategy": "no", "learning_rate": 1e-3}},
           "environment": {"tools": ["calculator"], "tool_call_format": fmt, "max_turns": 2, "max_tokens_per_turn": 90,
                           "sampling": {"temperature": 0.1}},
           "prompt_source": {"type": "list", "prompts": ROWS},
           "reward_setup": {"rollout_reward_configs": {"numeric_match": {}}},
           "output_dir": str(tmp_path / "runs"), "experiment_name": f"t-{fmt}", "num_threads": 1, "seed": 0}
    p = tmp_path / f"cfg-{fmt}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize("fmt", ["native", "json"])
@pytest.mark.parametrize("name", NAMES)
def test_template_trains_token_exact(tmp_path, monkeypatch, caplog, capsys, name, fmt):
    monkeypatch.setenv("RETRAIN_CACHE", str(tmp_path / "cache"))
    cfg = _config(tmp_path, _model_dir(tmp_path, name, fmt), fmt)
    caplog.set_level(logging.INFO, logger="retrain")
    code = main(["run", str(cfg)])
    err = capsys.readouterr().err
    if fmt == "native" and name in NO_TOOLS:  # refused before any weights load, naming the formats that work
        assert (code == 2 and "tool_call_format" in err and "json" in err and "code" in err
                and "Traceback" not in err), err
        return
    assert code == 0, err[-3000:]
    assert "mask check failed" not in caplog.text
    run_dir = tmp_path / "runs" / f"t-{fmt}"
    assert json.loads((run_dir / "results.json").read_text())["mask_check_failures"] == 0
    records = [json.loads(x) for x in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(records) == 8
    for r in records:  # the trained segments are exactly the turns the model sampled, in order
        trained = [s["text"] for s in r["segments"] if s["trained"]]
        assert trained == [t["text"] for t in r["turns"]], (trained, r["turns"])
    assert any(len(r["turns"]) == 2 and any(not s["trained"] for s in r["segments"]) for r in records), \
        "no rollout reached a second turn after an observation"
