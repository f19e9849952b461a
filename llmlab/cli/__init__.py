"""The one command line: `llmlab <command> [<subcommand>] [--options]`.

Each command is a plain function whose signature and docstring are the options and their help (jsonargparse builds
the parser); they live in `llmlab/cli/<command>.py`, the top layer, which wires the lower layers together.
Every command also takes `--config FILE.yaml` (values from a file, overridden by later flags) and
`--print_config`. Options are written `--run_dir` or `--run-dir`; both work.

    llmlab --help
    llmlab data prepare --help
"""

from __future__ import annotations

import json
import logging
import sys

from llmlab.errors import LlmlabError


def commands() -> dict:
    """The command tree. Command modules import their heavy dependencies inside the functions, so --help is fast."""
    from llmlab.cli import chat, data, eval, plan, prefs, pretrain, report, sample, sft, speedrun, tokenizer
    from llmlab.cli import flywheel, store, tasks, think
    from llmlab.cli import export, import_model
    from llmlab.cli import serve

    return {
        "arena": store.arena,
        "chat": chat.chat,
        "data": {"_help": "Build a run's dataset (clean, dedup, tokenize into shards), describe it, check "
                          "fine-tuning files.",
                 "prepare": data.prepare, "stats": data.stats, "check": data.check},
        "eval": {"_help": "Evaluate a model.", "run": eval.run, "chat": eval.chat, "list": eval.list_evals},
        "export": {"_help": "Write a model as a Hugging Face folder or a GGUF file.", "hf": export.hf,
                   "gguf": export.gguf},
        "flywheel": flywheel.flywheel,
        "import": import_model.import_model,
        "plan": plan.plan,
        "prefs": prefs.prefs,
        "pretrain": pretrain.pretrain,
        "report": report.report,
        "sample": sample.sample,
        "serve": serve.serve,
        "sft": sft.sft,
        "speedrun": speedrun.speedrun,
        "store": {"_help": "The serving database: export the labelers' work, counts.", "export": store.export,
                  "stats": store.stats, "simulate": store.simulate,
                  "duel": store.duel},
        "tasks": {"_help": "Checkable tasks (addition, multiplication, countdown, word problems): list, sample, "
                           "write training files.",
                  "list": tasks.list_tasks, "sample": tasks.sample, "make": tasks.make},
        "think": think.think,
        "tokenizer": {
            "_help": "Train, use and measure the run's byte-level BPE tokenizer.",
            "train": tokenizer.train,
            "encode": tokenizer.encode,
            "decode": tokenizer.decode,
            "stats": tokenizer.stats,
        },
    }


# Commands whose plain words after the command name are their one list argument (jsonargparse has no variadic
# positionals): `llmlab data check a.json b.jsonl` is `llmlab data check '["a.json", "b.jsonl"]'`.
VARIADIC = {("data", "check")}
FLAGS = ("-h", "--help")  # options that take no value


def gather_words(argv: list[str]) -> list[str]:
    """argv with a variadic command's plain words (those that are not an option's value) gathered into its list."""
    for command in VARIADIC:
        if tuple(argv[:len(command)]) != command:
            continue
        rest, words, kept, i = argv[len(command):], [], [], 0
        while i < len(rest):
            arg = rest[i]
            if arg.startswith("-"):
                kept.append(arg)
                if "=" not in arg and arg not in FLAGS and i + 1 < len(rest):
                    kept.append(rest[i + 1])
                    i += 1
            else:
                words.append(arg)
            i += 1
        return [*command, *([json.dumps(words)] if words else []), *kept]
    return argv


def normalise_option_names(argv: list[str]) -> list[str]:
    """Accept `--run-dir` for `--run_dir`: jsonargparse names options after Python parameters."""
    out = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + eq + value
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    from jsonargparse import CLI

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    argv = gather_words(normalise_option_names(sys.argv[1:] if argv is None else argv))
    try:
        CLI(commands(), args=argv, prog="llmlab", description=__doc__.split("\n\n")[0])
    except LlmlabError as e:
        print(f"llmlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llmlab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
