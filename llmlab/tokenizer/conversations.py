"""Load chat data from the JSONL files users already have, for SFT and preference tuning (DPO).

    records, summary = load_sft_file("chats.jsonl", tok, max_tokens=1024, on_too_long="skip")
    records[0]["ids"], records[0]["mask"]   # rendered with llmlab.tokenizer.chat; mask 1 where the loss applies
    pairs, summary = load_preference_file("prefs.jsonl", tok, max_tokens=1024)
    pairs[0]            # {"prompt_messages": [...], "chosen": "...", "rejected": "..."}

One JSON object per line, in TRL's row shapes (strings or lists of {"role", "content"} messages):

    SFT          {"messages": [...]}                      every assistant message is trained
                 {"conversations": [{"from", "value"}]}   ShareGPT (human/gpt/system/tool), mapped to messages
                 {"prompt": str, "completion": str}       a user/assistant pair; only the completion is trained
                 {"prompt": [...], "completion": [...]}   conversational; only the completion messages are trained
    preference   {"prompt", "chosen", "rejected"}         strings, or message lists (chosen/rejected: one assistant
                                                          message each), or a message-list prompt with string answers
                 {"chosen": [...], "rejected": [...]}     implicit prompt: the shared leading messages

An SFT record is {"messages", "loss_from"}: messages before index `loss_from` are prompt, never trained. With a
tokenizer it also holds "ids" and "mask" (`sft_example`). Roles and tool calls are those of the chat format
(`llmlab.tokenizer.special`). A bad line (malformed JSON, missing field, wrong type, unknown role, empty content,
wrong order, too long) is skipped and counted; the summary names the first few as "file:line: problem":

    {"file", "read", "kept", "truncated", "skipped": {reason: count}, "problems": ["chats.jsonl:7: ...", ...]}

A file with no usable record raises LlmlabError naming the file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from llmlab.errors import LlmlabError
from llmlab.tokenizer.chat import message_problem, render_conversation, render_prompt
from llmlab.tokenizer.special import MESSAGE_ROLES

if TYPE_CHECKING:
    from llmlab.tokenizer.bpe import Tokenizer

log = logging.getLogger(__name__)

MAX_PROBLEMS = 5  # file:line messages kept in a summary
TOO_LONG_POLICIES = ("skip", "truncate")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "tool": "tool"}


class _BadRecord(Exception):
    """A line to skip: `reason` is the summary's counter, the message says what is wrong."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def sft_example(tok: Tokenizer, record: dict) -> tuple[list[int], list[int]]:
    """Ids and loss mask of an SFT record: the rendered chat, with the mask cleared over its prompt messages."""
    ids, mask = render_conversation(tok, record["messages"])
    prompt_len = len(render_conversation(tok, record["messages"][:record["loss_from"]])[0])
    return ids, [0] * prompt_len + mask[prompt_len:]


def load_sft_file(
    path: Path, tok: Tokenizer | None = None, max_tokens: int | None = None, on_too_long: str = "skip"
) -> tuple[list[dict], dict]:
    """SFT records of a JSONL file and a summary of what was kept and skipped (see the module docstring).

    With `max_tokens` (which needs `tok`), a longer chat is skipped, or with on_too_long="truncate" its ids and mask
    are cut at `max_tokens` (skipped all the same if nothing trained is left)."""
    if on_too_long not in TOO_LONG_POLICIES:
        raise LlmlabError(f"on_too_long must be one of {', '.join(TOO_LONG_POLICIES)}, not {on_too_long!r}")
    _check_limit(tok, max_tokens)
    truncated = 0

    def parse(row: dict) -> dict:
        nonlocal truncated
        record = _sft_record(row)
        if tok is None:
            return record
        ids, mask = sft_example(tok, record)
        if max_tokens is not None and len(ids) > max_tokens:
            if on_too_long == "skip" or not any(mask[:max_tokens]):
                raise _BadRecord("too_long", f"{len(ids)} tokens, more than max_tokens {max_tokens}")
            ids, mask = ids[:max_tokens], mask[:max_tokens]
            truncated += 1
        return {**record, "ids": ids, "mask": mask}

    records, summary = _load(Path(path), parse, "SFT")
    return records, {**summary, "truncated": truncated}


def load_preference_file(
    path: Path, tok: Tokenizer | None = None, max_tokens: int | None = None
) -> tuple[list[dict], dict]:
    """Preference pairs {"prompt_messages", "chosen", "rejected"} of a JSONL file, and a summary.

    With `max_tokens` (which needs `tok`), a pair whose prompt plus longer answer (and its end of turn) is longer
    is skipped."""
    _check_limit(tok, max_tokens)

    def parse(row: dict) -> dict:
        record = _preference_record(row)
        if max_tokens is not None:
            answer = max(len(tok.encode(record["chosen"])), len(tok.encode(record["rejected"])))
            length = len(render_prompt(tok, record["prompt_messages"])) + answer + 1
            if length > max_tokens:
                raise _BadRecord("too_long", f"{length} tokens, more than max_tokens {max_tokens}")
        return record

    records, summary = _load(Path(path), parse, "preference")
    return records, {**summary, "truncated": 0}


def _check_limit(tok: Tokenizer | None, max_tokens: int | None) -> None:
    if max_tokens is not None and (tok is None or max_tokens < 1):
        raise LlmlabError(f"max_tokens={max_tokens} needs a tokenizer and a positive limit")


def _load(path: Path, parse: Callable[[dict], dict], kind: str) -> tuple[list[dict], dict]:
    """Parse each non-blank line of `path`; skip and count the bad ones."""
    records: list[dict] = []
    summary: dict = {"file": str(path), "read": 0, "kept": 0, "skipped": {}, "problems": []}
    try:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                summary["read"] += 1
                try:
                    records.append(parse(_json_object(line.strip())))
                except _BadRecord as bad:
                    summary["skipped"][bad.reason] = summary["skipped"].get(bad.reason, 0) + 1
                    if len(summary["problems"]) < MAX_PROBLEMS:
                        summary["problems"].append(f"{path}:{line_no}: {bad}")
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read the {kind} data ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise LlmlabError(f"{path}: not UTF-8 text ({e.reason} at line {summary['read'] + 1})") from e
    summary["kept"] = len(records)
    if not records:
        shown = "; ".join(summary["problems"]) or "the file is empty"
        raise LlmlabError(f"{path}: no usable {kind} records in {summary['read']} lines ({shown})")
    if summary["skipped"]:
        log.warning("%s: skipped %d of %d %s records %s; first: %s", path, summary["read"] - len(records),
                    summary["read"], kind, summary["skipped"], summary["problems"][0])
    return records, summary


def _json_object(line: str) -> dict:
    try:
        row = json.loads(line)
    except ValueError as e:
        raise _BadRecord("malformed_json", f"not valid JSON ({e})") from None
    if not isinstance(row, dict):
        raise _BadRecord("malformed_json", f"expected a JSON object, got {type(row).__name__}")
    return row


def _sft_record(row: dict) -> dict:
    if "messages" in row:
        prompt, completion = [], _messages(row["messages"], "messages")
    elif "conversations" in row:
        prompt, completion = [], _messages(_from_sharegpt(row["conversations"]), "conversations")
    elif "prompt" in row or "completion" in row:
        _require(row, ("prompt", "completion"))
        prompt, completion = _prompt_completion(row["prompt"], row["completion"], "completion")
    else:
        raise _BadRecord("missing_field", "expected a 'messages', 'conversations' or 'prompt'/'completion' field")
    messages = prompt + completion
    _check_order(messages)
    if messages[-1]["role"] != "assistant":
        raise _BadRecord("bad_order", f"an SFT conversation must end with an assistant message, "
                                      f"not {messages[-1]['role']!r}")
    return {"messages": messages, "loss_from": len(prompt)}


def _preference_record(row: dict) -> dict:
    _require(row, ("chosen", "rejected"))
    if "prompt" in row:
        prompt, chosen = _prompt_completion(row["prompt"], row["chosen"], "chosen")
        rejected = _prompt_completion(row["prompt"], row["rejected"], "rejected")[1]
    elif isinstance(row["chosen"], list) and isinstance(row["rejected"], list):
        whole_chosen, whole_rejected = _messages(row["chosen"], "chosen"), _messages(row["rejected"], "rejected")
        shared = 0
        while shared < min(len(whole_chosen), len(whole_rejected)) - 1 and \
                whole_chosen[shared] == whole_rejected[shared]:
            shared += 1
        if shared == 0:
            raise _BadRecord("bad_order", "'chosen' and 'rejected' share no leading prompt messages")
        prompt, chosen, rejected = whole_chosen[:shared], whole_chosen[shared:], whole_rejected[shared:]
    else:
        raise _BadRecord("missing_field", "'prompt' is missing (an implicit prompt needs message lists)")
    _check_order(prompt)
    if prompt[-1]["role"] not in ("user", "document"):
        raise _BadRecord("bad_order", f"the prompt must end with a user or document message, "
                                      f"not {prompt[-1]['role']!r}")
    pair = {"prompt_messages": prompt, "chosen": _answer(chosen, "chosen"), "rejected": _answer(rejected, "rejected")}
    if pair["chosen"] == pair["rejected"]:
        raise _BadRecord("same_answers", "chosen and rejected are the same")
    return pair


def _require(row: dict, fields: Sequence[str]) -> None:
    missing = [name for name in fields if name not in row]
    if missing:
        raise _BadRecord("missing_field", f"missing field {', '.join(map(repr, missing))}")


def _prompt_completion(prompt, completion, name: str) -> tuple[list[dict], list[dict]]:
    """A prompt and its completion (or chosen/rejected answer) as message lists: strings become user/assistant."""
    if isinstance(prompt, str) and isinstance(completion, str):
        return (_messages([{"role": "user", "content": prompt}], "prompt"),
                _messages([{"role": "assistant", "content": completion}], name))
    if isinstance(prompt, list) and isinstance(completion, list):
        return _messages(prompt, "prompt"), _messages(completion, name)
    if isinstance(prompt, list) and isinstance(completion, str):  # a conversation and a plain-text reply to it
        return _messages(prompt, "prompt"), _messages([{"role": "assistant", "content": completion}], name)
    raise _BadRecord("bad_type", f"{name!r} must be a string or a message list, and 'prompt' too (a string prompt "
                                 f"needs a string {name!r})")


def _answer(messages: list[dict], name: str) -> str:
    if len(messages) != 1 or messages[0]["role"] != "assistant" or "tool_call" in messages[0]:
        raise _BadRecord("bad_order", f"{name!r} must be one assistant message without a tool_call")
    return messages[0]["content"]


def _from_sharegpt(turns) -> list:
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise _BadRecord("bad_type", "'conversations' must be a list of {\"from\", \"value\"} objects")
    return [{"role": SHAREGPT_ROLES.get(t.get("from"), t.get("from")), "content": t.get("value")} for t in turns]


def _messages(value, field: str) -> list[dict]:
    """Checked copies of the messages in `field`: {"role", "content"} plus an assistant's "tool_call"."""
    if not isinstance(value, list) or not value:
        raise _BadRecord("bad_type", f"{field!r} must be a non-empty list of messages")
    messages = []
    for i, message in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise _BadRecord("bad_type", f"{where} must be an object with 'role' and 'content'")
        _require(message, ("role",))
        role, content, call = message["role"], message.get("content"), message.get("tool_call")
        if role not in MESSAGE_ROLES:
            raise _BadRecord("unknown_role", f"{where}: unknown role {role!r} (expected one of "
                                             f"{', '.join(MESSAGE_ROLES)})")
        if content is None and call is not None:
            content = ""  # an assistant message that only calls a tool
        if not isinstance(content, str) or (call is not None and not isinstance(call, str)):
            raise _BadRecord("bad_type", f"{where}: content and tool_call must be strings")
        if not content.strip() and not (call and call.strip()):
            raise _BadRecord("empty_content", f"{where}: empty {role} message")
        messages.append({"role": role, "content": content, **({"tool_call": call} if call is not None else {})})
    return messages


def _check_order(messages: list[dict]) -> None:
    """The order rules of the chat format, plus: a system message only first, then a user or document message,
    and never two assistant messages without a user, document or tool message between them."""
    open_call = after_tool = False
    for i, message in enumerate(messages):
        role = message["role"]
        problem = message_problem(role, message["content"], message.get("tool_call"), open_call, after_tool)
        if role == "system" and i > 0:
            problem = f"message {i}: a system message may only come first"
        elif i == (messages[0]["role"] == "system") and role not in ("user", "document"):
            problem = f"message {i}: the first message after the system prompt must be user or document, not {role!r}"
        elif role == "assistant" and i > 0 and messages[i - 1]["role"] == "assistant":
            problem = f"message {i}: two assistant messages in a row"
        elif problem:
            problem = f"message {i}: {problem}"
        if problem:
            raise _BadRecord("bad_order", problem)
        open_call = role == "assistant" and "tool_call" in message
        after_tool = role == "tool"
