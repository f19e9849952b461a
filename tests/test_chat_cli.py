"""`llmlab chat` in a scripted terminal session, and keeping the history within the context window."""

from __future__ import annotations

from llmlab.cli.chat import chat
from llmlab.engine.conversation import fit_history
from llmlab.model.config import ModelConfig
from llmlab.model.folder import save_model_folder
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.tokenizer.chat import render_prompt


def test_fit_history_drops_oldest_exchanges_and_keeps_system(tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(6):
        messages += [{"role": "user", "content": f"question number {i} about the river"},
                     {"role": "assistant", "content": f"answer number {i} about the sea"}]
    messages.append({"role": "user", "content": "last question"})
    budget = len(render_prompt(tok, [messages[0], *messages[-3:]]))
    kept, dropped = fit_history(tok, messages, budget)
    assert kept[0] == messages[0] and kept[-1] == messages[-1] and kept[1]["role"] == "user"
    assert dropped == len(messages) - len(kept) == 10 and len(render_prompt(tok, kept)) <= budget
    assert fit_history(tok, messages, 10_000) == (messages, 0)


def test_chat_session_streams_resets_and_exits(tmp_path, tiny_tokenizer, monkeypatch, capsys):
    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=48, d_model=32, n_heads=2)
    save_model_folder(tmp_path / "m", Transformer(cfg), tiny_tokenizer)
    lines = iter(["hello there", "tell me more about the great river", "and the mountain?", "/reset", "hi", "/exit",
                  "never read"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    chat(model=tmp_path / "m", system="Be brief.", max_tokens=12, temperature=0)
    out = capsys.readouterr().out
    assert out.count("assistant> ") == 4
    assert "(conversation reset)" in out and "oldest messages to fit the context window" in out
    assert next(lines) == "never read"  # /exit stopped the loop
