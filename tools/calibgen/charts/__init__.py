"""Charts: bar (vertical/horizontal), line (one or two series), pie and scatter plots."""

from __future__ import annotations

import random

from .bar import bar_chart
from .line import line_chart
from .pie import pie_chart
from .scatter import scatter_plot


def chart(rng: random.Random, index: int):
    # cycle the four chart types so every split gets all of them
    return [bar_chart, line_chart, pie_chart, scatter_plot][index % 4](rng)
