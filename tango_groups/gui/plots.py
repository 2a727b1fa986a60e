"""Live plots of the device's channel attributes (pyqtgraph).

One curve per scalar channel attribute (a SPECTRUM: the last ``ChannelWindow`` points of the
channel in the current sequence), redrawn on each change event; channels of array points (IMAGE
attributes) show their point count only. A channel that the sequence did not declare is empty.
"""

from __future__ import annotations

import numpy
import pyqtgraph
from PyQt5.QtWidgets import QLabel, QVBoxLayout, QWidget

__all__ = ["ChannelPlots"]

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


class ChannelPlots(QWidget):
    """The plot of the channels ``scalar`` and a line counting the points of ``arrays``."""

    def __init__(self, scalar: list[str], arrays: list[str], parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pyqtgraph.PlotWidget(background="w")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "point (last of the sequence)")
        self.plot.addLegend(offset=(10, 10))
        layout.addWidget(self.plot)
        self.curves = {
            name: self.plot.plot([], [], name=name, symbol="o", symbolSize=5,
                                 pen=pyqtgraph.mkPen(COLOURS[i % len(COLOURS)], width=2),
                                 symbolBrush=COLOURS[i % len(COLOURS)])
            for i, name in enumerate(scalar)}
        self.values: dict[str, numpy.ndarray] = {}
        self.arrays = QLabel(self)
        self.arrays.setVisible(bool(arrays))
        layout.addWidget(self.arrays)
        self._array_counts = dict.fromkeys(arrays, 0)
        self._show_counts()

    @property
    def names(self) -> list[str]:
        return [*self.curves, *self._array_counts]

    def set_value(self, name: str, value: object) -> None:
        """The new value of channel attribute ``name`` (a change event)."""
        points = numpy.asarray(value if value is not None else [])
        self.values[name] = points
        if name in self.curves:
            y = points.astype(float).ravel()
            self.curves[name].setData(numpy.arange(len(y)), y)
        elif name in self._array_counts:
            self._array_counts[name] = len(points)
            self._show_counts()

    def _show_counts(self) -> None:
        self.arrays.setText("Channels of array points: " + ", ".join(
            f"{name} ({count} points)" for name, count in self._array_counts.items()))
