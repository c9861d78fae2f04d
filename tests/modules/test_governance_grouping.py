"""The automatic grouping of needs, measured on the evaluation set written for it
(src/kiban/modules/governance/data/needs_eval.csv, 211 descriptions in 21 known groups). The
floors are below the measured figures (bench/governance_grouping.py prints them) so that a change
that makes grouping worse fails here."""

from __future__ import annotations

from kiban.modules.governance import grouping


def test_the_evaluation_set_has_at_least_200_needs_in_known_groups() -> None:
    data = grouping.load_eval()
    assert len(data) >= 200
    assert len({g for g, _ in data}) >= 20


def test_grouping_finds_the_known_groups_with_pairwise_precision_and_recall_above_the_floor() -> None:
    scores = grouping.evaluate()
    assert scores.precision >= 0.50, scores
    assert scores.recall >= 0.30, scores
    assert scores.f1 >= 0.40, scores


def test_grouping_by_chance_would_not_pass_the_floor() -> None:
    data = grouping.load_eval()
    truth = [g for g, _ in data]
    everything_together = grouping.pairwise_scores(truth, [0] * len(truth))
    all_apart = grouping.pairwise_scores(truth, list(range(len(truth))))
    assert everything_together.precision < 0.1 and all_apart.recall == 0.0


def test_the_same_task_in_different_words_is_more_similar_than_different_tasks() -> None:
    texts = ["体育館や公民館の予約を電話で受け付けている。", "公共施設の予約をオンラインでしたい。",
             "粗大ごみの収集申込を電話で受け付けている。"]
    vectoriser = grouping.Vectoriser.fit(texts)
    a, b, c = (vectoriser.vector(t) for t in texts)
    assert grouping.cosine(a, b) > grouping.cosine(a, c)


def test_normalise_folds_full_width_characters_and_drops_punctuation() -> None:
    assert grouping.normalise("ＡＩ－ＯＣＲ、です。").split() == grouping.normalise("ai ocr です").split() == ["ai", "ocr", "です"]
