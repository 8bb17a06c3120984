"""A training plot that redraws in place in a notebook (after d2l's ``ProgressBoard``).

In Jupyter the figure is displayed once and then updated through its display handle, so a
long run shows one live plot instead of hundreds of stale ones, and the executed notebook keeps
the final picture. Outside a notebook (scripts, tests) the plot is still drawn, never shown.
"""

from __future__ import annotations

import matplotlib.pyplot as plt


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where ``display`` updates render)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LivePlot:
    """Named line series on one axes; :meth:`update` replaces their data and redraws."""

    def __init__(self, title: str, xlabel: str, ylabel: str, *, logy: bool = False, figsize=(7, 3.5)):
        self.fig, self.ax = plt.subplots(figsize=figsize)
        self.ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        if logy:
            self.ax.set_yscale("log")
        self.lines: dict[str, plt.Line2D] = {}
        self._handle = None
        if in_notebook():
            from IPython.display import display

            self._handle = display(self.fig, display_id=True)
        plt.close(self.fig)  # keep Jupyter's inline backend from drawing it a second time

    def update(self, series: dict[str, tuple[list[float], list[float]]]) -> None:
        """Set each series' (x, y) data, rescale, and redraw in place."""
        for name, (xs, ys) in series.items():
            if name not in self.lines:
                (self.lines[name],) = self.ax.plot([], [], label=name)
                self.ax.legend(loc="upper right")
            self.lines[name].set_data(xs, ys)
        self.ax.relim()
        self.ax.autoscale_view()
        if self._handle is not None:
            self._handle.update(self.fig)
