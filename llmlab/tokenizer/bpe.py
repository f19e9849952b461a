"""Byte-level BPE: training with Hugging Face `tokenizers`, fast encoding with tiktoken from the same ranks.

    tok = train_tokenizer(texts, vocab_size=4096, out_dir=Path("runs/x/tokenizer"))
    tok = Tokenizer.load(Path("runs/x/tokenizer"))
    ids = tok.encode("Hello world")          # no BOS; "<|user|>" in the text stays ordinary text
    assert tok.decode(ids) == "Hello world"

The split regex is Qwen2's: Llama 3's (GPT-4's cl100k) with digits one at a time (QWEN2_PAT says why; tokenizers
trained with Llama 3's own split before that still load, and export to llama.cpp as `llama-bpe`). There is no normaliser, so decode(encode(x)) == x for any
string; the data pipeline normalises text before it gets here. Ids: the 20 special tokens of `special.py` first,
then the 256 single bytes, then one id per merge in merge order.

A saved folder holds `tokenizer.json` (what transformers, vLLM and llama.cpp read), hand-written
`tokenizer_config.json`, `special_tokens_map.json` and `chat_template.jinja` (so `AutoTokenizer.from_pretrained`
works with either transformers 4 or 5), and `train_config.yaml`, written last: a folder without it is unfinished.

`Tokenizer` encodes with a `tiktoken.Encoding` built in memory from the vocabulary in `tokenizer.json`: it gives the
same ids as HF `tokenizers` several times faster (tests and bench/bench_tokenize.py check that the ids agree).
`Tokenizer.load` also reads byte-level BPE tokenizers llmlab did not train (an imported model's, e.g. SmolLM2's;
see `load_imported`): those encode with HF `tokenizers` (their pre-tokenizer is not the regex above) and keep their
own special tokens and chat format (ChatML is rendered by llmlab.tokenizer.chat).
Loading takes milliseconds, so multiprocessing workers call `Tokenizer.load` themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from llmlab.errors import LlmlabError
from llmlab.files import atomic_write_json, atomic_write_text, fingerprint, save_config
from llmlab.tokenizer.special import CHAT_TEMPLATE, SPECIAL_TOKENS

log = logging.getLogger(__name__)

LLAMA3_PAT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# New tokenizers split text with Qwen2's pattern: Llama 3's, but digits one at a time. In a 4096-token vocabulary only
# some numbers become tokens (the wiki text made 43 of the 100 two-digit ones and 21 three-digit ones), so with Llama
# 3's groups of up to three digits "39" was one token and "47" two: a small model cannot learn arithmetic on such an
# irregular writing of numbers (its sums were off on 68% of the word problems' additions). With single digits every
# number is written the same way, at about the same bytes per token on prose. Tokenizers saved with LLAMA3_PAT still load.
QWEN2_PAT = LLAMA3_PAT.replace(r"\p{N}{1,3}", r"\p{N}")
SPLIT_PATTERNS = (QWEN2_PAT, LLAMA3_PAT)  # the splits an llmlab tokenizer may use: new ones first
# A small vocabulary suits the tiny models llmlab trains on a CPU: at d_model 128-256 an 8k-32k vocabulary would put
# much of the parameters in the embedding and output layers (32k x 256 = 8.4M each), and a few MB of text cannot give
# thousands of rare tokens enough examples to learn. 4096 still compresses the built-in wiki text to ~3.6 bytes/token on held-out
# articles (`llmlab tokenizer stats`).
DEFAULT_VOCAB_SIZE = 4096
MIN_FREQUENCY = 2  # a pair seen once is noise, not a pattern worth a token
# Written into tokenizer_config.json for transformers; a model export that knows its context length may rewrite it.
MODEL_MAX_LENGTH = 2048
TRAIN_CONFIG = "train_config.yaml"


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """GPT-2's map from each byte to a printable character: how byte-level BPE writes bytes in `tokenizer.json`."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def training_settings(vocab_size: int, **record) -> dict:
    """The settings a tokenizer is trained with, plus what the caller records (e.g. the data); fingerprinted."""
    return {
        "vocab_size": vocab_size,
        "min_frequency": MIN_FREQUENCY,
        "pattern": QWEN2_PAT,
        "special_tokens": list(SPECIAL_TOKENS.values()),
        **record,
    }


def saved_fingerprint(folder: Path) -> str | None:
    """The fingerprint in `folder/train_config.yaml`, or None when the folder holds no finished tokenizer."""
    import yaml

    path = Path(folder) / TRAIN_CONFIG
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, AttributeError, yaml.YAMLError):
        return None


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, out_dir: Path, length: int | None = None, *, record: dict | None = None
) -> Tokenizer:
    """Train a byte-level BPE tokenizer on `texts`, save it to `out_dir` and return it loaded.

    `length` (the number of texts, if known) only drives the progress bar. `record` is saved in train_config.yaml
    and is part of its fingerprint, e.g. which data the tokenizer was trained on.
    """
    from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import __version__ as tokenizers_version

    specials = list(SPECIAL_TOKENS.values())
    if vocab_size < len(specials) + 256:
        raise LlmlabError(f"vocab_size {vocab_size} is too small: it needs at least {len(specials) + 256} "
                          f"({len(specials)} special tokens + 256 bytes)")
    out_dir = Path(out_dir)
    settings = training_settings(vocab_size, **(record or {}))

    hf = HFTokenizer(models.BPE(ignore_merges=True))
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PAT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_FREQUENCY,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=sys.stderr.isatty(),
    )
    counted = _CharCounter(texts)
    start = time.perf_counter()
    hf.train_from_iterator(counted, trainer, length=length)
    seconds = time.perf_counter() - start
    if counted.chars == 0:
        raise LlmlabError(f"{out_dir}: no text to train the tokenizer on")
    # Transformers users calling tokenizer(text) get BOS first, as llmlab's training documents have.
    hf.post_processor = processors.TemplateProcessing(single=f"{specials[0]} $A", special_tokens=[(specials[0], 0)])
    got = hf.get_vocab_size()
    if got < vocab_size:
        log.warning("only %d of the requested %d tokens: the training text has no more pairs seen %d+ times",
                    got, vocab_size, MIN_FREQUENCY)

    (out_dir / TRAIN_CONFIG).unlink(missing_ok=True)  # the folder is unfinished until it is rewritten, last
    atomic_write_text(out_dir / "tokenizer.json", hf.to_str(pretty=True))
    write_hf_config_files(out_dir)
    save_config(out_dir / TRAIN_CONFIG, {
        **settings,
        "fingerprint": fingerprint(settings),
        "trained_vocab_size": got,
        "trained_on_chars": counted.chars,
        "trained_on_texts": counted.texts,
        "train_seconds": round(seconds, 2),
        "tokenizers_version": tokenizers_version,
    })
    return Tokenizer.load(out_dir)


class _CharCounter:
    """Passes texts through, counting them and their characters."""

    def __init__(self, texts: Iterable[str]):
        self._texts = texts
        self.texts = 0
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            self.texts += 1
            self.chars += len(text)
            yield text


def write_hf_config_files(folder: Path, model_max_length: int = MODEL_MAX_LENGTH) -> None:
    """Write tokenizer_config.json, special_tokens_map.json and chat_template.jinja beside tokenizer.json.

    Written by hand rather than with transformers' save_pretrained, which (in v5) names a tokenizer class that v4
    does not know; "PreTrainedTokenizerFast" is a class name both know.
    """
    folder = Path(folder)
    named = {"bos_token": SPECIAL_TOKENS["bos"], "eos_token": SPECIAL_TOKENS["eos"], "pad_token": SPECIAL_TOKENS["pad"]}
    others = [t for name, t in SPECIAL_TOKENS.items() if name not in ("bos", "eos", "pad")]
    atomic_write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **named,
        "additional_special_tokens": others,
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    })
    atomic_write_json(folder / "special_tokens_map.json", {**named, "additional_special_tokens": others})
    atomic_write_text(folder / "chat_template.jinja", CHAT_TEMPLATE)


class Tokenizer:
    """A trained llmlab tokenizer: fast encode/decode of ordinary text and chats. Build it with `Tokenizer.load`."""

    def __init__(self, folder: Path, encoding, special_ids: dict[str, int], sha256: str, *, hf=None,
                 chat_format: str | None = "llmlab", default_system: str | None = None, add_bos: bool = True):
        self.folder = Path(folder)
        self.sha256 = sha256
        self.special_ids = special_ids
        self.bos_id = special_ids["bos"]
        self.eos_id = special_ids["eos"]
        self.pad_id = special_ids["pad"]
        self.vocab_size: int = encoding.n_vocab
        self.encoding = encoding
        # Imported tokenizers (see load_imported): encoded by HF `tokenizers` itself, since their pre-tokenizer is
        # not the regex tiktoken runs here; tiktoken still decodes (it only concatenates token bytes).
        self._hf = hf
        self.chat_format = chat_format  # "llmlab" (special.py), "chatml" (<|im_start|>role\n...<|im_end|>) or None
        self.default_system = default_system  # system prompt the template adds when a chat has none (ChatML)
        self.add_bos = add_bos  # whether documents start with BOS (llmlab: yes; e.g. SmolLM2: no)

    @classmethod
    def load(cls, folder: Path) -> Tokenizer:
        """Load `folder/tokenizer.json`; LlmlabError if it is missing, corrupt or not an llmlab tokenizer."""
        import tiktoken

        folder = Path(folder)
        path = folder / "tokenizer.json"
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise LlmlabError(f"{path}: cannot read the tokenizer ({e.strerror}); train one with "
                              f"`llmlab tokenizer train`") from e
        try:
            spec = json.loads(raw)
            vocab: dict[str, int] = spec["model"]["vocab"]
            added = {t["content"]: t["id"] for t in spec["added_tokens"]}
            pre_tokenizers = (spec["pre_tokenizer"] or {}).get("pretokenizers", [])
            patterns = [p.get("pattern", {}).get("Regex") for p in pre_tokenizers]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise LlmlabError(f"{path}: not a valid tokenizer file ({type(e).__name__}: {e})") from e
        if SPECIAL_TOKENS["end_of_turn"] not in added:  # not trained by llmlab: e.g. a Hugging Face model's
            return load_imported(folder, spec, raw)
        if spec["model"].get("type") != "BPE" or patterns[:1] not in ([p] for p in SPLIT_PATTERNS):
            raise LlmlabError(f"{path}: not an llmlab tokenizer (expected a byte-level BPE with the Qwen2 or Llama 3 "
                              "split)")
        expected = {text: i for i, text in enumerate(SPECIAL_TOKENS.values())}
        if added != expected:
            raise LlmlabError(f"{path}: its special tokens differ from llmlab's {list(SPECIAL_TOKENS.values())}")

        decode_char = char_to_byte()
        try:
            ranks = {bytes(decode_char[c] for c in token): i for token, i in vocab.items() if token not in expected}
            encoding = tiktoken.Encoding(
                name=f"llmlab-{folder.name}",
                pat_str=patterns[0],
                mergeable_ranks=ranks,
                special_tokens=expected,
            )
        except (KeyError, ValueError) as e:
            raise LlmlabError(f"{path}: corrupt vocabulary ({type(e).__name__}: {e})") from e
        if len(ranks) + len(expected) != encoding.n_vocab:
            raise LlmlabError(f"{path}: corrupt vocabulary (ids are not 0..{encoding.n_vocab - 1}, each once)")
        special_ids = {name: expected[text] for name, text in SPECIAL_TOKENS.items()}
        return cls(folder, encoding, special_ids, hashlib.sha256(raw).hexdigest())

    def encode(self, text: str) -> list[int]:
        """Ids of ordinary text, without BOS. Special-token strings in the text are encoded as plain characters."""
        if self._hf is not None:
            return self._hf.encode(text, add_special_tokens=False).ids
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self._hf is not None:
            return [e.ids for e in self._hf.encode_batch(texts, add_special_tokens=False)]
        # A plain loop: tiktoken's threaded encode_ordinary_batch measured slower on 2 cores (bench_tokenize.py).
        return [self.encoding.encode_ordinary(text) for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`; special tokens become their text. Bytes that are not valid UTF-8 (a cut-off character)
        become U+FFFD."""
        try:
            data = self.encoding.decode_bytes(ids)
        except TypeError:  # e.g. a torch tensor: tiktoken takes lists, tuples and numpy arrays
            return self.decode([int(i) for i in ids])
        except (KeyError, OverflowError) as e:
            bad = next((int(i) for i in ids if not 0 <= i < self.vocab_size), None)
            raise LlmlabError(f"token id {bad} is not in the tokenizer {self.folder} "
                              f"(ids 0..{self.vocab_size - 1})") from e
        return data.decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for (a token may hold part of a multi-byte character)."""
        return self.encoding.decode_single_token_bytes(token_id)

    def hf_tokenizer(self):
        """The same tokenizer as a Hugging Face `tokenizers.Tokenizer` (slower; for interop and cross-checks)."""
        from tokenizers import Tokenizer as HFTokenizer

        return HFTokenizer.from_file(str(self.folder / "tokenizer.json"))


def load_imported(folder: Path, spec: dict, raw: bytes) -> Tokenizer:
    """A byte-level BPE tokenizer not trained by llmlab (e.g. SmolLM2's), with its tokenizer_config.json.

    Encoding goes through HF `tokenizers` with `encode_special_tokens` on, so, as for llmlab's own tokenizers, text
    that spells a special token stays ordinary text. BOS / EOS / PAD and the chat template come from
    tokenizer_config.json (PAD falls back to EOS, BOS to EOS). A ChatML template (<|im_start|>...<|im_end|>) is
    rendered by llmlab.tokenizer.chat; any other template leaves the tokenizer without a chat format.
    """
    import tiktoken
    from tokenizers import Tokenizer as HFTokenizer

    path = Path(folder) / "tokenizer.json"
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise LlmlabError(f"{path}: a {model.get('type')!r} tokenizer; llmlab reads only byte-level BPE tokenizers")
    added = {t["content"]: t["id"] for t in spec["added_tokens"]}
    decode_char = char_to_byte()
    try:
        ranks = {bytes(decode_char[c] for c in token): i for token, i in model["vocab"].items() if token not in added}
    except KeyError as e:
        raise LlmlabError(f"{path}: not a byte-level BPE (token with character {e.args[0]!r}, which GPT-2's byte map "
                          "does not have; SentencePiece-style vocabularies are not supported)") from e
    try:
        encoding = tiktoken.Encoding(name=f"imported-{Path(folder).name}", pat_str=r"\S+|\s+",
                                     mergeable_ranks=ranks, special_tokens=added)
        hf = HFTokenizer.from_str(raw.decode("utf-8"))
    except Exception as e:  # tiktoken raises ValueError, tokenizers a plain Exception
        raise LlmlabError(f"{path}: corrupt vocabulary ({type(e).__name__}: {e})") from e
    hf.encode_special_tokens = True
    if len(ranks) + len(added) != encoding.n_vocab:
        raise LlmlabError(f"{path}: corrupt vocabulary (ids are not 0..{encoding.n_vocab - 1}, each once)")

    config_path = Path(folder) / "tokenizer_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{config_path}: malformed JSON ({e.msg}, line {e.lineno})") from e
    vocab = {**model["vocab"], **added}

    def token_id(field: str) -> int | None:
        value = config.get(field)
        text = value.get("content") if isinstance(value, dict) else value
        if text is None:
            return None
        if text not in vocab:
            raise LlmlabError(f"{config_path}: {field} {text!r} is not in the vocabulary of {path}")
        return vocab[text]

    eos = token_id("eos_token")
    if eos is None:
        raise LlmlabError(f"{config_path}: no eos_token (needed to know where a generation ends)")
    special_ids = {"bos": token_id("bos_token") or eos, "eos": eos, "pad": token_id("pad_token") or eos}
    jinja = Path(folder) / "chat_template.jinja"  # where transformers 5 saves the template
    template = config.get("chat_template") or (jinja.read_text(encoding="utf-8") if jinja.exists() else "")
    chat_format, default_system = None, None
    if "<|im_start|>" in template and "<|im_end|>" in added and "<|im_start|>" in added:
        chat_format = "chatml"
        special_ids.update(im_start=added["<|im_start|>"], end_of_turn=added["<|im_end|>"])
        # SmolLM2-style templates add a system message when the chat has none; llmlab renders the same.
        # The newline after "system" may be a real one or a Jinja "\\n" escape, depending on how it was saved.
        found = re.search(r"!= 'system' %}\{\{ '<\|im_start\|>system(?:\n|\\n)(.*?)<\|im_end\|>", template, re.S)
        default_system = found.group(1) if found else None
    return Tokenizer(folder, encoding, special_ids, hashlib.sha256(raw).hexdigest(), hf=hf, chat_format=chat_format,
                     default_system=default_system, add_bos=bool(config.get("add_bos_token", False)))


def bytes_per_token(tok: Tokenizer, texts: Iterable[str]) -> float:
    """UTF-8 bytes per token over `texts`: how much the tokenizer compresses (higher means shorter sequences)."""
    n_bytes = n_tokens = 0
    for text in texts:
        n_bytes += len(text.encode("utf-8"))
        n_tokens += len(tok.encode(text))
    if n_tokens == 0:
        raise LlmlabError("no text to measure bytes per token on")
    return n_bytes / n_tokens


def sweep_vocab_sizes(
    train_texts: Callable[[], Iterable[str]], eval_texts: list[str], vocab_sizes: Sequence[int], work_dir: Path
) -> list[dict]:
    """Train one tokenizer per vocabulary size (in temporary folders under `work_dir`, removed afterwards) and
    measure each on `eval_texts`. `train_texts()` is called once per size and must give the same texts each time."""
    rows = []
    for size in sorted(set(vocab_sizes)):
        folder = Path(work_dir) / f"vocab_{size}"
        start = time.perf_counter()
        tok = train_tokenizer(train_texts(), size, folder)
        seconds = time.perf_counter() - start
        rows.append({
            "vocab_size": size,
            "trained_vocab_size": tok.vocab_size,
            "bytes_per_token": round(bytes_per_token(tok, eval_texts), 4),
            "train_seconds": round(seconds, 2),
        })
        shutil.rmtree(folder)
    shutil.rmtree(work_dir, ignore_errors=True)
    return rows
