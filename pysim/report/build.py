"""Build report/index.html, report/figures/ (static PNGs) and report/assets/ (Plotly and the
page's script) from a pipeline output directory; every section copes with its inputs being
absent and says so on the page. The folder is built beside the old one and swapped in whole."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pysim import __version__
from pysim.analysis.consistency import consistency_matrix
from pysim.analysis.domains import dataset_field
from pysim.analysis.sim_vs_perf import correlate, gap_pairs
from pysim.config import CATEGORY_COLUMNS
from pysim.report import figures as fg
from pysim.report import html as h
from pysim.report import interactive as ia
from pysim.report import tables
from pysim.report.analyses import analyses_section
from pysim.report.assets import copy_assets, staged_folder
from pysim.report.paper import paper_section
from pysim.report.results import Results, collect


class Report:
    """Collects the sections and figures of one report while it is being built."""

    def __init__(self, res: Results, out_dir: Path, run_outdir: str | None = None):
        self.res, self.out_dir, self.run_outdir = res, out_dir, run_outdir
        self.wide: dict[str, pd.DataFrame] = {}  # consistency matrices, for the page's data
        self.fig_dir = out_dir / "figures"
        self.written: list[Path] = []
        info = res.dataset_info
        self.names = {ds: dataset_field(info, ds, "name", ds) for ds in res.datasets}
        self.short_names = {ds: fg.short(name) for ds, name in self.names.items()}  # figures
        self.domains = {ds: dataset_field(info, ds, "domain", "") for ds in res.datasets}
        models = res.models or {}
        self.objectives = {m: e.categories.get("objective", fg.UNKNOWN) for m, e in models.items()}

    def fig(self, path: Path | None, caption: str) -> str:
        if path is None:
            return ""
        self.written.append(path)
        return h.figure(f"figures/{path.name}", caption)

    def missing(self, *keys: str) -> str:
        return "".join(h.note(self.res.missing[k]) for k in keys if k in self.res.missing)

    # --- sections ---------------------------------------------------------------------

    def models_section(self) -> str:
        res = self.res
        accs = pd.DataFrame([(m, ds, a) for ds, d in res.probes.items() for m, a in d.items()],
                            columns=["model_id", "dataset", "acc"])
        mean_acc = accs.groupby("model_id")["acc"].mean()
        if res.models:
            rows = [{"model_id": m, "model_name": e.model_name, "source": e.source,
                     **{c: e.categories.get(c, "") for c in CATEGORY_COLUMNS}}
                    for m, e in res.models.items()]
        else:
            ids = sorted({m for s in res.similarities for m in s.model_ids})
            rows = [{"model_id": m} for m in ids]
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame["mean test_acc1"] = frame["model_id"].map(mean_acc)
        return self.missing("models") + h.table(frame)

    def datasets_section(self) -> str:
        res = self.res
        rows = []
        for sims in sorted(res.similarities, key=lambda s: s.dataset):
            probes = res.accuracies(sims.dataset)
            n_samples = sorted({a.get("n_samples") for a in sims.metric_attrs.values()
                                if a.get("n_samples") is not None})
            rows.append({"dataset": sims.dataset, "name": self.names[sims.dataset],
                         "domain": self.domains[sims.dataset], "models": len(sims.model_ids),
                         "metrics": len(sims.matrices),
                         "n_samples": ", ".join(map(str, n_samples)),
                         "probes of": res.performance_source(sims.dataset) or "",
                         "probes": len(probes),
                         "mean test_acc1": np.mean(list(probes.values())) if probes else np.nan})
        return self.missing("similarities") + h.table(pd.DataFrame(rows))

    def heatmap_section(self) -> str:
        parts = [self.missing("similarities")]
        if self.res.similarities:
            parts.append(h.para("Hover a cell for both models, their categories and the value; "
                                "drag to zoom, double-click to reset. The ordering applies to "
                                "every dataset at once, so matrices compare cell by cell.")
                         + '<div class="controls">' + h.select("sim-metric", "metric")
                         + h.select("sim-order", "order models by") + "</div>"
                         + '<div id="sim-grid" class="plots"></div>')
        static = []
        if self.res.models is None:
            parts.append(h.para("Models are coloured grey: no model table, objectives unknown."))
        progress = tqdm(total=len(self.res.metrics) * len(self.res.similarities),
                        desc="report heatmaps", unit="fig", leave=False)
        for metric in self.res.metrics:
            items = []
            for sims in sorted(self.res.similarities, key=lambda s: s.dataset):
                progress.update()
                if metric not in sims.matrices:
                    continue
                title = f"{self.short_names[sims.dataset]} - {metric}"
                path = fg.similarity_heatmap(sims.matrices[metric], sims.model_ids,
                                             self.objectives, title,
                                             self.fig_dir / fg.safe_name("sim", sims.dataset,
                                                                         metric))
                items.append(self.fig(path, title))
            if items:
                static.append(f"<h3>{h.escape(metric)}</h3>" + h.figures(items))
        progress.close()
        parts.append(not_computable_note(self.res.similarities, self.names))
        if static:
            parts.append("<details><summary>Static figures (PNG, clustered per dataset)</summary>"
                         + "".join(static) + "</details>")
        return "".join(parts)

    def consistency_section(self) -> str:
        table = self.res.consistency
        if table is None:
            return self.missing("consistency")
        if table.empty:
            return h.note("the consistency table is empty (fewer than two datasets?)")
        parts = [h.para("Pearson r between the upper triangles of two datasets' similarity "
                        "matrices (all model pairs); Mantel p from joint row/column "
                        "permutations of model labels, 95% bootstrap interval over models.")]
        if "transform" in table:
            used = ", ".join(sorted(set(table["transform"].astype(str))))
            parts.append(h.para(f"Similarities transformed before correlating: {used}."))
        for metric in sorted(table["metric"].unique()):
            wide = self.res.matrices.get(metric)
            if wide is None:
                datasets = sorted(set(table["dataset_1"]) | set(table["dataset_2"]))
                wide = consistency_matrix(table, metric, datasets)
            self.wide[metric] = wide
            path = fg.consistency_heatmap(wide, self.short_names, f"consistency - {metric}",
                                          self.fig_dir / fg.safe_name("consistency", metric))
            dist = fg.category_distributions(table[table["metric"] == metric],
                                             f"consistency per category pair - {metric}",
                                             self.fig_dir / fg.safe_name("categories", metric))
            parts.append(f"<h3>{h.escape(metric)}</h3>" + self.linked(metric) + h.figures(
                [self.fig(path, f"dataset x dataset consistency, {metric}"),
                 self.fig(dist, f"consistency per category pair, {metric}")]))
        summary = (table.groupby(["metric", "category", "group_1", "group_2"], sort=True)
                   .agg(dataset_pairs=("pearson_r", "size"), n_pairs=("n_pairs", "first"),
                        mean_pearson_r=("pearson_r", "mean"), sd=("pearson_r", "std"),
                        mean_spearman_r=("spearman_r", "mean"),
                        share_mantel_p_below_005=("mantel_p", lambda p: (p < 0.05).mean()))
                   .reset_index())
        parts.append("<h3>Summary per category pair</h3>" + h.table(summary))
        if self.res.domains is not None and not self.res.domains.empty:
            dom = self.res.domains[self.res.domains["category"] == "all"]
            parts.append("<h3>By dataset-domain pair (all model pairs)</h3>" + h.table(
                dom.drop(columns=["category", "group_1", "group_2"])))
        if self.res.clusters_ari is not None and not self.res.clusters_ari.empty:
            ari = self.res.clusters_ari.groupby("metric")["ari"].agg(["mean", "min", "max"])
            parts.append("<h3>Agreement of model clusters between datasets (ARI)</h3>"
                         + h.table(ari.reset_index()))
        parts.append(tables.consistency_rows(table))
        return "".join(parts)

    def linked(self, metric: str) -> str:
        """The interactive consistency matrix; a click shows both datasets' matrices below."""
        name = h.escape(metric)
        return (h.para("Click a cell to show the two datasets' similarity matrices side by "
                       "side (ordered as chosen under Similarity matrices).")
                + f'<div class="plots"><div class="plot consistency-plot" data-metric="{name}">'
                + f'</div><div class="plots pair-plots" data-metric="{name}"></div></div>')

    def layers_section(self) -> str | None:
        """Layer x layer heatmaps per model pair, when the similarity files hold layer rows."""
        if not self.res.layers:
            return None
        return (h.para("Similarity between the layers of two models (ids <model>@<module>), "
                       "by relative depth (0 first module, 1 last); hover for module names.")
                + '<div class="controls">' + h.select("layer-dataset", "dataset")
                + h.select("layer-metric", "metric") + h.select("layer-model-a", "model (rows)")
                + h.select("layer-model-b", "model (columns)") + "</div>"
                + '<div id="layer-plot" class="plot"></div>')

    def page_data(self) -> dict:
        """Everything the page's script draws (inline JSON; layer matrices in assets/)."""
        res = self.res
        layers, scripts = ia.layer_data(res.layers, self.names)
        for name, text in scripts.items():
            (self.out_dir / name).write_text(text, encoding="utf-8")
        return {"similarity": ia.similarity_data(res.similarities, res.metrics, res.models,
                                                 self.names),
                "consistency": ia.consistency_data(self.wide, self.names), "layers": layers}

    def gap_section(self) -> str:
        res = self.res
        parts = [self.missing("probes", "performance")]
        if res.probes and res.similarities:
            for metric in res.metrics:
                panels = []
                for sims in sorted(res.similarities, key=lambda s: s.dataset):
                    accs = res.accuracies(sims.dataset)
                    if accs and metric in sims.matrices:
                        pairs = gap_pairs(sims.matrices[metric], sims.model_ids, accs)
                        panels.append((self.short_names[sims.dataset], pairs,
                                       correlate(pairs)[0]))
                path = fg.gap_scatter(panels, f"similarity vs. accuracy gap - {metric}",
                                      self.fig_dir / fg.safe_name("gap", metric))
                parts.append(h.figures([self.fig(path, f"similarity vs. gap, {metric}")]))
        if res.sim_vs_gap is not None:
            parts.append(h.table(res.sim_vs_gap))
        return "".join(parts)

    def summary_section(self, seconds: float) -> str:
        res = self.res
        inputs = [*res.similarity_paths, *res.probe_paths]
        mtimes = [p.stat().st_mtime for p in inputs]
        rows = [("results directory", self.run_outdir or str(res.root.resolve())),
                ("model table", str(res.models_path or "-")),
                ("dataset info", str(res.dataset_info_path or "-")),
                ("datasets", str(len(res.datasets))), ("metrics", ", ".join(res.metrics)),
                ("similarity files", str(len(res.similarity_paths))),
                ("probe files", str(len(res.probe_paths))),
                ("inputs written", f"{stamp(min(mtimes))} .. {stamp(max(mtimes))}"
                 if mtimes else "-"),
                ("report generated", stamp(time.time())),
                ("report build time", f"{seconds:.1f} s"),
                ("versions", versions())]
        body = h.table(pd.DataFrame(rows, columns=["item", "value"]))
        links = [f'<a href="{h.escape(os.path.relpath(p, self.out_dir))}">{h.escape(p.name)}</a>'
                 for p in res.pipeline_info]
        if links:
            body += "<p>Nextflow reports: " + " ".join(links) + "</p>"
        return body


def not_computable_note(similarities, names: dict[str, str]) -> str:
    """The models whose similarities could not be computed (NaN row and column), and why,
    as the similarity stage recorded them (DESIGN §5); empty when there are none."""
    rows = [(names.get(s.dataset, s.dataset), metric, model, reason)
            for s in sorted(similarities, key=lambda s: s.dataset)
            for metric, attrs in sorted(s.metric_attrs.items())
            for model, reason in sorted((attrs.get("not_computable") or {}).items())
            if model in s.model_ids]
    if not rows:
        return ""
    frame = pd.DataFrame(rows, columns=["dataset", "metric", "model", "reason"])
    return (h.note(f"{len(rows)} similarity rows are not computable (blank cells): "
                   "the reasons below.") + h.table(frame))


def stamp(seconds: float) -> str:
    """A POSIX time as readable UTC."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def versions() -> str:
    """Versions of Python and the libraries behind the numbers."""
    import h5py
    import matplotlib
    import scipy

    return (f"pysim {__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}, pandas {pd.__version__}, h5py {h5py.__version__}, "
            f"matplotlib {matplotlib.__version__}")


def build_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 models_path: str | os.PathLike | None = None,
                 dataset_info_path: str | os.PathLike | None = None,
                 run_outdir: str | None = None) -> Path:
    """Write out_dir/ (index.html, figures/, assets/) in one swap; returns the page's path.

    run_outdir is the run's --outdir as the user gave it (the results may be a staged copy)."""
    start = time.time()
    res = collect(results_dir, models_path, dataset_info_path)
    out_dir = Path(out_dir)
    with staged_folder(out_dir) as tmp:
        report = Report(res, tmp, run_outdir)
        sections = [("models", "Models", report.models_section()),
                    ("datasets", "Datasets", report.datasets_section()),
                    ("probes", "Probe accuracies", tables.probes_section(res.probes)),
                    ("similarity", "Similarity matrices", report.heatmap_section()),
                    ("layers", "Layer-wise similarity", report.layers_section()),
                    ("consistency", "Consistency across datasets", report.consistency_section()),
                    ("analyses", "Further analyses", analyses_section(report)),
                    ("gap", "Similarity vs. accuracy gap", report.gap_section()),
                    ("paper", "The paper's figures", paper_section(report)),
                    ("software", "Software versions",
                     tables.versions_section(res.software_versions))]
        sections = [s for s in sections if s[2] is not None]
        sections.insert(0, ("summary", "Run summary",
                            report.summary_section(time.time() - start)))
        scripts = copy_assets(tmp)
        page = h.page("Consistency of representational similarity across datasets", sections,
                      tail=ia.data_script(report.page_data()), scripts=scripts)
        (tmp / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"
