"""Teach LLM agents multi-turn, tool-using behaviour with reinforcement learning."""
__version__ = "0.1.0"

# The public names a script or a notebook imports from `retrain` (each module's own public names are its
# `__all__`). Imported on first use, so that `import retrain` (and `retrain --version`) stays fast.
# This file is kept by hand: nbdev does not generate it.
_LAZY = {
    "run": "retrain.runner",
    "evaluate": "retrain.evaluation",
    "TrainingConfig": "retrain.config_models",
    "ConfigError": "retrain.config_models",
    "SmolAgentEnv": "retrain.agents",  # the class of retrain.env, with `from_agent` (defined in retrain.agents)
    "AgentEnv": "retrain.agents",
    "RewardCalculator": "retrain.calculator",
    "reward": "retrain.rewards",
    "verifier": "retrain.rewards",
    "register_reward": "retrain.rewards",
    "register_verifier": "retrain.rewards",
    "register_tool": "retrain.tools",
    "GRPOTrainer": "retrain.trainer",
    "HeldOutEvaluation": "retrain.evaluation",
    "RawRolloutData": "retrain.types",
    "ProcessedTrajectory": "retrain.types",
    "Turn": "retrain.types",
    "TrainingDashboard": "retrain.widgets",
    "step_signals": "retrain.signals",
    "hacking_flags": "retrain.signals",
}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'retrain' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
