"""descent.bench reads the benchmark's Markdown tables back; descent.plots draws them."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from descent.bench import as_number, find_results, read_section, read_table, write_section
from descent.plots import plot_step_times

TEXT = """# Benchmark results

## Book build

| build | seconds |
|---|---:|
| clean | 80 |

## Optimizer step

Some prose with a | pipe.

| optimizer | layout | floor | torch loop | default / torch loop |
|---|---|---:|---:|---:|
| Adam | 1 × tensor | 0.57 | 2.36 | 1.05× |
| SGD-momentum | 200 × tensors | 0.41 | 1.10 | 0.98× |

Machine: a CPU.

## Later section

| a | b |
|---|---|
| 1 | 2 |
"""


def test_read_table_returns_the_rows_of_the_named_section_only(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(TEXT)
    rows = read_table(path, "## Optimizer step")
    assert [row["optimizer"] for row in rows] == ["Adam", "SGD-momentum"]
    assert rows[0]["layout"] == "1 × tensor"
    assert as_number(rows[0]["torch loop"]) == 2.36
    assert as_number(rows[1]["default / torch loop"]) == 0.98
    assert read_table(path, "## Book build") == [{"build": "clean", "seconds": "80"}]


def test_read_table_is_none_when_the_numbers_are_not_there_yet(tmp_path):
    path = tmp_path / "RESULTS.md"
    assert read_table(path, "## Optimizer step") is None            # no file
    assert read_table(None, "## Optimizer step") is None
    path.write_text("# Benchmark results\n\n## Optimizer step\n\nNot run yet.\n\n## Other\n"
                    "| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert read_table(path, "## Optimizer step") is None            # section without table
    assert read_table(path, "## Missing") is None


def test_find_results_searches_upwards(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "RESULTS.md").write_text(TEXT)
    (tmp_path / "book").mkdir()
    assert find_results(tmp_path / "book") == tmp_path / "benchmarks" / "RESULTS.md"
    assert find_results(tmp_path / "book", name="nowhere.md") is None


def test_as_number_names_a_bad_cell():
    with pytest.raises(ValueError, match="'n/a'"):
        as_number("n/a")


def test_plot_step_times_draws_one_bar_per_path_and_the_floors():
    ax = plot_step_times({"Adam": {"loop": 2.0, "fused": 1.0}, "SGD": {"loop": 1.5}},
                         floors={"Adam": 0.5, "SGD": 0.4})
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == [2.0, 1.0, 1.5]
    floor_lines = [line for line in ax.get_lines() if line.get_label() == "bandwidth floor"]
    assert len(floor_lines) == 1 and floor_lines[0].get_xdata()[0] == 0.5
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Adam", "SGD"]
    plt.close("all")


def test_read_section_stops_at_the_next_heading_of_the_same_level(tmp_path):

    path = tmp_path / "RESULTS.md"
    path.write_text(TEXT.replace("## Later section", "## Optimizer step — notes"))
    text = read_section(path, "## Optimizer step")
    assert text.startswith("Some prose") and text.rstrip().endswith("Machine: a CPU.")
    assert read_section(path, "## Optimizer step — notes").startswith("| a | b |")
    assert read_section(path, "## Missing") is None and read_section(None, "## X") is None


def test_write_section_replaces_its_own_section_and_keeps_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## A\n\nold\n\n## B\n\nkept | 1\n")
    write_section(path, "## A\n\nnew\n")
    write_section(path, "## C\n\nappended\n")
    assert read_section(path, "## A") == "new"
    assert read_section(path, "## B") == "kept | 1"
    assert read_section(path, "## C") == "appended"
    assert path.read_text().count("## A") == 1


def test_interleaved_times_calls_each_path_once_per_round_in_a_shuffled_order():
    from descent.bench import interleaved_times
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    clock = iter(range(1000))
    times = interleaved_times(steps, rounds=6, warmup=2, seed=1,
                              timer=lambda fn: (fn(), next(clock))[1])
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]            # the warm-up, in order
    rounds = [calls[6 + 3 * i: 9 + 3 * i] for i in range(6)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)      # one of each per round
    assert len({tuple(r) for r in rounds}) > 1                    # not always the same order
    assert {k: len(v) for k, v in times.items()} == {"a": 6, "b": 6, "c": 6}


def test_paired_ratio_is_the_median_of_the_ratios_within_a_round():
    from descent.bench import paired_ratio
    assert paired_ratio([2.0, 3.0, 100.0], [1.0, 3.0, 10.0]) == 2.0
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])
