"""The safety report's plots say the level their intervals were computed at."""

from __future__ import annotations


def test_the_plot_label_names_the_intervals_level(tmp_path, monkeypatch):
    import matplotlib.axes

    from curate.evaluate.safety import write_plots

    labels: list[str] = []
    original = matplotlib.axes.Axes.set_xlabel
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xlabel",
                        lambda self, text, *a, **k: (labels.append(text), original(self, text, *a, **k))[1])
    group = {"x": {"rate": 0.5, "low": 0.3, "high": 0.7}}
    write_plots({"by_style": group, "by_topic": group}, tmp_path, 0.9)
    assert labels == ["attack success rate (Wilson 90% interval)"] * 2
