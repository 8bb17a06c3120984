import matplotlib

matplotlib.use("Agg")

from lfm_helpers.liveplot import LivePlot, in_notebook


def test_live_plot_updates_series_in_place():
    plot = LivePlot("loss", "step", "loss")
    plot.update({"train": ([1, 2], [3.0, 2.0])})
    plot.update({"train": ([1, 2, 3], [3.0, 2.0, 1.5]), "val": ([3], [1.8])})
    assert set(plot.lines) == {"train", "val"}
    assert list(plot.lines["train"].get_xdata()) == [1, 2, 3]
    assert len(plot.ax.get_lines()) == 2  # redrawn, not re-plotted
    assert plot.ax.get_ylim()[0] <= 1.5


def test_not_a_notebook_here():
    assert in_notebook() is False
