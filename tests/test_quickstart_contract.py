"""The embedded calculator agent is warm-started on exactly the tokens the environment produces."""

from retrain.env import SmolAgentEnv
from retrain.examples.calculator import calculator_messages, calculator_rows, calculator_tokenizer, render_calculator

def test_env_prompt_and_observation_match_the_warm_start():
    tok = calculator_tokenizer(0, n_texts=50)
    env = SmolAgentEnv(tok, ["calculator"])
    row = calculator_rows(1, "heldout")[0]
    msgs = calculator_messages(row)
    want = tok(render_calculator(tok, msgs[:1], add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert env.renderer.prompt_ids(msgs[:1]) == want
    full = tok(render_calculator(tok, msgs), add_special_tokens=False)["input_ids"]
    assert full[:len(want)] == want  # the demonstration extends the environment's prompt
