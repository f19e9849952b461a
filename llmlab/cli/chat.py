"""`llmlab chat`: talk to a chat model in the terminal, with streamed answers.

    llmlab chat --model runs/x/chat_sft
    llmlab chat --model runs/x/chat_sft --system "Answer in one sentence."
    llmlab chat --model smollm2                      # the packaged SmolLM2-135M-Instruct

Commands at the prompt: /reset forgets the conversation, /exit (or Ctrl-D) quits. The history is kept within the
model's context window: when it no longer fits, the oldest exchanges are dropped, with a notice.
"""

from __future__ import annotations

from pathlib import Path

from llmlab.engine.conversation import CHAT_TEMPERATURE, CHAT_TOP_K


def chat(
    *,
    model: Path,
    system: str = "",
    max_tokens: int = 128,
    temperature: float = CHAT_TEMPERATURE,
    top_k: int | None = CHAT_TOP_K,
    top_p: float | None = None,
    seed: int = 0,
    quantize: str | None = None,
) -> None:
    """Chat with a model folder in the terminal, answers streamed token by token.

    Args:
        model: the chat model: a model folder as training saves it (e.g. <run_dir>/chat_sft), a Hugging Face
            folder, a .gguf file, hf:org/name, or smollm2 (the packaged SmolLM2-135M-Instruct, ChatML format).
        system: a system prompt placed before the conversation.
        max_tokens: the longest answer, in tokens.
        temperature: sampling temperature (0: greedy).
        top_k: sample only among the k most likely tokens (None: no limit).
        top_p: nucleus sampling threshold (None: off).
        seed: random seed of the first answer; each later answer uses the next seed.
        quantize: int8 for int8 weight-only matrices (llmlab.model.quantize: ~4x fewer weight bytes per token);
            None: float32.
    """
    from llmlab.engine.conversation import fit_history
    from llmlab.engine.generate import TextStream, check_sampling, generate
    from llmlab.model.loading import load_model
    from llmlab.tokenizer.chat import render_prompt

    check_sampling(temperature, top_k, top_p)
    net, tok, _ = load_model(model, quantize=quantize)
    stops = {tok.special_ids["end_of_turn"], tok.eos_id}
    budget = max(1, net.cfg.seq_len - max_tokens)
    start = [{"role": "system", "content": system}] if system else []
    messages = list(start)
    print(f"llmlab chat with {model} ({net.cfg.seq_len}-token context). /reset to start over, /exit to quit.")
    for turn in range(10**9):
        try:
            text = input("\nyou> ").strip()
        except EOFError:
            break
        if text == "/exit":
            break
        if text == "/reset":
            messages = list(start)
            print("(conversation reset)")
            continue
        if not text:
            continue
        messages, dropped = fit_history(tok, messages + [{"role": "user", "content": text}], budget)
        if dropped:
            print(f"(dropped the {dropped} oldest messages to fit the context window)")
        stream, answer = TextStream(tok), []
        print("assistant> ", end="", flush=True)
        for step in generate(net, render_prompt(tok, messages), max_tokens, temperature=temperature, top_k=top_k,
                             top_p=top_p, seed=seed + turn, stop_ids=stops):
            token = step.tokens[0]
            if token is None or token in stops:
                break
            answer.append(token)
            print(stream.push(token), end="", flush=True)
        print(stream.flush())
        messages.append({"role": "assistant", "content": tok.decode(answer)})
