"""The verifier: a value head on a trunk, saved and loaded with its task, trained on labelled attempts until it tells
right solutions from wrong ones on held-out problems; exact resume comes with the training loop."""

from __future__ import annotations

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.layout import StageDir
from llmlab.model.config import ModelConfig
from llmlab.model.folder import save_model_folder
from llmlab.model.transformer import Transformer
from llmlab.model.verifier import Verifier, load_verifier, save_verifier
from llmlab.tasks import get_task
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.train.verifier import VerifierConfig, VerifierExample, batch, final_values, render, train_verifier


@pytest.fixture()
def reasoner(tmp_path, tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=128, d_model=32, n_heads=2)
    folder = tmp_path / "reasoner"
    save_model_folder(folder, Transformer(cfg, seed=2), tiny_tokenizer, {"stage": "sft"})
    return folder, tok


def test_values_read_every_position_and_round_trip(reasoner, tmp_path):
    folder, tok = reasoner
    from llmlab.model.loading import load_model

    lm, tok, _ = load_model(folder)
    verifier = Verifier(lm)
    ids = torch.randint(0, tok.vocab_size, (2, 9))
    assert verifier(ids).shape == (2, 9) and torch.all(verifier(ids) == 0)  # the head starts at even odds
    with torch.no_grad():
        verifier.head.weight.normal_()
    save_verifier(tmp_path / "v", verifier, tok, {"task": "addition"})
    again, _, info = load_verifier(tmp_path / "v", task="addition")
    assert info["stage"] == "verifier" and torch.allclose(again(ids), verifier(ids))
    with pytest.raises(LlmlabError, match="a verifier for task 'addition', not for 'countdown'"):
        load_verifier(tmp_path / "v", task="countdown")
    with pytest.raises(LlmlabError, match="not a verifier folder"):
        load_verifier(folder)


def test_the_final_value_is_read_at_the_last_solution_token(reasoner):
    _, tok = reasoner
    task = get_task("addition")
    p = task.problems(2, "test", 1)[0]
    rows = [render(tok, task, VerifierExample(p, task.solution(p), True), True, 128),
            render(tok, task, VerifierExample(p, "#### 1", False), True, 128)]
    ids, labels, mask = batch(rows, tok.pad_id)
    assert labels.tolist() == [1.0, 0.0] and mask[1].sum() < mask[0].sum()
    values = torch.arange(ids.numel(), dtype=torch.float).view(ids.shape)
    assert final_values(values, mask).tolist() == [values[0, len(rows[0][0]) - 1], values[1, len(rows[1][0]) - 1]]


@pytest.mark.slow  # ~15 s: 60 steps of a tiny verifier
def test_a_trained_verifier_tells_right_from_wrong_on_held_out_problems(reasoner, tmp_path):
    folder, tok = reasoner
    task = get_task("addition")
    examples = []
    for p in task.problems(2, "train", 300):  # wrong attempts that skip the work: a pattern a tiny trunk can see
        examples += [VerifierExample(p, task.solution(p), True), VerifierExample(p, "#### 0", False)]
    cfg = VerifierConfig(epochs=4, batch_size=32, lr=3e-3, val_share=0.2)
    work = StageDir(tmp_path / "work")
    summary = train_verifier(work, tmp_path / "verifier", folder, task, examples, cfg)
    assert summary["val"] > 50 and summary["val_accuracy"] > 0.9 and summary["val_loss"] < 0.3, summary
    assert train_verifier(work, tmp_path / "verifier", folder, task, examples, cfg, resume=True)["skipped"]
    with pytest.raises(LlmlabError, match="right and wrong attempts"):
        train_verifier(StageDir(tmp_path / "w2"), tmp_path / "v2", folder, task,
                       [e for e in examples if e.right], cfg)


def test_verifier_scores_are_its_final_values_and_cost_one_read(reasoner):
    from llmlab.engine.thinking import Attempt, solution_ids, verifier_scores
    from llmlab.model.flops import scoring_flops
    from llmlab.model.loading import load_model

    folder, tok = reasoner
    lm, tok, _ = load_model(folder)
    verifier = Verifier(lm)
    with torch.no_grad():
        verifier.head.weight.normal_()
    task = get_task("countdown")
    p = task.problems(3, "test", 1)[0]
    attempts = [Attempt(text, None, False, 0, 0.0, 0.0) for text in (task.solution(p), "#### 1", "no idea")]
    scores, flops = verifier_scores(verifier, tok, task, p, attempts, batch_size=2)
    for attempt_, score in zip(attempts, scores):
        ids, _ = solution_ids(tok, task, p, attempt_.text, True, 128)
        with torch.no_grad():
            assert score == pytest.approx(float(verifier(torch.tensor([ids]))[0, -1]), abs=1e-5)
    assert flops == sum(scoring_flops(lm.cfg, len(solution_ids(tok, task, p, a.text, True, 128)[0])) for a in attempts)
