"""Small HTML builders for the self-contained report page (inline CSS; scripts from assets/)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pandas as pd

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1em 2em; color: #222; background: #fff; }
h1 { border-bottom: 3px solid #3b6ea5; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
nav a { margin-right: 1em; }
table.data { border-collapse: collapse; font-size: 13px; margin: .5em 0 1em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
table.data th { background: #eef3f8; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid #eee; padding: .4em; background: #fafafa; }
figure img { max-width: 560px; height: auto; display: block; }
figcaption { font-size: 12px; color: #555; margin-top: .3em; }
p.missing, p.notdrawn { background: #fff4e0; border-left: 4px solid #e6a23c;
                        padding: .5em 1em; }
.controls { margin: .5em 0; font-size: 14px; }
.controls label { margin-right: 1.5em; }
.plots { display: flex; flex-wrap: wrap; gap: .5em; }
input.filter { display: block; margin-top: .5em; font-size: 13px; width: 20em; }
table.data th { cursor: pointer; }
table.data th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.data th[aria-sort="descending"]::after { content: " \\25BC"; }
details { margin: 1em 0; }
"""


def table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as an escaped HTML table (floats rounded)."""
    if frame is None or frame.empty:
        return note("no rows")
    return frame.to_html(index=False, escape=True, border=0, classes="data", na_rep="",
                         float_format=lambda v: f"{v:.{digits}f}")


def figure(src: str, caption: str) -> str:
    """An image (relative path) with its caption."""
    return (f'<figure><a href="{escape(src)}"><img src="{escape(src)}" alt="{escape(caption)}" '
            f'loading="lazy"></a>'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def figures(items: Sequence[str]) -> str:
    """Figures side by side, wrapping."""
    return f'<div class="figures">{"".join(items)}</div>' if items else ""


def note(text: str) -> str:
    """A highlighted remark, e.g. why a section is empty."""
    return f'<p class="missing">{escape(text)}</p>'


def para(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def select(ident: str, label: str) -> str:
    """An empty labelled drop-down; report.js fills in the options."""
    return f'<label>{escape(label)} <select id="{escape(ident)}"></select></label>'


def page(title: str, sections: Sequence[tuple[str, str, str]], tail: str = "",
         scripts: Sequence[str] = ()) -> str:
    """The whole document: title, navigation, the (anchor, title, body) sections, then `tail`
    (e.g. inline data) and the scripts (page-relative paths), loaded last."""
    nav = " ".join(f'<a href="#{escape(a)}">{escape(t)}</a>' for a, t, _ in sections)
    body = "\n".join(section(a, t, b) for a, t, b in sections)
    tags = "".join(f'<script src="{escape(src)}"></script>\n' for src in scripts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{escape(title)}</h1>\n<nav>{nav}</nav>\n{body}\n{tail}\n{tags}"
            f"</body>\n</html>\n")
