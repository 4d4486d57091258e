import numpy as np
import pytest

from lowdensity.metrics.cost import acceptance_rate, collection_cost, cost_table, render_table


def test_cost_formula_hand_computed():
    assert acceptance_rate(np.array([1, 2, 3, 4, 5.0]), 2, 4) == pytest.approx(0.4)
    assert collection_cost(5000, 0.25, 2.0) == pytest.approx(40000.0)
    assert collection_cost(10, 0.0, 1.0) == float("inf")


def test_cost_table_rows_and_speedup():
    real = np.arange(100.0)  # quantiles 0.5, 0.9 → 49.5, 89.1
    baseline = np.concatenate([np.full(90, 10.0), np.full(10, 95.0)])  # 10% in the top range
    guided = np.concatenate([np.full(50, 60.0), np.full(50, 95.0)])  # 50% in the top range
    table = cost_table(
        real, {"baseline": (baseline, 1.0), "guided": (guided, 2.0)}, [0.5, 0.9, 1.0], num_images=100, num_resamples=200
    )
    top = table[table["range"] == 1].set_index("sampler")
    assert top.loc["baseline", "acceptance_rate"] == pytest.approx(0.1)
    assert top.loc["baseline", "cost_seconds"] == pytest.approx(1000.0)
    assert top.loc["guided", "cost_seconds"] == pytest.approx(400.0)
    assert top.loc["guided", "speedup"] == pytest.approx(2.5)
    assert top.loc["guided", "speedup_low"] <= 2.5 <= top.loc["guided", "speedup_high"]
    assert np.isinf(top.loc["baseline", "hardness_high"])
    middle = table[table["range"] == 0].set_index("sampler")
    assert middle.loc["baseline", "acceptance_rate"] == 0 and np.isinf(middle.loc["baseline", "cost_seconds"])
    text = render_table(table, 100)
    assert "guided" in text and "×2.50" in text


def test_bootstrap_interval_covers_the_true_rate():
    """95% intervals of the acceptance rate cover the true rate in about 95% of replications."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=20000)
    assert np.quantile(real, 0.9) == pytest.approx(1.2816, abs=0.05)  # so the top range holds 10% of N(0, 1)
    true_rate = 0.1
    covered = []
    for rep in range(80):
        samples = rng.normal(size=400)
        table = cost_table(real, {"baseline": (samples, 1.0)}, [0.9, 1.0], 10, num_resamples=200, seed=rep)
        row = table.iloc[0]
        covered.append(row["acceptance_low"] <= true_rate <= row["acceptance_high"])
    assert 0.85 <= np.mean(covered) <= 1.0


def test_stage_costs_sum_jobs_per_rule_and_span_the_run(tmp_path):
    """Per rule: summed wall-clock and CPU time, the longest job, the largest peak memory; the run's
    wall-clock is first start to last end (jobs side by side count once)."""
    import os

    from lowdensity.stages.stage_costs import read_benchmarks, stage_table

    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    jobs = {
        ("train_ddpm", "train_ddpm"): (100.0, 190.0, 900.0, 1100.0),  # (wall s, cpu s, rss MB, end time)
        ("sample_baseline", "0"): (40.0, 70.0, 300.0, 1150.0),
        ("sample_baseline", "1"): (50.0, 90.0, 350.0, 1160.0),
    }  # ran beside shard 0
    for (rule, job), (wall, cpu, rss, end) in jobs.items():
        path = tmp_path / rule / f"{job}.tsv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(header + f"{wall}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")
        os.utime(path, (end, end))
    table, span = stage_table(read_benchmarks(tmp_path))
    rows = table.set_index("rule")
    assert list(table["rule"]) == ["train_ddpm", "sample_baseline"]  # slowest first
    assert rows.loc["sample_baseline", "jobs"] == 2 and rows.loc["sample_baseline", "wall_s"] == 90.0
    assert rows.loc["sample_baseline", "longest_job_s"] == 50.0 and rows.loc["sample_baseline", "cpu_s"] == 160.0
    assert rows.loc["sample_baseline", "max_rss_mb"] == 350.0
    assert span == 1160.0 - (1100.0 - 100.0)  # first start 1000, last end 1160


def test_stage_costs_without_benchmarks_say_what_to_run(tmp_path):
    from lowdensity.stages.stage_costs import read_benchmarks

    with pytest.raises(FileNotFoundError, match="run the pipeline first"):
        read_benchmarks(tmp_path)
