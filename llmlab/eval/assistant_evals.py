"""What a newcomer asks the assistant, measured at the chat's own sampling (several seeds), next to greedy:

    taught_facts        facts the default SFT data teaches (the capital, currency, languages, region and neighbours
                        of its train countries), asked in phrasings never trained on
    knowledge_transfer  the same kinds of fact about countries held out of SFT altogether, whose answer the
                        pre-training text states (the country's Wikipedia lead names it) and no SFT conversation does
                        (no train answer names both the country and the answer: "Germany borders France" teaches
                        France's neighbour too): what SFT draws out of the base model; the facts pre-training does
                        not state are reported beside, as the control
    multiturn           two- and three-turn chats (earlier answers given): a later question on another country, or
                        one that refers back ("And what currency does it use?"): the answer must hold the later
                        question's fact, and must not repeat the earlier answer
    identity            "who are you", "who made you", "what can you do", in phrasings and openings never trained on:
                        the answer says it is llmlab's assistant (or what it can do), and does not refuse

Each item gets one greedy answer and 8 sampled ones at the chat's defaults (llmlab.eval.chat_sampling): the score is
the mean share of right sampled answers, with the greedy rate beside. A right answer contains the expected word (NFKC-normalised, case-insensitive): a string check that cannot
tell a confused answer which happens to name it, so the echo rule of `multiturn` also applies everywhere an earlier
answer is in the chat.

    llmlab eval run --model runs/x/chat_dpo --evals '[taught_facts,multiturn,identity,knowledge_transfer]'
"""

from __future__ import annotations

import random
import unicodedata
from functools import lru_cache

from llmlab.data.assistant_safety import REFUSAL
from llmlab.data.assistant_sources import (IDENTITY_GREETINGS, IDENTITY_HELD_OUT, IDENTITY_HELD_OUT_PREFIXES,
                                           IDENTITY_TRAIN,
                                           country_facts, fact_questions)
from llmlab.data.clean import normalize_text
from llmlab.data.corpus import wiki_articles
from llmlab.data.split import split_of
from llmlab.eval.chat_sampling import measure, rate_by
from llmlab.eval.context import EvalContext
from llmlab.eval.registry import CHAT_ONLY, register
FOLLOW_UPS = {"currency": "And what currency does it use?", "languages": "What languages do people speak there?",
              "region": "Where is it?"}  # the multi-turn family's follow-ups (llmlab.data.assistant)
FACT_KINDS = ("capital", "currency", "languages", "region", "borders")


def normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def says(answer: str, word: str) -> bool:
    """Whether `answer` contains `word` (NFKC, case-insensitive)."""
    return normal(word) in normal(answer)


def is_echo(answer: str, earlier: str) -> bool:
    """An answer that repeats an earlier answer of the chat (the same text, or it starts with the earlier one)."""
    a, e = normal(answer).strip(), normal(earlier).strip()
    return bool(e) and (a == e or a.startswith(e))


def fact_right(answer: str, gold: str, earlier: list[str] = ()) -> bool:
    return says(answer, gold) and not answer.strip().startswith(REFUSAL) and not any(
        is_echo(answer, e) for e in earlier)


def neighbours_right(answer: str, country: str, neighbours: list[str], earlier: list[str] = ()) -> bool:
    """A borders answer: it names at least one true neighbour and no other country (or says there are no land
    borders, when there are none)."""
    if answer.strip().startswith(REFUSAL) or any(is_echo(answer, e) for e in earlier):
        return False
    if not neighbours:
        return says(answer, "no land borders")
    named = {n for n in _country_names() if n != normal(country) and normal(n) in normal(answer)}
    true = {normal(n) for n in neighbours}
    named_norm = {normal(n) for n in named}
    # a name inside a longer named one ("Niger" in "Nigeria", "Guinea" in "Papua New Guinea") is not counted
    named_norm = {n for n in named_norm if not any(n != m and n in m for m in named_norm)}
    return bool(named_norm & true) and named_norm <= true


@lru_cache(maxsize=1)
def _country_names() -> frozenset[str]:
    return frozenset(normal(normalize_text(c["name"].removeprefix("the "))) for c in _countries())


def checker(country: dict, kind: str, earlier: tuple[str, ...] = ()):
    """The right-answer check of one fact of a country."""
    if kind == "borders":
        neighbours = [normalize_text(n) for n in country["gold"]["neighbours"]]
        name = normalize_text(country["name"].removeprefix("the "))
        return lambda answer: neighbours_right(answer, name, neighbours, earlier)
    gold = normalize_text(country["gold"][kind])
    return lambda answer: fact_right(answer, gold, earlier)


def identity_right(answer: str, kind: str, earlier: list[str] = ()) -> bool:
    """identity: it says it is llmlab's assistant; scope: it says what it can do. Never a refusal, never an echo."""
    if answer.strip().startswith(REFUSAL) or any(is_echo(answer, e) for e in earlier):
        return False
    return says(answer, "llmlab") if kind == "identity" else says(answer, "I can")


# ----------------------------------------------------------------------------------------------------- items

def _chat(*turns: str) -> list[dict]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": normalize_text(t)} for i, t in enumerate(turns)]


def _item(messages: list[dict], check, **info) -> dict:
    """An item: the chat up to the question, the checker of an answer, and what to record about it."""
    return {"messages": messages, "check": check, **info}


@lru_cache(maxsize=1)
def _countries() -> tuple[dict, ...]:
    return tuple(c for c in country_facts())


def taught_fact_items() -> list[dict]:
    """Every fact of every train country, in each held-out phrasing."""
    return [_item(_chat(q), checker(c, kind), country=c["name"], fact=kind, gold=c["gold"][kind])
            for c in _countries() if c["split"] == "train" for kind in FACT_KINDS if kind in c["facts"]
            for q in fact_questions(c, kind, "held_out")]


def stated_in_pretraining(country: dict, kind: str) -> bool:
    """Whether the country's Wikipedia lead, pre-trained on (a train document), contains the fact's answer."""
    title = country["name"].removeprefix("the ")
    article = wiki_articles().get(title)
    return (article is not None and split_of(f"wiki/{title}") == "train"
            and says(article["extract"], country["gold"][kind]))


@lru_cache(maxsize=1)
def _sft_texts() -> tuple[str, ...]:
    """Every message of the default SFT train data, normalised."""
    from llmlab.data.assistant import build_default_mixture

    return tuple(normal(m["content"]) for row in build_default_mixture()["sft"]["train"] for m in row["messages"])


def in_sft(country: dict, kind: str) -> bool:
    """Whether an SFT train message names both the country and the fact's answer."""
    name, gold = normal(country["name"].removeprefix("the ")), normal(country["gold"][kind])
    return any(name in text and gold in text for text in _sft_texts())


def transfer_items() -> list[dict]:
    """Facts of the countries held out of SFT (their canonical question) that no SFT message states, with whether
    pre-training states them."""
    return [_item(_chat(c["facts"][kind][0]), checker(c, kind), country=c["name"], fact=kind, gold=c["gold"][kind],
                  stated=stated_in_pretraining(c, kind))
            for c in _countries() if c["split"] == "val" for kind in FACT_KINDS
            if kind in c["facts"] and not in_sft(c, kind)]


def multiturn_items(n: int = 150, seed: int = 0) -> list[dict]:
    """Held-out chats of train countries, earlier answers given: another country's fact (2 turns), another
    country's capital then a follow-up about it (3 turns), or a follow-up on the first country (2 turns)."""
    rng = random.Random(f"{seed}-multiturn-eval")
    countries = [c for c in _countries() if c["split"] == "train" and {"capital", "currency"} <= c["facts"].keys()]
    out = []
    for i in range(n):
        a, b = rng.sample(countries, 2)
        kind_a = rng.choice([k for k in FACT_KINDS if k in a["facts"]])
        first = [rng.choice(fact_questions(a, kind_a, "held_out")), a["facts"][kind_a][1]]
        shape = ("switch", "switch_then_follow_up", "follow_up")[i % 3]
        if shape == "switch":
            kind = rng.choice([k for k in FACT_KINDS if k in b["facts"]])
            turns, target = first + [rng.choice(fact_questions(b, kind, "held_out"))], (b, kind)
        elif shape == "switch_then_follow_up":
            kind = rng.choice([k for k in FOLLOW_UPS if k in b["facts"]])
            turns = first + [rng.choice(fact_questions(b, "capital", "held_out")), b["facts"]["capital"][1],
                             FOLLOW_UPS[kind]]
            target = (b, kind)
        else:
            kind = rng.choice([k for k in FOLLOW_UPS if k in a["facts"] and k != kind_a])
            turns, target = first + [FOLLOW_UPS[kind]], (a, kind)
        earlier = tuple(normalize_text(t) for t in turns[1::2])
        out.append(_item(_chat(*turns), checker(target[0], target[1], earlier), shape=shape,
                         country=target[0]["name"], fact=target[1], gold=target[0]["gold"][target[1]]))
    return out


def identity_items() -> list[dict]:
    """Each held-out phrasing after each held-out opening, alone or after a fact exchange."""
    out = []
    for q, kind in IDENTITY_HELD_OUT.items():
        for prefix in IDENTITY_HELD_OUT_PREFIXES:
            out.append(_item(_chat(prefix + q), lambda a, k=kind: identity_right(a, k), kind=kind))
    return out


# ------------------------------------------------------------------------------------------------- measuring

def _first(ctx: EvalContext, items: list[dict]) -> list[dict]:
    """At most ctx.size("assistant") items."""
    limit = ctx.size("assistant")
    return items[:limit] if limit else items


@register("taught_facts", unit="accuracy", models=CHAT_ONLY)
def taught_facts(ctx: EvalContext) -> dict:
    """Facts of the SFT data asked in unseen phrasings, at the chat's sampling (8 seeds) and greedy."""
    result = measure(ctx, _first(ctx, _spread(taught_fact_items(), ctx.seed)))
    result["metrics"]["by_fact"] = rate_by(ctx, "fact")
    return result


@register("knowledge_transfer", unit="accuracy", models=CHAT_ONLY)
def knowledge_transfer(ctx: EvalContext) -> dict:
    """Facts only pre-training states (countries held out of SFT), at the chat's sampling; unstated ones beside."""
    items = transfer_items()
    stated = [i for i in items if i["stated"]]
    result = measure(ctx, _first(ctx, stated))
    control = EvalContext(ctx.model, ctx.tok, ctx.info, ctx.model_dir, ctx.run_dir, ctx.seed, ctx.preset, ctx.sizes)
    unstated = measure(control, _first(ctx, [i for i in items if not i["stated"]]))
    result["metrics"].update(by_fact=rate_by(ctx, "fact"), unstated=unstated["score"], unstated_ci95=unstated["ci95"],
                             unstated_n=unstated["n"])
    ctx.items += control.items  # the control's items go into the same JSONL, marked stated: false
    return result


@register("multiturn", unit="accuracy", models=CHAT_ONLY)
def multiturn(ctx: EvalContext) -> dict:
    """Later turns of held-out chats: the later question's fact, never a repeat of an earlier answer."""
    result = measure(ctx, _first(ctx, multiturn_items(seed=ctx.seed)))
    result["metrics"]["by_shape"] = rate_by(ctx, "shape")
    return result


@register("identity", unit="rate", models=CHAT_ONLY)
def identity(ctx: EvalContext) -> dict:
    """Who it is and what it can do, asked in unseen phrasings and openings: appropriate answers."""
    result = measure(ctx, _first(ctx, identity_items()))
    result["metrics"]["by_kind"] = rate_by(ctx, "kind")
    return result


def _spread(items: list[dict], seed: int) -> list[dict]:
    """The items in a seeded order, so a size limit takes a sample of every fact kind and country."""
    shuffled = list(items)
    random.Random(f"{seed}-spread").shuffle(shuffled)
    return shuffled


assert set(IDENTITY_HELD_OUT).isdisjoint(IDENTITY_TRAIN), "held-out identity phrasings must never be trained"
assert not set(IDENTITY_HELD_OUT_PREFIXES[1:]) & set(IDENTITY_GREETINGS), "held-out openings must never be trained"
