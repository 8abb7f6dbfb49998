"""Teach LLM agents multi-turn, tool-using behaviour with reinforcement learning."""
__version__ = "0.1.0"

# The public names, imported on first use so that `import retrain` (and `retrain --version`) stays fast.
_LAZY = {
    "run": "retrain.runner",
    "evaluate": "retrain.evaluation",
    "TrainingConfig": "retrain.config_models",
    "SmolAgentEnv": "retrain.env",
    "RewardCalculator": "retrain.rewards",
    "GRPOTrainer": "retrain.trainer",
    "RawRolloutData": "retrain.types",
    "ProcessedTrajectory": "retrain.types",
    "TrainingDashboard": "retrain.widgets",
}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'retrain' has no attribute {name!r}")
