"""A user's own fine-tuning data in the formats it comes in: JSONL, a JSON array, Parquet, a folder saved by
`datasets`; Alpaca, ShareGPT (with a system field), messages, prompt/completion; TRL, UltraFeedback-binarized and
Anthropic HH preferences. Each fixture is written here; an SFT run on an Alpaca JSON array and a DPO run on HH
transcripts train on them."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmlab.cli import main
from llmlab.data.records import open_records
from llmlab.errors import LlmlabError
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.tokenizer.conversations import check_file, load_preference_file, load_sft_file
from llmlab.train.prefs import PrefsConfig, prefs
from llmlab.train.settings import Bookkeeping
from llmlab.train.sft import SFTConfig, sft

FACTS = [("red", "apple"), ("green", "grass"), ("blue", "sky"), ("white", "snow"), ("black", "night"), ("yellow", "sun")]
ALPACA = [{"instruction": f"What is {c}?", "input": "", "output": f"The {t}."} for c, t in FACTS]
HH = [{"chosen": f"\n\nHuman: What is {c}?\n\nAssistant: The {t}.",
       "rejected": f"\n\nHuman: What is {c}?\n\nAssistant: I do not know."} for c, t in FACTS]
QUIET = Bookkeeping(log_every=1, eval_every=0)


def write_array(path, rows) -> str:
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return str(path)


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_alpaca_in_a_json_array_with_input_and_system(tiny_tokenizer, tmp_path):
    tok = Tokenizer.load(tiny_tokenizer)
    rows = [{"instruction": "Summarise.", "input": "A long text.", "output": "Short."},
            {"instruction": "Say hi.", "input": "", "output": "Hi!", "system": "Be brief."}]
    records, summary = load_sft_file(write_array(tmp_path / "alpaca_data.json", rows), tok)
    assert summary["format"] == "json-array" and summary["shapes"] == {"alpaca": 2}
    assert records[0]["messages"] == [{"role": "user", "content": "Summarise.\n\nA long text."},
                                      {"role": "assistant", "content": "Short."}]
    assert records[1]["messages"][0] == {"role": "system", "content": "Be brief."}  # the empty input is left out
    assert records[1]["messages"][1] == {"role": "user", "content": "Say hi."} and records[1]["loss_from"] == 2


def test_every_record_format_gives_the_same_conversations(tiny_tokenizer, tmp_path):
    import datasets

    rows = [{"system": "Be brief.", "conversations": [{"from": "human", "value": f"What is {c}?"},
                                                     {"from": "gpt", "value": f"The {t}."}]} for c, t in FACTS]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "chats.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:2])}
                         ).save_to_disk(str(tmp_path / "dict"))
    files = {"jsonl": write_jsonl(tmp_path / "chats.jsonl", rows), "json-array": write_array(tmp_path / "c.json", rows),
             "parquet": str(tmp_path / "chats.parquet"), "hf-saved": str(tmp_path / "saved")}
    loaded = {fmt: load_sft_file(path)[0] for fmt, path in files.items()}
    assert {fmt: open_records(path).format for fmt, path in files.items()} == {fmt: fmt for fmt in files}
    assert all(records == loaded["jsonl"] for records in loaded.values())
    assert loaded["jsonl"][0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert len(load_sft_file(f"{tmp_path / 'dict'}@test")[0]) == 2
    assert load_sft_file(f"parquet:{tmp_path}")[0] == loaded["jsonl"]  # data prepare's syntax: a folder of Parquet
    assert open_records(f"jsonl:{files['jsonl']}").format == "jsonl"
    with pytest.raises(LlmlabError, match="splits train, test; name one"):
        load_sft_file(tmp_path / "dict")


def test_preference_shapes_trl_ultrafeedback_and_hh(tiny_tokenizer, tmp_path):
    ultra = [{"prompt": "What is red?", "chosen": [{"role": "user", "content": "What is red?"},
                                                    {"role": "assistant", "content": "The apple."}],
              "rejected": [{"role": "user", "content": "What is red?"}, {"role": "assistant", "content": "No."}]}]
    hh_multi = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: What is red?\n\nAssistant: The apple.",
                "rejected": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: What is red?\n\nAssistant: Blue."}
    trl = {"prompt": "What is red?", "chosen": "The apple.", "rejected": "No."}
    pairs, summary = load_preference_file(write_jsonl(tmp_path / "p.jsonl", [*ultra, hh_multi, trl]))
    assert summary["shapes"] == {"chosen/rejected chats": 1, "hh transcripts": 1, "prompt/chosen/rejected": 1}
    assert pairs[0] == {"prompt_messages": [{"role": "user", "content": "What is red?"}], "chosen": "The apple.",
                        "rejected": "No."}
    assert pairs[1]["prompt_messages"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                                           {"role": "user", "content": "What is red?"}]
    assert (pairs[1]["chosen"], pairs[1]["rejected"]) == ("The apple.", "Blue.")
    _, bad = load_preference_file(write_jsonl(tmp_path / "b.jsonl", [trl, {"chosen": "Human: x", "rejected": "y"}]))
    assert bad["problems"] == [f"{tmp_path / 'b.jsonl'}:2: 'rejected': not an HH transcript (it must start with "
                               f"'\\n\\nHuman: ')"]


def test_a_mixed_up_file_names_its_bad_records_and_the_rest_trains(sft_run, tmp_path):
    rows = [*ALPACA[:3], {"question": "What is blue?", "answer": "The sky."}, *ALPACA[3:], 7]
    path = write_array(tmp_path / "mixed.json", rows)
    records, summary = load_sft_file(path)
    assert len(records) == 6 and summary["skipped"] == {"missing_field": 1, "malformed_json": 1}
    assert summary["problems"][0].startswith(f"{path}:17: expected a 'messages'")  # the line its record starts on
    assert summary["problems"][1] == f"{path}:36: expected a JSON object, got int"
    result = sft(sft_run, SFTConfig(train_files=[path, write_jsonl(tmp_path / "more.jsonl", [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}])],
        epochs=1, batch_size=7, bookkeeping=QUIET))
    assert result["steps"] == 1  # 6 Alpaca records + 1 messages record: one batch of 7


def test_sft_on_an_alpaca_array_learns_it(sft_run, tmp_path):
    path = write_array(tmp_path / "alpaca_data.json", ALPACA)
    cfg = SFTConfig(train_files=[path], epochs=40, batch_size=6, muon_lr=0.02, embed_lr=0.05, lr=0.004,
                    bookkeeping=QUIET)
    sft(sft_run, cfg)
    losses = [json.loads(line)["loss"] for line in (sft_run / "sft" / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses[-1] < 0.3 * losses[0]


def test_dpo_on_hh_transcripts_prefers_the_chosen(sft_run, tmp_path):
    import shutil

    shutil.copytree(sft_run / "base", sft_run / "chat_sft")
    path = write_jsonl(tmp_path / "hh.jsonl", HH)
    summary = prefs(sft_run, PrefsConfig(train_files=[path], val_files=[path], epochs=30, batch_size=6, beta=0.5,
                                         rpo_alpha=0.0, muon_lr=0.02, embed_lr=0.02, lr=0.001, bookkeeping=QUIET))
    assert summary["after"]["reward_accuracy"] == 1.0 and summary["after"]["reward_margin"] > 0


def test_data_check_reports_format_problems_and_lengths(sft_run, tmp_path, capsys):
    alpaca = write_array(tmp_path / "alpaca_data.json", [*ALPACA, {"instruction": "", "output": "x"}])
    hh = write_jsonl(tmp_path / "hh.jsonl", HH)
    tok = Tokenizer.load(sft_run / "base" / "tokenizer")
    summary = check_file(alpaca, tok, context=8)
    assert summary["kind"] == "SFT" and summary["kept"] == 6 and summary["skipped"] == {"empty_content": 1}
    assert summary["tokens"]["over_context"] == 6 and summary["tokens"]["min"] <= summary["tokens"]["max"]
    assert main(["data", "check", alpaca, hh, "--model", str(sft_run / "base")]) == 0
    out = capsys.readouterr().out
    assert "alpaca_data.json: json-array, SFT records: 6 usable (6 alpaca), 1 skipped" in out
    assert "alpaca_data.json:32: instruction[0]: empty user message" in out
    assert "hh.jsonl: jsonl, preference records: 6 usable (6 hh transcripts), 0 skipped" in out
    assert "longer than the model's context of 48 tokens" in out
    assert main(["data", "check", str(tmp_path / "nothing.json"), "--model", str(sft_run / "base")]) == 2
    assert "nothing.json: no such file or folder" in capsys.readouterr().out
