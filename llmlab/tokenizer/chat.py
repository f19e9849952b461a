"""The chat renderer: messages -> token ids and a loss mask, exactly as `CHAT_TEMPLATE` renders them.

    ids, mask = render_conversation(tok, messages)   # training: mask[i] == 1 where the assistant must learn ids[i]
    prompt = render_prompt(tok, messages)             # inference: ends with <|assistant|> (or after a tool output)

The format is documented in `llmlab.tokenizer.special`. Content is encoded with `tok.encode`, so special-token strings
typed in a message stay ordinary text: only this renderer puts special ids in a chat. The mask is 1 on what the
assistant produces: its content, its tool call (<|tool_call_start|>CALL<|tool_call_end|>) and the <|end_of_turn|>
that closes its turn; 0 on BOS, role markers, system/user/document text and tool outputs (the tool writes those at
inference). Messages are dicts {"role", "content"}, plus an optional "tool_call" (a string) on assistant messages.

Imported models bring their own format (`tok.chat_format`). "chatml" (SmolLM2, Qwen) renders each message as
<|im_start|>ROLE\nCONTENT<|im_end|>\n, with the tokenizer's default system message first when the chat has none (as
SmolLM2's template does), and masks in the assistant's content and its <|im_end|>. Only system, user and assistant
messages without tool calls exist in that format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from llmlab.errors import LlmlabError
from llmlab.tokenizer.special import MESSAGE_ROLES

CHATML_ROLES = ("system", "user", "assistant")

if TYPE_CHECKING:
    from llmlab.tokenizer.bpe import Tokenizer


def render_conversation(
    tok: Tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False
) -> tuple[list[int], list[int]]:
    """Ids of the chat and, per id, 1 if the assistant must learn to produce it else 0.

    LlmlabError (naming the message index) for what the template rejects: an unknown role, non-string content, a
    tool message that answers no tool call, a tool call left unanswered before another message, a message other
    than assistant after a tool output, a generation prompt after an unanswered tool call.
    """
    if tok.chat_format == "chatml":
        return _render_chatml(tok, messages, add_generation_prompt)
    if tok.chat_format != "llmlab":
        raise LlmlabError(f"tokenizer {tok.folder} has no chat template llmlab can render (llmlab's own or ChatML)")
    special = tok.special_ids
    ids, mask = [tok.bos_id], [0]

    def add(tokens: list[int], trained: bool) -> None:
        ids.extend(tokens)
        mask.extend([int(trained)] * len(tokens))

    open_call = after_tool = False
    for i, message in enumerate(messages):
        role, content, call = message.get("role"), message.get("content"), message.get("tool_call")
        problem = message_problem(role, content, call, open_call, after_tool)
        if problem:
            raise LlmlabError(f"message {i}: {problem}")
        text = tok.encode(content)
        if role == "tool":
            add([special["tool_output_start"], *text, special["tool_output_end"]], False)
        elif role == "document":
            add([special["user"], special["untrusted_start"], *text, special["untrusted_end"],
                 special["end_of_turn"]], False)
        elif role == "assistant":
            if not after_tool:
                add([special["assistant"]], False)
            add(text, True)
            if call is None:
                add([special["end_of_turn"]], True)
            else:
                add([special["tool_call_start"], *tok.encode(call), special["tool_call_end"]], True)
        else:
            add([special[role], *text, special["end_of_turn"]], False)
        open_call = role == "assistant" and call is not None
        after_tool = role == "tool"
    if add_generation_prompt:
        if open_call:
            raise LlmlabError("a generation prompt cannot follow an unanswered tool_call")
        if not after_tool:
            add([special["assistant"]], False)
    return ids, mask


def _render_chatml(tok: Tokenizer, messages: Sequence[dict], add_generation_prompt: bool
                   ) -> tuple[list[int], list[int]]:
    start, end = tok.special_ids["im_start"], tok.special_ids["end_of_turn"]
    newline = tok.encode("\n")
    if messages and messages[0].get("role") != "system" and tok.default_system is not None:
        messages = [{"role": "system", "content": tok.default_system}, *messages]
    ids: list[int] = []
    mask: list[int] = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in CHATML_ROLES or message.get("tool_call") is not None:
            raise LlmlabError(f"message {i}: the model's ChatML format has roles {', '.join(CHATML_ROLES)} "
                              f"and no tool calls; got role {role!r}")
        if not isinstance(content, str):
            raise LlmlabError(f"message {i}: {role} content must be a string, not {type(content).__name__}")
        header = [start, *tok.encode(role + "\n")]
        # The content is encoded on its own (the template's text would join "\n" and leading spaces of content
        # into one piece only for content that starts with whitespace), so the mask boundary is exact.
        body = [*tok.encode(content), end]
        trained = int(role == "assistant")
        ids += header + body + newline
        mask += [0] * len(header) + [trained] * len(body) + [0] * len(newline)
    if add_generation_prompt:
        header = [start, *tok.encode("assistant\n")]
        ids += header
        mask += [0] * len(header)
    return ids, mask


def render_prompt(tok: Tokenizer, messages: Sequence[dict]) -> list[int]:
    """Ids to generate the assistant's next reply from (what the engine and the server feed the model)."""
    return render_conversation(tok, messages, add_generation_prompt=True)[0]


def message_problem(role, content, call, open_call: bool, after_tool: bool) -> str | None:
    """What is wrong with a message in its place, as the template checks it; None if it may be rendered.

    `open_call`: the previous message is an assistant message with a tool_call; `after_tool`: it is a tool message.
    """
    if role not in MESSAGE_ROLES:
        return f"unsupported chat role {role!r} (expected one of {', '.join(MESSAGE_ROLES)})"
    if not isinstance(content, str):
        return f"{role} content must be a string, not {type(content).__name__}"
    if call is not None and (role != "assistant" or not isinstance(call, str)):
        return "tool_call must be a string on an assistant message"
    if role == "tool" and not open_call:
        return "a tool message (role 'tool') must follow an assistant message with a tool_call"
    if open_call and role != "tool":
        return f"an assistant tool_call must be followed by a tool message, not role {role!r}"
    if after_tool and role != "assistant":
        return f"a tool message must be followed by an assistant message, not role {role!r}"
    return None
