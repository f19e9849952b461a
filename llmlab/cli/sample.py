"""`llmlab sample`: generate text from a model folder, streamed to stdout as it is produced.

    llmlab sample --model runs/default/model --prompt "The river" --max_tokens 100
    llmlab sample --model runs/default/model --temperature 0          # greedy: the most likely token each step
    llmlab sample --model runs/default/model --num_samples 3 --seed 7  # three continuations of one prompt
    llmlab sample --model runs/default/model --prompt "The" --show_next 5 --max_tokens 10   # predict the next word

Every training document starts with BOS, so the prompt is encoded after BOS (an empty prompt is BOS alone), and a
base model ends a document by predicting the next one's BOS: generation stops there, at EOS, at max_tokens, or when
the model's context is full. A prompt too long for the context keeps its last tokens, leaving room for max_tokens
new ones (or half the context, whichever is less).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from llmlab.errors import LlmlabError

if TYPE_CHECKING:
    from llmlab.engine.generate import Step

log = logging.getLogger(__name__)


def sample(
    *,
    model: Path,
    prompt: str = "",
    max_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 50,
    top_p: float | None = None,
    seed: int = 0,
    num_samples: int = 1,
    show_next: int = 0,
    quantize: str | None = None,
) -> None:
    """Generate text from a trained model, streaming it to stdout token by token.

    Args:
        model: The model: a model folder as training saves it, a Hugging Face folder, a .gguf file, hf:org/name,
            or smollm2 (the packaged SmolLM2-135M-Instruct).
        prompt: Text to continue; empty starts a new document from BOS alone.
        max_tokens: Generate at most this many new tokens per sample (fewer if the context fills up).
        temperature: Divides the logits before sampling: below 1 sharper (safer), above 1 flatter (more varied); 0 is
            greedy decoding (always the most likely token).
        top_k: Sample only among the k most likely tokens (None: no limit).
        top_p: Nucleus sampling: only among the fewest most likely tokens whose probabilities add up to p, e.g. 0.9
            (None: no limit). Applied after top_k.
        seed: Random seed: the same seed, model and options give the same text.
        num_samples: Number of continuations of the prompt, generated together in one batch and printed one after
            the other when all are done.
        show_next: If K > 0, print at each step the K most likely next tokens with the model's own probabilities
            (before temperature, top_k and top_p), then the token chosen; one sample only.
        quantize: int8 for int8 weight-only matrices (llmlab.model.quantize); None: float32.
    """
    from llmlab.engine.generate import generate, generate_ids
    from llmlab.model.loading import load_model

    if show_next and num_samples != 1:
        raise LlmlabError("--show_next shows one sample's choices; use it with --num_samples 1")
    net, tokenizer, _ = load_model(model, quantize=quantize)
    # Imported models whose documents do not start with BOS (e.g. SmolLM2) get it only for an empty prompt.
    prompt_ids = [tokenizer.bos_id] * (tokenizer.add_bos or not prompt) + tokenizer.encode(prompt)
    # A prompt too long for the context loses its start, keeping room for max_tokens but at least half the context.
    seq_len = net.cfg.seq_len
    keep = seq_len - min(max(max_tokens - 1, 0), seq_len // 2)
    if len(prompt_ids) > keep:
        log.warning("the prompt has %d tokens but the model's context is %d: keeping its last %d tokens",
                    len(prompt_ids), seq_len, keep)
        prompt_ids = prompt_ids[-keep:]
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                   stop_ids={tokenizer.bos_id, tokenizer.eos_id}, num_samples=num_samples)
    if num_samples > 1:
        for i, ids in enumerate(generate_ids(net, prompt_ids, max_tokens, **options)):
            print(f"--- sample {i + 1} of {num_samples} ---\n{prompt}{tokenizer.decode(ids)}\n")
        return

    steps = generate(net, prompt_ids, max_tokens, return_top=show_next, **options)
    if show_next:
        print_choices(tokenizer, prompt, steps)
    else:
        stream_text(tokenizer, prompt, steps)


def stream_text(tokenizer, prompt: str, steps: Iterator[Step]) -> None:
    """Print the prompt, then each new token's text as soon as it completes a character."""
    from llmlab.engine.generate import TextStream

    stream = TextStream(tokenizer)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    for step in steps:
        if step.finish[0] == "stop":
            break
        sys.stdout.write(stream.push(step.tokens[0]))
        sys.stdout.flush()
    print(stream.flush())


def print_choices(tokenizer, prompt: str, steps: Iterator[Step]) -> None:
    """Print, per step, the candidates with their probabilities and the token chosen; then the whole text."""
    new_ids = []
    for step in steps:
        token = step.tokens[0]
        print(f"{step.index + 1:>4}  " + " | ".join(f"{token_label(tokenizer, i)} {p:.3f}" for i, p in step.top[0]))
        print(f"      -> {token_label(tokenizer, token)}", flush=True)
        if step.finish[0] == "stop":
            break
        new_ids.append(token)
    print(f"\n{prompt}{tokenizer.decode(new_ids)}")


def token_label(tokenizer, token_id: int) -> str:
    """A token as a quoted string, e.g. ' the'; its raw bytes (b'\\xe6') when it holds part of a character."""
    data = tokenizer.token_bytes(token_id)
    try:
        return repr(data.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(data)
