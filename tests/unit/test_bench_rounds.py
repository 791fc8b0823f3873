"""`o2o bench --rounds`: medians of interleaved rounds, ratios taken within each round (bench/run.py)."""

from __future__ import annotations

from bench.run import combine, ratios


def round_of(**rates: float | None) -> list[dict]:
    """One round's results: rates by 'contestant_layout', e.g. o2o_pipeline_batched=13_000."""
    results = []
    for key, rate in rates.items():
        contestant, _, layout = key.rpartition("_")
        results.append({"contestant": contestant, "layout": layout, "events_per_s": rate, "round_tag": key + str(rate)})
    return results


def full_round(pipeline: float, quix: float, naive: float = 2_000.0, raw: float = 70_000.0) -> list[dict]:
    return round_of(raw_limit_single=raw, naive_faust_single=naive, quix_single=quix, o2o_pipeline_single=pipeline,
                    raw_limit_batched=raw, naive_faust_batched=naive, quix_batched=quix,
                    o2o_pipeline_batched=pipeline)


def result_of(combined: dict, contestant: str, layout: str) -> dict:
    return next(r for r in combined["results"] if r["contestant"] == contestant and r["layout"] == layout)


def test_one_round_is_reported_as_it_ran():
    only = full_round(pipeline=12_000, quix=5_000)
    combined = combine([only])

    assert combined["ratios"] == ratios(only) == combined["ratios_by_round"][0]
    assert combined["ratios"]["single"]["pipeline/quix"] == 2.4
    assert result_of(combined, "quix", "single")["events_per_s"] == 5_000
    assert result_of(combined, "quix", "single")["rounds_events_per_s"] == [5_000]


def test_each_contestant_is_its_median_run_and_every_round_is_kept_in_order():
    rounds = [full_round(pipeline=9_000, quix=5_000), full_round(pipeline=15_000, quix=6_000),
              full_round(pipeline=12_000, quix=4_000)]
    combined = combine(rounds)

    pipeline = result_of(combined, "o2o_pipeline", "batched")
    assert pipeline["events_per_s"] == 12_000
    assert pipeline["round_tag"] == "o2o_pipeline_batched12000"  # the whole median run, not a mix
    assert pipeline["rounds_events_per_s"] == [9_000, 15_000, 12_000]
    assert result_of(combined, "quix", "single")["events_per_s"] == 5_000


def test_a_ratio_is_the_median_of_the_rounds_own_not_a_ratio_of_medians():
    # The machine slowed everyone in round 2; the medians (12,000 and 5,000) come from different
    # rounds and would make 2.4x, a ratio no round showed.
    rounds = [full_round(pipeline=15_000, quix=5_000), full_round(pipeline=9_000, quix=3_000),
              full_round(pipeline=12_000, quix=6_000)]
    combined = combine(rounds)

    assert [r["single"]["pipeline/quix"] for r in combined["ratios_by_round"]] == [3.0, 3.0, 2.0]
    assert combined["ratios"]["single"]["pipeline/quix"] == 3.0
    assert combined["ratios"]["batched"]["pipeline/naive_faust_single"] == 6.0  # 12,000 / 2,000


def test_an_even_number_of_rounds_reports_the_lower_middle_run():
    rounds = [full_round(pipeline=10_000, quix=5_000), full_round(pipeline=14_000, quix=5_000)]
    combined = combine(rounds)

    assert result_of(combined, "o2o_pipeline", "single")["events_per_s"] == 10_000
    assert combined["ratios"]["single"]["pipeline/quix"] == 2.4  # median of 2.0 and 2.8


def test_a_round_without_a_rate_leaves_that_ratio_to_the_other_rounds():
    broken = full_round(pipeline=12_000, quix=5_000)
    for result in broken:
        if result["contestant"] == "quix":
            result["events_per_s"] = None
    combined = combine([broken, full_round(pipeline=10_000, quix=5_000), full_round(pipeline=16_000, quix=5_000)])

    assert [r["single"]["pipeline/quix"] for r in combined["ratios_by_round"]] == [None, 2.0, 3.2]
    assert combined["ratios"]["single"]["pipeline/quix"] == 2.6


def test_the_text_view_shows_the_median_and_every_round(monkeypatch):
    import bench.run
    from typer.testing import CliRunner

    from pipeline.cli import app

    def three_rounds(events, rate, seconds, report, rounds):
        by_round = [full_round(pipeline=15_000, quix=5_000), full_round(pipeline=9_000, quix=3_000),
                    full_round(pipeline=12_000, quix=6_000)][:rounds]
        paced = {"achieved_rate": 2_000.0, "trigger_latency_ms": {"p50": 80, "p99": 160, "count": 300},
                 "clickhouse_freshness_ms": {"p50": 700, "p99": 1_400}}
        return {"events": events, "rounds": rounds, **combine(by_round), "paced": paced}

    monkeypatch.setattr(bench.run, "run_bench", three_rounds)
    result = CliRunner().invoke(app, ["bench", "--rounds", "3"])

    assert result.exit_code == 0, result.output
    assert "o2o_pipeline   single       12,000  (15,000, 9,000, 12,000)" in result.output
    assert "pipeline/quix 3.0x" in result.output
    assert CliRunner().invoke(app, ["bench", "--rounds", "0"]).exit_code == 2
