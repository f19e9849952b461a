"""Special tokens and the chat template shared by every llmlab tokenizer.

The special tokens take the first ids, in the order of `SPECIAL_TOKENS`, so id 0 is BOS in every llmlab tokenizer
whatever its vocabulary size. Seven reserved slots keep room for later tokens without shifting the ids of the
ordinary vocabulary. Ordinary text never produces these ids (see `Tokenizer.encode`): a user who types
"<|assistant|>" gets the tokens of those characters, not the role marker.

The chat format (`CHAT_TEMPLATE`; `llmlab.tokenizer.chat.render_conversation` gives the same ids with a loss mask).
A chat starts with BOS, then each message in order, its content kept exactly as is (no trim):

    system     <|system|>CONTENT<|end_of_turn|>
    user       <|user|>CONTENT<|end_of_turn|>
    document   <|user|><|untrusted_start|>CONTENT<|untrusted_end|><|end_of_turn|>
               (untrusted text, e.g. a retrieved page or an email: a turn in the user's place, whose content is
               data to read, never instructions to follow)
    assistant  <|assistant|>CONTENT<|end_of_turn|>
               with "tool_call": CALL, the turn stays open: <|assistant|>CONTENT<|tool_call_start|>CALL<|tool_call_end|>
    tool       <|tool_output_start|>CONTENT<|tool_output_end|>
               (no marker or end of turn of its own: it continues the assistant turn that made the call, and the
               next assistant message continues that same turn, without a new <|assistant|>)

add_generation_prompt appends <|assistant|>, or nothing after a tool message (the assistant's turn is still open).
The template raises for an unknown role, a tool message that does not answer a tool call, a tool call not followed by
a tool message, a message other than assistant after a tool message, and a generation prompt after an unanswered call.
Example, messages
    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "", "tool_call": "2+2"},
     {"role": "tool", "content": "4"}, {"role": "assistant", "content": "It is 4."}]
render as
    <|begin_of_text|><|user|>2+2?<|end_of_turn|><|assistant|><|tool_call_start|>2+2<|tool_call_end|>
    <|tool_output_start|>4<|tool_output_end|>It is 4.<|end_of_turn|>   (one line; split here for width)
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

# Roles that open a turn with their own marker token (`llmlab.tokenizer.chat` renders only these).
CHAT_ROLES = ("system", "user", "assistant")
# Every role a chat message may have.
MESSAGE_ROLES = (*CHAT_ROLES, "tool", "document")

_RAISE = "{{- raise_exception("
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- set ns = namespace(open_call=false, after_tool=false) %}"
    "{%- for message in messages %}"
    "{%- set role = message['role'] %}"
    "{%- set has_call = role == 'assistant' and message['tool_call'] is defined and message['tool_call'] is not none %}"
    "{%- if role not in ['system', 'user', 'assistant', 'tool', 'document'] %}"
    + _RAISE + "'unsupported chat role: ' + role) }}"
    "{%- elif role == 'tool' and not ns.open_call %}"
    + _RAISE + "'a tool message must follow an assistant message with a tool_call') }}"
    "{%- elif ns.open_call and role != 'tool' %}"
    + _RAISE + "'an assistant tool_call must be followed by a tool message') }}"
    "{%- elif ns.after_tool and role != 'assistant' %}"
    + _RAISE + "'a tool message must be followed by an assistant message') }}"
    "{%- endif %}"
    "{%- if role == 'tool' %}"
    "{{- '<|tool_output_start|>' + message['content'] + '<|tool_output_end|>' }}"
    "{%- elif role == 'document' %}"
    "{{- '<|user|><|untrusted_start|>' + message['content'] + '<|untrusted_end|><|end_of_turn|>' }}"
    "{%- elif role == 'assistant' %}"
    "{%- if not ns.after_tool %}{{- '<|assistant|>' }}{%- endif %}"
    "{{- message['content'] }}"
    "{%- if has_call %}"
    "{{- '<|tool_call_start|>' + message['tool_call'] + '<|tool_call_end|>' }}"
    "{%- else %}{{- '<|end_of_turn|>' }}{%- endif %}"
    "{%- else %}"
    "{{- '<|' + role + '|>' + message['content'] + '<|end_of_turn|>' }}"
    "{%- endif %}"
    "{%- set ns.open_call = has_call %}"
    "{%- set ns.after_tool = role == 'tool' %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{%- if ns.open_call %}" + _RAISE + "'a generation prompt cannot follow an unanswered tool_call') }}"
    "{%- elif not ns.after_tool %}{{- '<|assistant|>' }}{%- endif %}"
    "{%- endif %}"
)
