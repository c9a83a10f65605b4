"""Tables: the data of tabular models and what the tabular explainers share.

    data.py          CSV reading, row selection, rows checked against the model, class names and targets
    background.py    Background rows and their summaries (k-means, sample)
    explanation.py   TabularExplanation and its CSV/JSON/PNG files
    plots.py         bar_chart, waterfall

The explainers themselves are methods: methods/kernel_shap.py (``explain_table``) and
methods/lime_tabular.py.
"""

from .background import Background, summarise
from .data import class_names, model_width, parse_rows, read_table, resolve_row_targets, table_rows
from .explanation import TabularExplanation, output_paths
from .plots import bar_chart, waterfall

__all__ = [
    "Background", "TabularExplanation", "bar_chart", "class_names", "model_width", "output_paths", "parse_rows",
    "read_table", "resolve_row_targets", "summarise", "table_rows", "waterfall",
]
