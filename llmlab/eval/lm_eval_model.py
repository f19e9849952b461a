"""llmlab models inside EleutherAI's lm-evaluation-harness: the model class `LlmlabLM`, registered as "llmlab".

From Python (any task lm-eval knows; the ones that need no download are your own task YAML files):

    import lm_eval
    from lm_eval.tasks import TaskManager
    from llmlab.eval.lm_eval_model import LlmlabLM

    lm = LlmlabLM(pretrained="runs/x/base", batch_size=8)        # or LlmlabLM(model=model, tokenizer=tok)
    out = lm_eval.simple_evaluate(model=lm, tasks=["my_task"],
                                  task_manager=TaskManager(include_path="my_tasks/", include_defaults=False))
    print(out["results"])

From the shell: lm-eval's own `lm_eval` command finds no plugins, so this module is the command (it registers the
class, then runs lm-eval's command line with the same options):

    python -m llmlab.eval.lm_eval_model run --model llmlab --model_args pretrained=runs/x/base --batch_size 8 \
        --tasks my_task --include_path my_tasks/ --device cpu

model_args: pretrained (any model spec `llmlab.model.loading.load_model` takes: an llmlab model folder, a Hugging
Face Llama/Qwen3 folder, a .gguf file, "smollm2"), batch_size (rows per forward pass for log-likelihoods; on lm-eval's
command line give --batch_size instead), max_length (context kept, at most the model's seq_len), max_gen_toks
(default generation length), add_bos_token (start every context with BOS, as llmlab's pre-training starts each
document; default: the tokenizer's add_bos, false for SmolLM2), prefix_token_id (what an empty context becomes;
default BOS, or EOS without add_bos_token; for SmolLM2's plain text 0, its <|endoftext|>, is the natural one),
device, seed (for sampled generation). Memory: a log-likelihood batch holds batch_size x length x vocab float32
logits (8 x 512 x 49,152 x 4 bytes = 0.8 GB for SmolLM2).

The three request types, as lm-eval's own Hugging Face model (HFLM) computes them:
    loglikelihood           (context, continuation) -> (log p(continuation | context), is it the greedy output).
                            Token boundaries: context + continuation is encoded whole and split after the tokens of
                            the context alone (lm-eval's TemplateLM); an empty context is the prefix token. Too long:
                            the oldest tokens are dropped, keeping max_length tokens of input.
    loglikelihood_rolling   (text,) -> log p(text | prefix token): windows of max_length tokens, each token scored
                            once, after the tokens before it in its window (lm-eval's get_rolling_token_windows).
    generate_until          (context, gen_kwargs) -> the text generated until one of gen_kwargs["until"], EOS or
                            max_gen_toks tokens (greedy unless do_sample / temperature > 0), through llmlab's
                            continuous-batching engine (batch_size requests decoding together); a chat model also
                            stops at the end of its turn.

With --apply_chat_template (apply_chat_template=True in Python), lm-eval's prompts are rendered in the model's own
chat format (llmlab's, or ChatML for imported models): the same ids `llmlab chat` feeds the model.

Checks: `.venv/bin/pytest tests/test_lm_eval.py`: scores against sums of the model's log-probs, and equal to HFLM's
on an HF export of the same model; a tiny local task run offline through simple_evaluate.
"""

from __future__ import annotations

import functools
import re

import torch
from tqdm import tqdm

from llmlab.engine.batching import Request, complete_all
from llmlab.engine.generate import cut_at_stop
from llmlab.errors import LlmlabError

try:
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import register_model
    from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
except ImportError as e:
    raise LlmlabError("lm-evaluation-harness is not installed: pip install 'llmlab[eval]' (or lm_eval)") from e
from llmlab.model.loading import load_model
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.chat import render_conversation

# A scored request as TemplateLM hands it over: ((context, continuation) or None, context ids, continuation ids).
TokenRequest = tuple[tuple[str, str] | None, list[int], list[int]]


@register_model("llmlab")
class LlmlabLM(TemplateLM):
    """An llmlab Transformer and its tokenizer as an lm-eval model (see the module docstring for the options)."""

    def __init__(
        self,
        pretrained: str | None = None,
        model: Transformer | None = None,
        tokenizer=None,
        batch_size: int | str | None = 8,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        add_bos_token: bool | None = None,
        prefix_token_id: int | None = None,
        device: str | None = None,
        seed: int = 1234,
        **unused,  # what lm-eval passes to every model and this one needs not (e.g. max_batch_size)
    ) -> None:
        super().__init__()
        if (pretrained is None) == (model is None) or (model is None) != (tokenizer is None):
            raise LlmlabError("give either pretrained=<model folder or name>, or both model= and tokenizer=")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"  # lm-eval's command line asks for cuda:0 unless told otherwise
        if pretrained is not None:
            model, tokenizer, _ = load_model(str(pretrained), device or "cpu")
        elif device is not None:
            model = model.to(device)
        self.model, self.tokenizer = model.eval(), tokenizer
        self._device = self.model.embed.weight.device
        if batch_size in (None, "auto"):  # lm-eval's "auto" probes memory by trial; a fixed size is simpler
            batch_size = 8
        self.batch_size = int(batch_size)
        seq_len = self.model.cfg.seq_len
        self.max_length = seq_len if max_length is None else int(max_length)
        self.max_gen_toks = int(max_gen_toks)
        if not 1 <= self.max_length <= seq_len or self.batch_size < 1:
            raise LlmlabError(
                f"need 1 <= max_length <= the model's seq_len={seq_len} and batch_size >= 1; got max_length="
                f"{self.max_length}, batch_size={self.batch_size}"
            )
        self.add_bos_token = getattr(tokenizer, "add_bos", True) if add_bos_token is None else bool(add_bos_token)
        self._prefix_token_id = prefix_token_id
        self.seed = int(seed)
        self._chat_strings = False  # set when lm-eval renders chats through apply_chat_template

    # --- tokenisation, as TemplateLM expects it ------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def prefix_token_id(self) -> int:
        """What an empty context becomes, and what a rolling log-likelihood is conditioned on."""
        if self._prefix_token_id is not None:
            return self._prefix_token_id
        return self.tokenizer.bos_id if self.add_bos_token else self.eot_token_id

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "folder", type(self.tokenizer).__name__))

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        """Ids of `string`, after BOS when add_special_tokens (None: this model's add_bos_token). Once lm-eval renders
        chats (apply_chat_template), its strings carry the format's special tokens as text: those become their ids
        (the rendered chat has its own BOS)."""
        if self._chat_strings:
            return self._encode_with_specials(string)
        add_bos = self.add_bos_token if add_special_tokens is None else add_special_tokens and self.add_bos_token
        return ([self.tokenizer.bos_id] if add_bos else []) + self.tokenizer.encode(string)

    # --- log-likelihoods -----------------------------------------------------------------------------------------

    @torch.inference_mode()
    def _loglikelihood_tokens(self, requests: list[TokenRequest], disable_tqdm: bool = False, **kwargs):
        """(sum of log-probs of the continuation ids, whether each is the argmax), batched by length."""
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        # Longest first, so each batch pads little and a too-large batch fails at once rather than at the end.
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][1]) - len(requests[i][2]))
        pbar = tqdm(total=len(requests), disable=disable_tqdm, desc="llmlab log-likelihoods")
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            inputs = []
            for i in chunk:
                _, context, continuation = requests[i]
                if len(continuation) > self.max_length:
                    raise LlmlabError(f"a continuation of {len(continuation)} tokens cannot be scored within "
                                      f"max_length={self.max_length}")
                # The last token is only a target; the oldest tokens go when the whole is too long.
                inputs.append((context + continuation)[-(self.max_length + 1) :][:-1])
            ids = torch.zeros(len(chunk), max(map(len, inputs)), dtype=torch.long)  # (B, T), right-padded
            for row, tokens in enumerate(inputs):  # padding comes after, so the causal mask keeps it unseen
                ids[row, : len(tokens)] = torch.tensor(tokens)
            logits, _ = self.model(ids.to(self._device))  # (B, T, V)
            for row, i in enumerate(chunk):
                request, _, continuation = requests[i]
                end, n = len(inputs[row]), len(continuation)
                if n == 0:  # nothing to score: log 1
                    results[i] = (0.0, True)
                    continue
                logprobs = logits[row, end - n : end].log_softmax(dim=-1)  # (n, V): predictions of the continuation
                target = torch.tensor(continuation, device=logprobs.device)  # (n,)
                score = logprobs.gather(1, target[:, None]).sum().item()
                results[i] = (score, bool((logprobs.argmax(dim=-1) == target).all()))
                if request is not None:
                    self.cache_hook.add_partial("loglikelihood", request, results[i])
            pbar.update(len(chunk))
        pbar.close()
        return results

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        windows, owner = [], []  # every window of every text, and the request it belongs to
        for i, (text,) in enumerate(req.args for req in requests):
            tokens = self.tok_encode(text, add_special_tokens=False)
            for context, targets in map(
                make_disjoint_window,
                get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length, context_len=1),
            ):
                windows.append((None, context, targets))
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, (score, _) in zip(owner, self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)):
            totals[i] += score
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    # --- generation ----------------------------------------------------------------------------------------------

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """All requests through llmlab's continuous-batching engine, batch_size rows decoding at once."""
        jobs = [self._generation_request(*req.args) for req in requests]
        with tqdm(total=len(jobs), disable=disable_tqdm, desc="llmlab generate_until") as bar:
            done = complete_all(self.model, jobs, self.tokenizer, max_batch=self.batch_size,
                                on_finished=lambda: bar.update(1))
        outputs = []
        for req, job, completion in zip(requests, jobs, done):
            text = cut_at_stop(self.tokenizer.decode(completion.tokens), job.stop_strings)
            self.cache_hook.add_partial("generate_until", req.args, text)
            outputs.append(text)
        return outputs

    def _generation_request(self, context: str, gen_kwargs: dict) -> Request:
        """The engine request for one (context, gen_kwargs): left-truncated prompt, greedy unless sampling is asked."""
        kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
        until = handle_stop_sequences(kwargs["until"], eos=self.tokenizer.decode([self.eot_token_id]))
        max_gen = kwargs["max_gen_toks"]
        if not 0 < max_gen < self.max_length:
            raise LlmlabError(f"max_gen_toks={max_gen} must be between 1 and max_length={self.max_length} - 1")
        return Request(
            prompt_ids=self.tok_encode(context)[-(self.max_length - max_gen) :] or [self.prefix_token_id],
            max_new_tokens=max_gen,
            temperature=float(kwargs.get("temperature", 0.0)) if kwargs["do_sample"] else 0.0,
            top_k=kwargs.get("top_k"),
            top_p=kwargs.get("top_p"),
            seed=self.seed,
            stop_ids=self.stop_ids,
            stop_strings=until,
        )

    @property
    def stop_ids(self) -> set[int]:
        """Where a generation ends: EOS, and on a chat tokenizer the end of the assistant's turn (as lm-eval's HF
        backend stops at a chat model's end-of-turn token)."""
        end_of_turn = self.tokenizer.special_ids.get("end_of_turn") if self.tokenizer.chat_format else None
        return {self.eot_token_id} | ({end_of_turn} if end_of_turn is not None else set())

    # --- chat templates (lm-eval's --apply_chat_template) ---------------------------------------------------------

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The conversation rendered in the model's own chat format (llmlab's, or ChatML for imported models), as
        text whose special tokens tok_encode turns back into their ids."""
        if not self.tokenizer.chat_format:
            raise LlmlabError("this model's tokenizer has no chat format: run lm-eval without --apply_chat_template")
        self._chat_strings = True
        ids, _ = render_conversation(self.tokenizer, chat_history, add_generation_prompt=add_generation_prompt)
        return self.tokenizer.decode(ids)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """A name for the chat format (lm-eval fingerprints its request cache with it)."""
        return f"llmlab-{self.tokenizer.chat_format}" if chat_template and self.tokenizer.chat_format else None

    def _encode_with_specials(self, text: str) -> list[int]:
        """Ids of a rendered chat: the special tokens' texts become their ids, the text between them is ordinary."""
        tok = self.tokenizer
        pieces = re.split(self._special_pattern, text)
        by_text = {tok.decode([i]): i for i in tok.special_ids.values()}
        return [i for piece in pieces if piece for i in ([by_text[piece]] if piece in by_text else tok.encode(piece))]

    @functools.cached_property
    def _special_pattern(self) -> str:
        texts = sorted({self.tokenizer.decode([i]) for i in self.tokenizer.special_ids.values()}, key=len, reverse=True)
        return "(" + "|".join(map(re.escape, texts)) + ")"


if __name__ == "__main__":  # lm-eval's command line, with "llmlab" registered
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
