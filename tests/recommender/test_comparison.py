from recommender.comparison import compare_rows, metric_name, metric_value


def test_key_metric_is_found_under_its_at_k_name():
    metrics = {"precision@10": 0.2, "recall@10": 0.3, "auc": 0.8}
    assert metric_name("precision_at_k", metrics) == "precision@10"
    assert metric_value("auc", metrics) == 0.8
    assert metric_value("ndcg_at_k", metrics) is None


def test_rows_carry_deltas_against_the_baseline_in_metric_order():
    rows = compare_rows(
        [{"recall@10": 0.3, "precision@10": 0.1}, {"recall@10": 0.3, "precision@10": 0.15}],
        baseline={"precision@10": 0.1, "recall@10": 0.3},
        metrics=True,
    )
    assert [r.name for r in rows] == ["precision@10", "recall@10"]
    precision = rows[0]
    assert precision.differs and precision.cells[0].delta == 0
    assert round(precision.cells[1].delta, 6) == 0.05 and round(precision.cells[1].relative) == 50
    assert precision.cells[1].delta_text == "▲ +0.05 (+50.0%)"
    assert not rows[1].differs


def test_non_numbers_have_no_delta():
    rows = compare_rows([{"loss": "warp"}, {"loss": "bpr"}], baseline={"loss": "warp"})
    assert rows[0].differs and rows[0].cells[1].delta is None and rows[0].cells[1].text == "bpr"
