"""Server-mode generation end to end without vLLM: TRL's own `VLLMClient` (generation, prefix-cache reset, weight
update requests) talks to a stand-in server that serves the embedded agent over vLLM's HTTP endpoints, and
retrain trains two steps on the multi-turn tool episodes it generates."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from vllm_standin import HTTPWeightsClient, StandInServer  # noqa: E402

from retrain.config_models import ModelConfig, TrainingConfig  # noqa: E402
from retrain.env import SmolAgentEnv  # noqa: E402
from retrain.evaluation import HeldOutEvaluation, evaluate_policy, heldout_metrics  # noqa: E402
from retrain.generation import VLLMServerGenerator  # noqa: E402
from retrain.models import load_model, load_tokenizer  # noqa: E402
from retrain.calculator import RewardCalculator  # noqa: E402
from retrain.runner import run  # noqa: F401,E402  (registers the embedded agent)
from retrain.trainer import GRPOTrainer, grpo_config  # noqa: E402
from retrain.types import ActionKind  # noqa: E402

AGENT = "retrain/tiny-calculator-agent"
TEMPERATURE = 1.0


class RecordingTrainer(GRPOTrainer):
    "Keeps each step's rollouts and how far their sampling log-probs are from the current policy's, recomputed."
    def __init__(self, *a, initial=None, **kw):  # `initial`: a separate copy of the policy before training
        super().__init__(*a, **kw)
        self.initial = initial
        self.seen, self.max_lp_diff, self.max_lp_diff_initial = [], [], []

    @staticmethod
    def _worst(model, trajs) -> float:
        worst = 0.0
        with torch.no_grad():
            for t in trajs:
                raw = t.raw
                ids = torch.tensor([raw.prompt_ids + raw.completion_ids])
                lp = torch.log_softmax(model(ids).logits[0, len(raw.prompt_ids) - 1:-1].float() / TEMPERATURE, -1)
                got = lp.gather(1, torch.tensor(raw.completion_ids)[:, None])[:, 0]
                m = torch.tensor(raw.env_mask, dtype=torch.bool)
                worst = max(worst, float((got[m] - torch.tensor(raw.logprobs)[m]).abs().max()))
        return worst

    def _rollout(self, prompts, trainer=None):
        out = super()._rollout(prompts, trainer)
        self.seen.append([t.raw for t in self._trajs])
        self.max_lp_diff.append(self._worst(self.accelerator.unwrap_model(self.model), self._trajs))
        self.max_lp_diff_initial.append(self._worst(self.initial, self._trajs))
        return out


def test_server_mode_two_steps(tmp_path):
    mcfg = ModelConfig(name_or_path=AGENT)
    tok, policy = load_tokenizer(mcfg), load_model(mcfg)
    cfg = TrainingConfig.from_dict({
        "model": {"name_or_path": AGENT},
        "algorithm": {"hyperparameters": {"max_steps": 2, "per_device_train_batch_size": 32, "num_generations": 8,
                                          "learning_rate": 5e-4, "max_completion_length": 64, "save_strategy": "no"}},
        "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 32, "max_total_tokens": 64,
                        "sampling": {"temperature": TEMPERATURE}, "generation": {"backend": "vllm_server"}},
        "prompt_source": {"type": "file",
                          "path": str(Path(__file__).parents[1] / "configs/data/calculator_train.jsonl"), "limit": 32},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {}},
                         "step_reward_configs": {"tool_call_valid": {"weight": 0.2}}},
        "seed": 1, "num_threads": 1})
    from retrain.prompts import load_rows
    args = grpo_config(cfg, str(tmp_path / "ckpt"))
    assert args.use_vllm and args.vllm_mode == "server"
    env = SmolAgentEnv.from_config(cfg.environment, tok)
    torch.manual_seed(1)
    with StandInServer(load_model(mcfg), tok, name=AGENT) as server:
        client = HTTPWeightsClient(server.base_url)
        rewards = RewardCalculator.from_config(cfg.reward_setup)
        trainer = RecordingTrainer(policy, env, rewards, load_rows(cfg.prompt_source),
                                   args, processing_class=tok, vllm_client=client, initial=load_model(mcfg))
        assert isinstance(trainer.generator, VLLMServerGenerator)
        heldout_path = cfg.prompt_source.path.with_name("calculator_heldout.jsonl")
        held_out = load_rows(cfg.prompt_source.model_copy(update={"path": heldout_path, "limit": 8}))
        # at the last step, through the server
        trainer.add_callback(held := HeldOutEvaluation(trainer, held_out, 2, batch_size=8))
        trainer.train()
        counts, requests = dict(server.counts), list(server.requests)
    assert trainer.state.global_step == 2 and len(trainer.seen) == 2
    # weights synced before each step's rollouts (through TRL's VLLMGeneration.sync_weights), and for the held-out
    # evaluation at the end of step 2; prefix cache reset after each sync
    assert counts["/update_weights"] == 3 and counts["/reset_prefix_cache"] == 3, counts
    # the server evaluated the trained weights: the figures of evaluating them in process
    local = heldout_metrics(evaluate_policy(SmolAgentEnv.from_config(cfg.environment, tok), rewards, policy,
                                            held_out, batch_size=8)[0])
    assert held.last_step == 2 and heldout_metrics(held.last) == local, (held.last, local)
    # sampling log-probs are those of the policy being trained, also after the first update
    # float32 noise between a KV-cached decode and one full forward is ~1e-5 (seen: 4.9e-6 to 1.5e-5); an unsynced
    # server is off by > 1e-3
    assert max(trainer.max_lp_diff) < 5e-5, trainer.max_lp_diff
    assert trainer.max_lp_diff_initial[1] > 1e-3  # the first update moved them: a server left unsynced would be off
    rollouts = [r for step in trainer.seen for r in step]
    assert all(env.check(r).ok for r in rollouts)  # token-exact: sampled ids + observation tokens
    two_turn = [r for r in rollouts if len(r.turns) == 2 and r.turns[0].action == ActionKind.tool_call]
    assert two_turn, "no 2-turn tool episode was sampled"
    # a later turn continues from the episode's ids so far: prompt, the first reply and the observation tokens
    sent = {tuple(p) for body in requests for p in body["prompt"]}
    for r in two_turn:
        assert tuple(r.prompt_ids + r.completion_ids[:r.turns[1].completion_start]) in sent
        assert r.turns[1].token_ids == r.completion_ids[r.turns[1].completion_start:][:len(r.turns[1].token_ids)]
