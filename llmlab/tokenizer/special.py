"""Special tokens and the chat template shared by every llmlab tokenizer.

The special tokens take the first ids, in the order of `SPECIAL_TOKENS`, so id 0 is BOS in every llmlab tokenizer
whatever its vocabulary size. Seven reserved slots keep room for later tokens without shifting the ids of the
ordinary vocabulary. Ordinary text never produces these ids (see `Tokenizer.encode`): a user who types
"<|assistant|>" gets the tokens of those characters, not the role marker.
"""

from __future__ import annotations

# name -> token text, in id order.
SPECIAL_TOKENS: dict[str, str] = {
    "bos": "<|begin_of_text|>",
    "eos": "<|end_of_text|>",
    "pad": "<|pad|>",
    "system": "<|system|>",
    "user": "<|user|>",
    "assistant": "<|assistant|>",
    "end_of_turn": "<|end_of_turn|>",
    "tool_call_start": "<|tool_call_start|>",
    "tool_call_end": "<|tool_call_end|>",
    "tool_output_start": "<|tool_output_start|>",
    "tool_output_end": "<|tool_output_end|>",
    "untrusted_start": "<|untrusted_start|>",
    "untrusted_end": "<|untrusted_end|>",
    **{f"reserved_{i}": f"<|reserved_{i}|>" for i in range(7)},
}

CHAT_ROLES = ("system", "user", "assistant")

# Rendered: <|begin_of_text|><|user|>Hi<|end_of_turn|><|assistant|>Hello<|end_of_turn|>, and a trailing
# <|assistant|> with add_generation_prompt. Content is kept as is (no trim) so it matches `Tokenizer.encode_chat`.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{- raise_exception('unsupported chat role: ' + message['role']) }}"
    "{%- endif %}"
    "{{- '<|' + message['role'] + '|>' + message['content'] + '<|end_of_turn|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>' }}{%- endif %}"
)
