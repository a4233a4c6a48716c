// pysim report: interactive heatmaps drawn with Plotly (shipped in assets/), and sortable,
// filterable tables. All data comes from the inline JSON element #pysim-data; nothing is fetched.
(function () {
  "use strict";

  const DATA = JSON.parse(document.getElementById("pysim-data").textContent);
  const CONFIG = {displaylogo: false, responsive: true};
  const SIM = DATA.similarity;
  const MAX_LABEL = 32;  // as pysim.report.figures.MAX_LABEL

  function el(tag, attrs, parent) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { node[k] = v; });
    if (parent) parent.appendChild(node);
    return node;
  }

  // --- similarity heatmaps -------------------------------------------------------------

  function modelLabel(id) {
    const labels = SIM.labels[id] || {};
    const cats = SIM.columns.map((c) => labels[c]).filter(Boolean);
    return cats.length ? id + " (" + cats.join(", ") + ")" : id;
  }

  function currentOrder(metric) {
    const name = document.getElementById("sim-order").value;
    if (name === "cluster") return SIM.clusterOrders[metric] || SIM.orders.table;
    return SIM.orders[name] || SIM.orders.table;
  }

  function valueRange(metric) {
    let lo = Infinity, hi = -Infinity;
    Object.values(SIM.matrices[metric]).forEach((m) => m.z.forEach((row) => row.forEach((v) => {
      if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    })));
    return lo <= hi ? [lo, hi] : [0, 1];
  }

  function simTrace(entry, ids, range) {
    const pos = new Map(entry.ids.map((m, k) => [m, k]));
    const keep = ids.filter((m) => pos.has(m));
    const z = keep.map((a) => keep.map((b) => entry.z[pos.get(a)][pos.get(b)]));
    const text = keep.map((a) => keep.map((b) => modelLabel(a) + "<br>" + modelLabel(b)));
    return {type: "heatmap", x: keep, y: keep, z: z, text: text, zmin: range[0], zmax: range[1],
            colorscale: "Viridis", hovertemplate: "%{text}<br>similarity: %{z:.4f}<extra></extra>"};
  }

  // long names are shortened on axes and in titles; hovers and tables show them in full
  function shortLabel(text) {
    return text.length > MAX_LABEL ? text.slice(0, MAX_LABEL - 1) + "\u2026" : text;
  }

  function simLayout(title, ids) {
    const n = ids.length;
    const axis = {type: "category", autorange: true, automargin: true, showticklabels: n <= 30,
                  tickfont: {size: 8}, tickvals: ids, ticktext: ids.map(shortLabel)};
    return {title: {text: shortLabel(title), font: {size: 13}, x: 0, xanchor: "left"},
            width: 460,
            height: 460, margin: {l: n <= 30 ? 110 : 20, r: 10, t: 60, b: n <= 30 ? 110 : 20},
            xaxis: axis, yaxis: Object.assign({}, axis, {autorange: "reversed"})};
  }

  function drawSimilarity(div, metric, dataset) {
    const entry = SIM.matrices[metric][dataset.key];
    const trace = simTrace(entry, currentOrder(metric), valueRange(metric));
    div.dataset.dataset = dataset.key;
    Plotly.react(div, [trace], simLayout(dataset.name, trace.x), CONFIG);
  }

  function drawSimilarityGrid() {
    const metric = document.getElementById("sim-metric").value;
    const grid = document.getElementById("sim-grid");
    grid.replaceChildren();
    SIM.datasets.filter((d) => SIM.matrices[metric][d.key]).forEach((d) => {
      drawSimilarity(el("div", {className: "plot heatmap"}, grid), metric, d);
    });
    document.querySelectorAll(".pair-plots").forEach(drawPair);
  }

  function setupSimilarity() {
    if (!document.getElementById("sim-grid")) return;
    const metrics = document.getElementById("sim-metric");
    Object.keys(SIM.matrices).forEach((m) => el("option", {value: m, textContent: m}, metrics));
    const order = document.getElementById("sim-order");
    el("option", {value: "table", textContent: "model table"}, order);
    SIM.columns.forEach((c) => el("option", {value: c, textContent: "category: " + c}, order));
    el("option", {value: "cluster", textContent: "clustering (mean over datasets)"}, order);
    metrics.addEventListener("change", drawSimilarityGrid);
    order.addEventListener("change", drawSimilarityGrid);
    drawSimilarityGrid();
  }

  // --- consistency matrices, linked to the pair of similarity matrices they compare -----

  function drawPair(box) {
    const metric = box.dataset.metric, pair = box.dataset.pair;
    if (!pair || !SIM.matrices[metric]) return;
    box.replaceChildren();
    JSON.parse(pair).forEach((key) => {
      const dataset = SIM.datasets.find((d) => d.key === key);
      if (dataset && SIM.matrices[metric][key]) {
        drawSimilarity(el("div", {className: "plot heatmap"}, box), metric, dataset);
      }
    });
  }

  function setupConsistency() {
    document.querySelectorAll(".consistency-plot").forEach((div) => {
      const metric = div.dataset.metric, c = DATA.consistency[metric];
      const text = c.names.map((a) => c.names.map((b) => a + "<br>" + b));
      const axis = {type: "category", tickvals: c.datasets, ticktext: c.names.map(shortLabel),
                    tickfont: {size: 9}};
      Plotly.newPlot(div, [{type: "heatmap", x: c.datasets, y: c.datasets, z: c.z, text: text,
        zmin: -1, zmax: 1, colorscale: "RdBu",
        hovertemplate: "%{text}<br>Pearson r: %{z:.3f}<extra>click: show both</extra>"}],
      {width: 520, height: 480, margin: {l: 130, r: 10, t: 40, b: 130}, xaxis: axis,
       yaxis: Object.assign({}, axis, {autorange: "reversed"})}, CONFIG);
      div.on("plotly_click", (event) => {
        const point = event.points[0];
        const box = document.querySelector('.pair-plots[data-metric="' + CSS.escape(metric) + '"]');
        box.dataset.pair = JSON.stringify([point.y, point.x]);
        drawPair(box);
      });
    });
  }

  // --- layer x layer heatmaps per model pair -------------------------------------------

  function depths(n) {
    return Array.from({length: n}, (_, k) => (n > 1 ? k / (n - 1) : 0));
  }

  // One dataset's layer matrices live in their own script (assets/layers_<k>.js), loaded once
  // when first shown: a page with many layers stays quick to open.
  function withLayerMatrices(key, draw) {
    const loaded = window.pysimLayers && window.pysimLayers[key];
    if (loaded) { draw(loaded); return; }
    const script = el("script", {src: DATA.layers[key].script}, document.body);
    script.addEventListener("load", () => draw(window.pysimLayers[key]));
  }

  function drawLayers() {
    const key = document.getElementById("layer-dataset").value;
    withLayerMatrices(key, (matrices) => drawLayerPair(DATA.layers[key], matrices));
  }

  function drawLayerPair(ds, matrices) {
    const metric = document.getElementById("layer-metric").value;
    const a = document.getElementById("layer-model-a").value;
    const b = document.getElementById("layer-model-b").value;
    const matrix = matrices[metric];
    const div = document.getElementById("layer-plot");
    if (!matrix || !ds.rows[a] || !ds.rows[b]) {
      div.replaceChildren(el("p", {className: "missing", textContent: "no layers for this choice"}));
      return;
    }
    const z = ds.rows[a].map((i) => ds.rows[b].map((j) => matrix[i][j]));
    const text = ds.modules[a].map((ma) => ds.modules[b].map((mb) => a + "@" + ma + "<br>" +
                                                              b + "@" + mb));
    div.replaceChildren();
    Plotly.newPlot(div, [{type: "heatmap", x: depths(ds.modules[b].length),
      y: depths(ds.modules[a].length), z: z, text: text, colorscale: "Viridis",
      hovertemplate: "%{text}<br>" + metric + ": %{z:.4f}<extra></extra>"}],
    {width: 520, height: 480, margin: {t: 40},
     xaxis: {title: {text: "relative depth, " + shortLabel(b)}, range: [-0.05, 1.05]},
     yaxis: {title: {text: "relative depth, " + shortLabel(a)}, range: [-0.05, 1.05]}}, CONFIG);
  }

  function fillSelect(id, values) {
    const select = document.getElementById(id), before = select.value;
    select.replaceChildren();
    values.forEach((v) => el("option", {value: v, textContent: v}, select));
    if (values.includes(before)) select.value = before;
    return select;
  }

  function setupLayers() {
    if (!document.getElementById("layer-plot")) return;
    const refill = () => {
      const ds = DATA.layers[document.getElementById("layer-dataset").value];
      fillSelect("layer-metric", ds.metrics);
      const models = Object.keys(ds.modules);
      fillSelect("layer-model-a", models);
      const second = fillSelect("layer-model-b", models);
      if (models.length > 1 && second.value === models[0]) second.value = models[1];
      drawLayers();
    };
    fillSelect("layer-dataset", Object.keys(DATA.layers)).addEventListener("change", refill);
    ["layer-metric", "layer-model-a", "layer-model-b"].forEach((id) =>
      document.getElementById(id).addEventListener("change", drawLayers));
    refill();
  }

  // --- sortable, filterable tables -----------------------------------------------------

  function cellValue(row, k) {
    const text = row.cells[k] ? row.cells[k].textContent.trim() : "";
    const number = Number(text);
    return text !== "" && !Number.isNaN(number) ? number : text;
  }

  function sortBy(table, k, th) {
    const body = table.tBodies[0];
    const up = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    const rows = Array.from(body.rows).sort((r1, r2) => {
      const a = cellValue(r1, k), b = cellValue(r2, k);
      const cmp = typeof a === typeof b ? (a < b ? -1 : a > b ? 1 : 0)
        : (typeof a === "number" ? -1 : 1);
      return up ? cmp : -cmp;
    });
    body.append(...rows);
  }

  function setupTables() {
    document.querySelectorAll("table.data").forEach((table) => {
      const filter = el("input", {type: "search", className: "filter",
                                  placeholder: "filter rows"});
      table.before(filter);
      filter.addEventListener("input", () => {
        const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
        Array.from(table.tBodies[0].rows).forEach((row) => {
          const text = row.textContent.toLowerCase();
          row.hidden = !words.every((w) => text.includes(w));
        });
      });
      table.querySelectorAll("thead th").forEach((th, k) => {
        th.title = "click to sort";
        th.addEventListener("click", () => sortBy(table, k, th));
      });
    });
  }

  setupTables();
  setupSimilarity();
  setupConsistency();
  setupLayers();
})();
