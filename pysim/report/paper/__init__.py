"""The paper's figures (Ciernik et al., ICML 2025) drawn from one run's tables: one PNG, PDF
and CSV (the values behind the marks) per panel under report/paper_figures/, named after the
paper's section, each following the study's notebook (orderings, colours by objective,
statistics, axis ranges). A panel the run cannot support is listed with the reason instead
of being drawn from the wrong data."""

from __future__ import annotations

from html import escape
from pathlib import Path

import matplotlib.pyplot as plt

from pysim.config import CATEGORY_COLUMNS
from pysim.report.paper import (
    app_c,
    app_d,
    app_e,
    app_f,
    app_g,
    fig1,
    sec4_2,
    sec4_4,
    sec4_5,
    sec4_6,
    sec4_7,
)
from pysim.report.paper.common import FOLDER, FONT, Context, Panel

SECTIONS = (("Fig. 1", fig1), ("§4.2 Do similarities transfer?", sec4_2),
            ("§4.4 Consistency of pair similarities", sec4_4),
            ("§4.5 Model categories", sec4_5), ("§4.6 Dataset domains", sec4_6),
            ("§4.7 Similarity vs. performance gap", sec4_7),
            ("Appendix C: ImageNet subset size", app_c),
            ("Appendix D: tan and arccos", app_d),
            ("Appendix E: metric vs. metric consistency", app_e),
            ("Appendix F: anchor models", app_f),
            ("Appendix G: r of similarity vs. gap per dataset", app_g))
NOT_DRAWN = ("§4.3 (clustering per dataset) is not drawn here: the report's t-SNE maps and "
             "clusters.csv cover it.")


def context(report) -> Context:
    """The figures' view of the report's collected results."""
    res = report.res
    models = res.models or {}
    labels = {c: {m: e.categories[c] for m, e in models.items() if e.categories.get(c)}
              for c in CATEGORY_COLUMNS}
    return Context(out_dir=report.out_dir,
                   matrices={s.dataset: dict(s.matrices) for s in res.similarities},
                   model_ids={s.dataset: list(s.model_ids) for s in res.similarities},
                   names=report.names, domains=report.domains,
                   labels={c: v for c, v in labels.items() if v}, probes=res.probes,
                   consistency=res.consistency, cdir=res.root / "consistency",
                   sim_vs_gap=res.sim_vs_gap)


def draw_all(ctx: Context) -> list[tuple[str, list[Panel]]]:
    """Every section's panels (written or skipped), in the paper's order."""
    out = []
    with plt.rc_context(FONT):
        for title, module in SECTIONS:
            start = len(ctx.panels)
            if ctx.matrices:
                module.draw(ctx)
            else:
                ctx.skip(module.__name__.rsplit(".", 1)[-1], title,
                         "no similarity files: nothing to draw")
            out.append((title, ctx.panels[start:]))
    return out


def panel_html(panel: Panel) -> str:
    if panel.reason:
        return (f'<p class="notdrawn">{escape(panel.stem)}: not drawn from this run - '
                f"{escape(panel.reason)}</p>")
    base = f"{FOLDER}/{panel.stem}"
    return (f'<figure><a href="{escape(base)}.pdf"><img src="{escape(base)}.png" '
            f'alt="{escape(panel.caption)}" loading="lazy"></a><figcaption>'
            f"{escape(panel.caption)} (<code>{escape(panel.stem)}</code>: "
            f'<a href="{escape(base)}.png">PNG</a> <a href="{escape(base)}.pdf">PDF</a> '
            f'<a href="{escape(base)}.csv">data</a>)</figcaption></figure>')


def paper_section(report) -> str:
    """Draw the figures into the report folder and return the section's HTML."""
    ctx = context(report)
    parts = [f"<p>The paper's figures drawn from this run's tables, one file per panel under "
             f"<code>{FOLDER}/</code> (PNG, PDF, and the values behind the marks as CSV). "
             "Datasets, metrics and models are the run's: where the paper's are absent the "
             "nearest of the run's take their place (datasets in domain order, the first "
             "metric for CKA linear). "
             f"{escape(NOT_DRAWN)}</p>"]
    for title, panels in draw_all(ctx):
        drawn = [panel_html(p) for p in panels if not p.reason]
        notes = [panel_html(p) for p in panels if p.reason]
        parts.append(f"<h3>{escape(title)}</h3>" + "".join(notes)
                     + (f'<div class="figures">{"".join(drawn)}</div>' if drawn else ""))
    return "".join(parts)


def written(out_dir: Path) -> list[Path]:
    """The panel files of a report folder."""
    return sorted((Path(out_dir) / FOLDER).glob("*"))
