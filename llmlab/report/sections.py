"""The report's content as sections of simple blocks, rendered to Markdown and HTML by llmlab.report.render.

A block is one of:
    ("p", text)                        a paragraph of plain text
    ("h3", text)                       a sub-heading
    ("table", headers, rows)           rows of plain-text cells
    ("code", text)                     preformatted text
    ("details", summary, text)         preformatted text, folded under a one-line summary
    ("image", file name, alt text)     the PNG written beside the report (embedded in the HTML)

    sections = build_sections(collect(run_dir), has_curves=True)   # [(title, [block, ...]), ...]
"""

from __future__ import annotations

import yaml

from llmlab.layout import MODEL_LABELS, MODELS, STAGES, RunDir

# The label the report shows for each pipeline stage that does work (llmlab.layout.STAGES; the report itself is
# not listed in its own table).
STAGE_LABELS = {"data": "data + tokenizer", "pretrain": "pre-training", "sft": "SFT", "prefs": "DPO",
                "eval": "evaluation"}


def num(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def last(rows: list[dict], key: str):
    return next((r[key] for r in reversed(rows) if key in r), None)


def environment_section(facts: dict) -> list:
    env = facts["environment"]
    git = env.get("git")
    commit = "not a git checkout"
    if git:
        commit = git["commit"][:12] + (" (uncommitted changes)" if git["dirty"] else "")
    gpus = ", ".join(env.get("cuda_devices") or []) or "none"
    rows = [
        ("CPU", f"{env.get('cpu')} ({', '.join(env.get('cpu_features') or []) or 'no AVX2'})"),
        ("cores", f"{env.get('logical_cores')} logical, {env.get('physical_cores')} physical; torch uses "
                  f"{env.get('torch_threads')} threads"),
        ("memory", f"{env.get('memory_gb')} GB"),
        ("GPUs", gpus),
        ("ran on", f"{env.get('device', 'cpu')}, {env.get('processes', 1)} process(es)"),
        ("OS", env.get("os")),
        ("versions", f"Python {env.get('python')}, torch {env.get('torch')}, llmlab {env.get('llmlab')}"),
        ("llmlab commit", commit),
        ("price basis", env.get("price_basis")),
    ]
    blocks = [("table", ["property", "value"], [[k, str(v)] for k, v in rows])]
    if facts["environment_is_current_machine"]:
        blocks.insert(0, ("p", "This run has no speedrun.json, so this is the machine generating the report, "
                               "which need not be the one that trained."))
    return blocks


def stage_result(facts: dict, name: str) -> str:
    """One line of what a stage produced."""
    stages = facts["stages"]
    if name == "data" and facts["data"]["stats"]:
        train = facts["data"]["stats"]["splits"]["train"]
        vocab = facts["data"]["stats"]["tokenizer"]["vocab_size"]
        return (f"{train['documents']:,} train documents, {train['tokens']:,} tokens at "
                f"{train['bytes_per_token']:.2f} bytes/token (vocab {vocab:,})")
    s = stages.get(name)
    if name == "pretrain" and s and s["config"]:
        resolved = s["config"]["resolved"]
        bpb = (s["model"] or {}).get("val_bpb")
        return (f"depth {s['config']['depth']}, {resolved['params']['total']:,} params, {resolved['steps']:,} steps, "
                f"{resolved['tokens']:,} tokens; held-out bpb {num(bpb)}")
    if name == "pretrain" and s and (s["model"] or {}).get("stage") == "imported":
        model = s["model"]["model"]
        return f"none: {s['model']['source']} imported as the base ({model['depth']} layers, d_model {model['d_model']})"
    if name == "sft" and s and s["config"]:
        return f"{s['config']['steps']:,} steps; held-out loss {num(last(s['metrics'], 'val_loss'))}"
    if name == "prefs" and s and s["config"]:
        return (f"{s['config']['steps']:,} steps on {s['config']['pairs']['train']:,} pairs; held-out preference "
                f"accuracy {num(last(s['metrics'], 'pref_accuracy'))}")
    if name == "eval" and facts["evals"]:
        return "models evaluated: " + ", ".join(facts["evals"])
    return ""


def stages_section(facts: dict) -> list:
    speedrun = facts["speedrun"] or {}
    records = speedrun.get("stages", {})
    rows, total_seconds, total_cost = [], 0.0, 0.0
    for name, label in ((n, STAGE_LABELS[n]) for n in STAGES if n in STAGE_LABELS):
        record = records.get(name)
        trained = facts["stages"].get(name)
        if record:
            status, seconds, cost = record["status"], record.get("seconds"), record.get("cost_usd")
            if record.get("attempts", 1) > 1:  # the time is the last attempt's: a killed one could not say
                status += f" ({record['attempts']} attempts)"
        elif trained:  # a run made stage by stage: only the training clock is known
            status = "done" if trained["finished"] else "unfinished"
            seconds, cost = trained["train_seconds"], None
        else:
            status = "done" if name == "data" and facts["data"]["stats"] else "not run"
            seconds = cost = None
        total_seconds += seconds or 0.0
        total_cost += cost or 0.0
        time_text = duration(seconds) + (" (training only)" if seconds is not None and not record else "")
        result = record["error"] if record and record["status"] == "failed" else stage_result(facts, name)
        rows.append([label, status, time_text, "-" if cost is None else f"${cost:.4f}", result])
    rows.append(["total", "", duration(total_seconds), f"${total_cost:.4f}" if total_cost else "-", ""])
    price = facts["environment"].get("price_basis", "")
    note = (f"Wall time per stage as recorded in speedrun.json: that of the invocation that finished the stage (after "
            f"a kill, the resumed part only; a re-run that found the stage finished keeps it); writing this report "
            f"takes a few seconds more. Costs are estimates: wall time x {price}.")
    if not records:
        note = "This run was not made by llmlab speedrun: times are the training clocks from metrics.jsonl."
    return [("table", ["stage", "status", "wall time", "est. cost", "result"], rows), ("p", note)]


def configs_section(facts: dict) -> list:
    configs = [("data (prepare_config.yaml)", facts["data"]["config"]),
               ("tokenizer (train_config.yaml)", facts["data"]["tokenizer"])]
    configs += [(f"{name} (config.yaml)", (facts["stages"][name] or {}).get("config")) for name in facts["stages"]]
    speedrun = facts["speedrun"] or {}
    if speedrun.get("preset"):
        configs.insert(0, ("speedrun preset", {"preset": speedrun["preset"], **speedrun.get("settings", {})}))
    blocks = []
    for title, config in configs:
        if config is None:
            blocks.append(("p", f"{title}: not run"))
        else:
            blocks.append(("details", title, yaml.safe_dump(config, sort_keys=False, allow_unicode=True)))
    return blocks


def compression_section(facts: dict) -> list:
    view = facts["zip_view"]
    if view is None:
        return [("p", "Not run: pre-training writes preeval/zip_view.json when it finishes.")]
    rows = [["llmlab base model", num(view["model_bpb"]), "1.000"]]
    for name, bpb in sorted(view["compressors_bpb"].items(), key=lambda kv: kv[1]):
        rows.append([name, num(bpb), num(view["model_bpb"] / bpb)])
    text = (f"Held-out bits per byte on {view['heldout_bytes']:,} bytes of {view['heldout_documents']} unseen "
            f"documents (lower is better). The model is {view['model_bytes_fp32'] / 1e6:.1f} MB of fp32 weights for "
            f"{view['train_text_bytes'] / 1e6:.1f} MB of training text: "
            f"{view['train_bytes_per_model_byte_fp32']:.2f} training bytes per model byte.")
    return [("table", ["compressor", "bits per byte", "model / this"], rows), ("p", text)]


def eval_cell(result: dict | None) -> str:
    if result is None or not isinstance(result.get("score"), (int, float)):
        return "-"
    ci = result.get("ci95")
    interval = f" [{num(ci[0])}, {num(ci[1])}]" if ci else ""
    return f"{num(result['score'])}{interval} n={result.get('n', '?')}"


def eval_section(facts: dict) -> list:
    evals = facts["evals"]
    if not evals:
        return [("p", "Not run: llmlab speedrun evaluates base, chat_sft and chat_dpo into eval/<model>/.")]
    names: list[str] = []
    for entry in evals.values():
        names += [n for n in entry["summary"].get("evals", {}) if n not in names]
    rows, about = [], []
    for name in names:
        if name == "samples":  # its score is a length, not a quality; the outputs have their own section
            continue
        results = [evals.get(folder, {}).get("summary", {}).get("evals", {}).get(name) for folder in MODELS]
        known = next(r for r in results if r)
        if not any(isinstance((r or {}).get("score"), (int, float)) for r in results):
            continue
        rows.append([f"{name} ({known.get('unit', '')})", num(known.get("chance"))] + [eval_cell(r) for r in results])
        if known.get("about"):
            about.append(f"{name}: {known['about']}")
    summaries = [e["summary"] for e in evals.values()]
    note = (f"Score [95% interval] and number of items, per model stage (- : not evaluated or not applicable to that "
            f"stage); preset {summaries[0].get('preset')}, seed {summaries[0].get('seed')}. Items and outputs: "
            f"eval/<model>/<eval>.jsonl and summary.json.")
    blocks = [("table", ["eval (unit)", "chance"] + [MODEL_LABELS[folder] for folder in MODELS], rows), ("p", note)]
    return blocks + ([("code", "\n".join(about))] if about else [])


def samples_section(facts: dict) -> list:
    blocks = []
    for folder in MODELS:
        label = MODEL_LABELS[folder]
        samples = facts["evals"].get(folder, {}).get("samples", [])
        if samples:
            blocks.append(("h3", f"{label} ({folder})"))
            blocks += [("code", f"{s.get('prompt', '')}\n-> {s.get('output', '')}") for s in samples]
    return blocks or [("p", "No samples yet (eval/<model>/samples.jsonl).")]


def assistant_section(facts: dict) -> list:
    """A few items of the assistant evaluations: the chat, the greedy answer and answers sampled at the chat's
    defaults, each marked right or wrong."""
    blocks = []
    for folder in MODELS:
        examples = facts["evals"].get(folder, {}).get("assistant", {})
        if not examples:
            continue
        blocks.append(("h3", f"{MODEL_LABELS[folder]} ({folder})"))
        for name, rows in examples.items():
            for row in rows:
                chat = "\n".join(f"{m['role']}: {m['content']}" for m in row.get("prompt", []))
                mark = {True: "right", False: "wrong"}
                sampling = row.get("sampling", {})
                lines = [f"[{name}] {chat}", f"-> greedy ({mark[bool(row.get('greedy_right'))]}): {row.get('output')}"]
                lines += [f"-> sampled, T={sampling.get('temperature')} top-k {sampling.get('top_k')} "
                          f"({mark[bool(v)]}): {s}" for s, v in zip(row.get("samples", [])[:4],
                                                                   row.get("sample_verdicts", []))]
                blocks.append(("code", "\n".join(lines)))
    return blocks or [("p", "Not run: the assistant evaluations (taught_facts, multiturn, identity) of the chat "
                            "models write their items into eval/<model>/.")]


def code_section(facts: dict) -> list:
    rows = [[r["package"], f"{r['files']:,}", f"{r['lines']:,}", f"{r['non_blank']:,}"] for r in facts["code"]]
    totals = [sum(r[k] for r in facts["code"]) for k in ("files", "lines", "non_blank")]
    rows.append(["total"] + [f"{t:,}" for t in totals])
    return [("table", ["package", "files", "lines", "non-blank lines"], rows)]


def build_sections(facts: dict, has_curves: bool) -> list[tuple[str, list]]:
    speedrun = facts["speedrun"] or {}
    intro = [("p", f"Run directory: {facts['run_dir']}"
                   + (f"; speedrun preset: {speedrun['preset']}" if speedrun.get("preset") else "")
                   + (f"; started {speedrun['started']}" if speedrun.get("started") else ""))]
    if facts["stages"].get("prefs") and facts["stages"]["prefs"]["finished"]:
        intro.append(("code", f"llmlab chat --model {RunDir(facts['run_dir']).model_of('prefs')}"))
    curves = [("image", "loss_curves.png", "loss curves")] if has_curves else [("p", "No training metrics yet.")]
    return [
        ("Summary", intro),
        ("Environment", environment_section(facts)),
        ("Stages: time and estimated cost", stages_section(facts)),
        ("Loss curves", curves),
        ("Compression: the base model as a zip file", compression_section(facts)),
        ("Evaluation", eval_section(facts)),
        ("Samples", samples_section(facts)),
        ("The assistant: greedy and sampled answers", assistant_section(facts)),
        *[(title, blocks) for title, blocks, _ in facts["labs"]],
        ("Stage configs", configs_section(facts)),
        ("Code size", code_section(facts)),
    ]

