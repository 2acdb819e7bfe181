"""One channel's raw values as a table, positive cells highlighted (the tutorial's Styler)."""

from __future__ import annotations

import html

import numpy as np

from vizcallbacks.arrays import as_float_array

__all__ = ["activation_table_html", "activation_table_markdown"]


def activation_table_html(values: np.ndarray, title: str = "", decimals: int = 2) -> str:
    """``values`` ``(H, W)`` as a standalone HTML table; cells > 0 get a green background."""
    grid = as_float_array(values, "values", 2, "(H, W)")
    rows = []
    for row in grid:
        cells = "".join(
            f'<td class="pos">{v:.{decimals}f}</td>' if v > 0 else f"<td>{v:.{decimals}f}</td>"
            for v in row
        )
        rows.append(f"<tr>{cells}</tr>")
    style = (
        "table{border-collapse:collapse;font:11px monospace}"
        "td{border:1px solid #ddd;padding:2px 4px;text-align:right}"
        "td.pos{background:#9be39b}"
    )
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head>"
        f"<body><table>{caption}{''.join(rows)}</table></body></html>"
    )


def activation_table_markdown(values: np.ndarray, decimals: int = 2) -> str:
    """``values`` ``(H, W)`` as a markdown table (TensorBoard's text tab); positives in bold."""
    grid = as_float_array(values, "values", 2, "(H, W)")
    header = "| " + " | ".join(str(c) for c in range(grid.shape[1])) + " |"
    rule = "|" + "---|" * grid.shape[1]
    body = [
        "| "
        + " | ".join(f"**{v:.{decimals}f}**" if v > 0 else f"{v:.{decimals}f}" for v in row)
        + " |"
        for row in grid
    ]
    return "\n".join([header, rule, *body])
