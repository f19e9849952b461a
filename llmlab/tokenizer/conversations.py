"""Load chat data in the formats users already have, for SFT and preference tuning (DPO).

    records, summary = load_sft_file("alpaca_data.json", tok, max_tokens=1024, on_too_long="skip")
    records[0]["ids"], records[0]["mask"]   # rendered with llmlab.tokenizer.chat; mask 1 where the loss applies
    pairs, summary = load_preference_file("hh.jsonl", tok, max_tokens=1024)
    pairs[0]            # {"prompt_messages": [...], "chosen": "...", "rejected": "..."}

The records come from JSONL, a JSON array, Parquet, a folder saved by `datasets` or hf:NAME[@SPLIT]
(llmlab.data.records detects which); each record is one of these shapes, detected per record (strings or lists of
{"role", "content"} messages):

    SFT          {"messages": [...]}                      OpenAI / TRL: every assistant message is trained
                 {"conversations": [{"from", "value"}]}   ShareGPT (human/gpt/system/tool), mapped to messages
                 {"prompt": str, "completion": str}       a user/assistant pair; only the completion is trained
                 {"prompt": [...], "completion": [...]}   conversational; only the completion messages are trained
                 {"instruction", "input", "output"}       Alpaca: instruction + (a blank line + input, when not
                                                          empty) is the user's message, output the answer
                 a "system" field beside any of them      the system message, first (unless the chat has one)
    preference   {"prompt", "chosen", "rejected"}         strings, or message lists (chosen/rejected: one assistant
                                                          message each), or a message-list prompt with string answers
                 {"chosen": [...], "rejected": [...]}     implicit prompt: the shared leading messages (with a string
                                                          "prompt" beside them too: UltraFeedback-binarized)
                 {"chosen": str, "rejected": str}         Anthropic HH transcripts ("\\n\\nHuman: ...\\n\\nAssistant:
                                                          ..."): the shared turns are the prompt, the last answers differ

An SFT record is {"messages", "loss_from"}: messages before index `loss_from` are prompt, never trained. With a
tokenizer it also holds "ids" and "mask" (`sft_example`). Roles and tool calls are those of the chat format
(`llmlab.tokenizer.special`). A bad line (malformed JSON, missing field, wrong type, unknown role, empty content,
wrong order, too long) is skipped and counted; the summary names the first few as "file:line: problem":

    {"file", "format", "shapes": {shape: count}, "read", "kept", "truncated", "skipped": {reason: count},
     "problems": ["chats.jsonl:7: ...", ...]}

A file with no usable record raises LlmlabError naming the file.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from llmlab.data.records import open_records
from llmlab.errors import LlmlabError
from llmlab.tokenizer.chat import message_problem, render_conversation, render_prompt
from llmlab.tokenizer.special import MESSAGE_ROLES

if TYPE_CHECKING:
    from llmlab.tokenizer.bpe import Tokenizer

log = logging.getLogger(__name__)

MAX_PROBLEMS = 5  # file:line messages kept in a summary
TOO_LONG_POLICIES = ("skip", "truncate")
HH_HUMAN = "Human:"
HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant): ?")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}
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
    path: Path, tok: Tokenizer | None = None, max_tokens: int | None = None, on_too_long: str = "skip",
    max_problems: int = MAX_PROBLEMS,
) -> tuple[list[dict], dict]:
    """SFT records of a JSONL file and a summary of what was kept and skipped (see the module docstring).

    With `max_tokens` (which needs `tok`), a longer chat is skipped, or with on_too_long="truncate" its ids and mask
    are cut at `max_tokens` (skipped all the same if nothing trained is left)."""
    if on_too_long not in TOO_LONG_POLICIES:
        raise LlmlabError(f"on_too_long must be one of {', '.join(TOO_LONG_POLICIES)}, not {on_too_long!r}")
    _check_limit(tok, max_tokens)
    truncated = 0

    def parse(row: dict) -> tuple[dict, str]:
        nonlocal truncated
        record, shape = _sft_record(row)
        if tok is None:
            return record, shape
        ids, mask = sft_example(tok, record)
        if max_tokens is not None and len(ids) > max_tokens:
            if on_too_long == "skip" or not any(mask[:max_tokens]):
                raise _BadRecord("too_long", f"{len(ids)} tokens, more than max_tokens {max_tokens}")
            ids, mask = ids[:max_tokens], mask[:max_tokens]
            truncated += 1
        return {**record, "ids": ids, "mask": mask}, shape

    records, summary = _load(Path(path), parse, "SFT", max_problems)
    return records, {**summary, "truncated": truncated}


def load_preference_file(
    path: Path, tok: Tokenizer | None = None, max_tokens: int | None = None, max_problems: int = MAX_PROBLEMS,
) -> tuple[list[dict], dict]:
    """Preference pairs {"prompt_messages", "chosen", "rejected"} of a JSONL file, and a summary.

    With `max_tokens` (which needs `tok`), a pair whose prompt plus longer answer (and its end of turn) is longer
    is skipped."""
    _check_limit(tok, max_tokens)

    def parse(row: dict) -> tuple[dict, str]:
        record, shape = _preference_record(row)
        if max_tokens is not None:
            length = pair_length(tok, record)
            if length > max_tokens:
                raise _BadRecord("too_long", f"{length} tokens, more than max_tokens {max_tokens}")
        return record, shape

    records, summary = _load(Path(path), parse, "preference", max_problems)
    return records, {**summary, "truncated": 0}


def pair_length(tok: Tokenizer, pair: dict) -> int:
    """Tokens of a preference pair's prompt and its longer answer, with the answer's end of turn."""
    answer = max(len(tok.encode(pair["chosen"])), len(tok.encode(pair["rejected"])))
    return len(render_prompt(tok, pair["prompt_messages"])) + answer + 1


def data_kind(path: Path) -> str:
    """"preference" when the file's first record has chosen/rejected answers, else "SFT"."""
    for _, row, _ in open_records(path).rows:
        if row is not None:
            return "preference" if "chosen" in row and "rejected" in row else "SFT"
    return "SFT"


def check_file(path: Path, tok: Tokenizer, context: int, max_problems: int = 20) -> dict:
    """What training would make of a file, without training: the loader's summary (format, shapes, kept and
    skipped with file:line reasons) and its token lengths against a model context of `context` tokens: a chat
    longer than context + 1 tokens (inputs and targets are the ids shifted by one) is cut by SFT (or skipped with
    --sft.on_too_long skip) and skipped by DPO."""
    kind = data_kind(path)
    if kind == "SFT":
        records, summary = load_sft_file(path, tok, max_problems=max_problems)
        lengths = sorted(len(r["ids"]) for r in records)
    else:
        records, summary = load_preference_file(path, tok, max_problems=max_problems)
        lengths = sorted(pair_length(tok, r) for r in records)
    n = len(lengths)
    summary["kind"] = kind
    summary["tokens"] = {"min": lengths[0], "median": lengths[n // 2], "p95": lengths[min(n - 1, int(0.95 * n))],
                         "max": lengths[-1], "total": sum(lengths), "context": context,
                         "over_context": sum(length > context + 1 for length in lengths)}
    return summary


def _check_limit(tok: Tokenizer | None, max_tokens: int | None) -> None:
    if max_tokens is not None and (tok is None or max_tokens < 1):
        raise LlmlabError(f"max_tokens={max_tokens} needs a tokenizer and a positive limit")


def _load(path: Path, parse: Callable[[dict], tuple[dict, str]], kind: str,
          max_problems: int = MAX_PROBLEMS) -> tuple[list[dict], dict]:
    """Parse each record of `path` (any format of llmlab.data.records); skip and count the bad ones."""
    records: list[dict] = []
    source = open_records(path)
    summary: dict = {"file": str(path), "format": source.format, "shapes": {}, "read": 0, "kept": 0, "skipped": {},
                     "problems": []}
    try:
        for where, row, problem in source.rows:
            summary["read"] += 1
            try:
                if problem is not None:
                    raise _BadRecord(*problem)
                record, shape = parse(row)
                records.append(record)
                summary["shapes"][shape] = summary["shapes"].get(shape, 0) + 1
            except _BadRecord as bad:
                summary["skipped"][bad.reason] = summary["skipped"].get(bad.reason, 0) + 1
                if len(summary["problems"]) < max_problems:
                    summary["problems"].append(f"{where}: {bad}")
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read the {kind} data ({e.strerror})") from e
    summary["kept"] = len(records)
    if not records:
        shown = "; ".join(summary["problems"]) or "the file is empty"
        raise LlmlabError(f"{path}: no usable {kind} records in {summary['read']} records of {source.format} "
                          f"({shown})")
    shapes = ", ".join(f"{n:,} {shape}" for shape, n in summary["shapes"].items())
    log.info("%s: %s, %s %s records (%s)", path, source.format, f"{len(records):,}", kind, shapes)
    if summary["skipped"]:
        log.warning("%s: skipped %d of %d %s records %s; first: %s", path, summary["read"] - len(records),
                    summary["read"], kind, summary["skipped"], summary["problems"][0])
    return records, summary


def _sft_record(row: dict) -> tuple[dict, str]:
    """(the record, the shape it came in)."""
    if "messages" in row:
        shape, prompt, completion = "messages", [], _messages(row["messages"], "messages")
    elif "conversations" in row:
        shape, prompt, completion = "sharegpt", [], _messages(_from_sharegpt(row["conversations"]), "conversations")
    elif "prompt" in row or "completion" in row:
        _require(row, ("prompt", "completion"))
        shape, (prompt, completion) = "prompt/completion", _prompt_completion(row["prompt"], row["completion"],
                                                                               "completion")
    elif "instruction" in row or "output" in row:
        shape, (prompt, completion) = "alpaca", _alpaca(row)
    else:
        raise _BadRecord("missing_field", "expected a 'messages', 'conversations', 'prompt'/'completion' or Alpaca "
                                          "'instruction'/'output' field")
    system = _system(row)
    if system and (prompt + completion)[0]["role"] != "system":
        prompt = system + prompt
    messages = prompt + completion
    _check_order(messages)
    if messages[-1]["role"] != "assistant":
        raise _BadRecord("bad_order", f"an SFT conversation must end with an assistant message, "
                                      f"not {messages[-1]['role']!r}")
    return {"messages": messages, "loss_from": len(prompt)}, shape


def _alpaca(row: dict) -> tuple[list[dict], list[dict]]:
    """Alpaca's {instruction, input, output}: the instruction, then the input (when not empty) after a blank line,
    is the user's message; the output is the answer."""
    _require(row, ("instruction", "output"))
    instruction, extra, output = row["instruction"], row.get("input") or "", row["output"]
    if not all(isinstance(v, str) for v in (instruction, extra, output)):
        raise _BadRecord("bad_type", "'instruction', 'input' and 'output' must be strings")
    user = instruction.strip() + (f"\n\n{extra.strip()}" if extra.strip() else "")
    return (_messages([{"role": "user", "content": user}], "instruction"),
            _messages([{"role": "assistant", "content": output}], "output"))


def _system(row: dict) -> list[dict]:
    """A record-level "system" field (ShareGPT, Alpaca and prompt/completion variants have one) as a message."""
    value = row.get("system")
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise _BadRecord("bad_type", "'system' must be a string")
    return _messages([{"role": "system", "content": value}], "system")


def _preference_record(row: dict) -> tuple[dict, str]:
    """(the pair, the shape it came in)."""
    _require(row, ("chosen", "rejected"))
    chosen_value, rejected_value = row["chosen"], row["rejected"]
    if isinstance(chosen_value, list) and isinstance(rejected_value, list) and not isinstance(row.get("prompt"), list):
        # implicit prompt (TRL), or UltraFeedback-binarized: a string prompt beside whole chosen/rejected chats
        shape = "chosen/rejected chats" if "prompt" in row else "implicit prompt"
        prompt, chosen, rejected = _split_shared(_messages(chosen_value, "chosen"),
                                                 _messages(rejected_value, "rejected"))
    elif "prompt" in row:
        shape = "prompt/chosen/rejected"
        prompt, chosen = _prompt_completion(row["prompt"], chosen_value, "chosen")
        rejected = _prompt_completion(row["prompt"], rejected_value, "rejected")[1]
    elif isinstance(chosen_value, str) and isinstance(rejected_value, str) and HH_HUMAN in chosen_value:
        shape = "hh transcripts"
        prompt, chosen, rejected = _split_shared(_from_hh(chosen_value, "chosen"), _from_hh(rejected_value, "rejected"))
    else:
        raise _BadRecord("missing_field", "'prompt' is missing (an implicit prompt needs message lists, or "
                                          "Anthropic HH transcripts: '\\n\\nHuman: ... \\n\\nAssistant: ...')")
    _check_order(prompt)
    if prompt[-1]["role"] not in ("user", "document"):
        raise _BadRecord("bad_order", f"the prompt must end with a user or document message, "
                                      f"not {prompt[-1]['role']!r}")
    pair = {"prompt_messages": prompt, "chosen": _answer(chosen, "chosen"), "rejected": _answer(rejected, "rejected")}
    if pair["chosen"] == pair["rejected"]:
        raise _BadRecord("same_answers", "chosen and rejected are the same")
    return pair, shape


def _split_shared(whole_chosen: list[dict], whole_rejected: list[dict]) -> tuple[list, list, list]:
    """(the shared leading messages: the prompt, the rest of chosen, the rest of rejected)."""
    shared = 0
    while shared < min(len(whole_chosen), len(whole_rejected)) - 1 and whole_chosen[shared] == whole_rejected[shared]:
        shared += 1
    if shared == 0:
        raise _BadRecord("bad_order", "'chosen' and 'rejected' share no leading prompt messages")
    return whole_chosen[:shared], whole_chosen[shared:], whole_rejected[shared:]


def _from_hh(transcript: str, field: str) -> list[dict]:
    """Anthropic HH's "\\n\\nHuman: ...\\n\\nAssistant: ..." transcript as messages."""
    parts = HH_TURN.split(transcript)
    if parts[0].strip() or len(parts) < 3:
        raise _BadRecord("bad_type", f"{field!r}: not an HH transcript (it must start with '\\n\\nHuman: ')")
    turns = [{"role": HH_ROLES[speaker], "content": text.strip()} for speaker, text in zip(parts[1::2], parts[2::2])]
    return _messages(turns, field)


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
