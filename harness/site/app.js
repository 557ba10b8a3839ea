// gaze-harness leaderboard page. Reads the rows embedded in #leaderboard-data and renders the
// table, filters, scatter plots and the per-run detail view. Every piece of data is inserted with
// textContent or as an attribute value, never as HTML. The page loads nothing but its own files.
(function () {
  "use strict";

  var SVGNS = "http://www.w3.org/2000/svg";
  var ARROW = { higher: "\u2191", lower: "\u2193" };
  var KIND_LABEL = { ceiling: "human ceiling", baseline: "baseline" };
  var DATA = JSON.parse(document.getElementById("leaderboard-data").textContent);
  var ROWS = DATA.rows || [];
  var BY_ID = {};
  ROWS.forEach(function (r) { BY_ID[r.run_id] = r; });

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVGNS, tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function fmt(v, digits) {
    if (!isNum(v)) return v === null || v === undefined ? "\u2013" : String(v);
    return Number.isInteger(v) && digits === 0 ? String(v) : v.toFixed(digits === undefined ? 4 : digits);
  }

  // ---- columns -------------------------------------------------------------------------------
  var COLUMNS = [
    { key: "model", label: "model", type: "text" },
    { key: "attention", label: "attention", type: "text" },
    { key: "dataset", label: "dataset", type: "text" },
    { key: "task", label: "task", type: "text" }
  ];
  (DATA.metrics || []).forEach(function (m) {
    COLUMNS.push({ key: m.name, label: m.name, type: "number", direction: m.direction, value: true,
                   primary: m.name === DATA.primary });
  });
  (DATA.task_metrics || []).forEach(function (m) {
    COLUMNS.push({ key: m.name, label: m.name, type: "number", direction: m.direction, value: true });
  });
  COLUMNS.push({ key: "n_images", label: "images", type: "number", digits: 0 });
  var COL_BY_KEY = {};
  COLUMNS.forEach(function (c) { COL_BY_KEY[c.key] = c; });

  function cell(row, col) { return col.value ? row.values[col.key] : row[col.key]; }
  function bestFirst(col) { return col.direction === "lower" ? "asc" : "desc"; }

  var primaryCol = COL_BY_KEY[DATA.primary];
  var state = {
    sortKey: primaryCol ? primaryCol.key : "model",
    sortDir: primaryCol ? bestFirst(primaryCol) : "asc",
    task: "", dataset: "", attention: "", superseded: false
  };

  // ---- filtering and sorting -----------------------------------------------------------------
  function isReference(r) { return r.kind === "ceiling" || r.kind === "baseline"; }
  function visibleRows() {
    return ROWS.filter(function (r) {
      if (!state.superseded && r.latest === false) return false;
      if (state.dataset && r.dataset !== state.dataset) return false;
      // references are the yardstick of every task and attention method of their dataset
      if (state.task && r.task !== state.task && !isReference(r)) return false;
      if (state.attention && r.attention !== state.attention && !isReference(r)) return false;
      return true;
    });
  }
  function compareRows(a, b) {
    var col = COL_BY_KEY[state.sortKey];
    var va = cell(a, col), vb = cell(b, col);
    var sign = state.sortDir === "asc" ? 1 : -1;
    var res;
    if (col.type === "number") {
      var na = isNum(va), nb = isNum(vb);
      if (!na && !nb) res = 0;
      else if (!na) return 1;            // missing values last, whatever the direction
      else if (!nb) return -1;
      else res = sign * (va - vb);
    } else {
      res = sign * String(va === null || va === undefined ? "" : va).localeCompare(String(vb === null || vb === undefined ? "" : vb));
    }
    if (res !== 0) return res;
    return String(a.model).localeCompare(String(b.model)) || String(a.run_id).localeCompare(String(b.run_id));
  }

  // ---- rendering: filters ----------------------------------------------------------------------
  function fillSelect(id, key) {
    var select = document.getElementById(id);
    var values = {};
    ROWS.forEach(function (r) { if (r[key] !== null && r[key] !== undefined) values[r[key]] = true; });
    select.appendChild(el("option", { value: "" }, "all"));
    Object.keys(values).sort().forEach(function (v) {
      var opt = el("option", null, v);
      opt.value = v;
      select.appendChild(opt);
    });
    select.addEventListener("change", function () { state[key] = select.value; render(); });
  }

  // ---- rendering: table ------------------------------------------------------------------------
  function renderHead() {
    var thead = document.querySelector("#leaderboard thead");
    thead.textContent = "";
    var tr = el("tr");
    COLUMNS.forEach(function (col) {
      var th = el("th", { scope: "col", tabindex: "0" });
      th.dataset.key = col.key;
      th.classList.add(col.type === "number" ? "num" : "text");
      if (col.primary) th.classList.add("primary");
      th.appendChild(el("span", { "class": "label" }, col.label));
      if (col.direction && ARROW[col.direction]) {
        var dir = el("span", { "class": "dir", title: col.direction + " is better" }, ARROW[col.direction]);
        dir.dataset.direction = col.direction;
        th.appendChild(dir);
      }
      var sorted = state.sortKey === col.key;
      th.setAttribute("aria-sort", sorted ? (state.sortDir === "asc" ? "ascending" : "descending") : "none");
      th.addEventListener("click", function () { sortBy(col.key); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(col.key); } });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
  }
  function sortBy(key) {
    var col = COL_BY_KEY[key];
    if (state.sortKey === key) state.sortDir = state.sortDir === "asc" ? "desc" : "asc";
    else { state.sortKey = key; state.sortDir = col.type === "number" && col.direction ? bestFirst(col) : "asc"; }
    render();
  }
  function renderBody(rows) {
    var tbody = document.querySelector("#leaderboard tbody");
    tbody.textContent = "";
    rows.forEach(function (r) {
      var tr = el("tr", { tabindex: "0" });
      tr.dataset.runId = r.run_id;
      tr.dataset.kind = r.kind;
      tr.classList.add("kind-" + (KIND_LABEL[r.kind] ? r.kind : "model"));
      if (r.latest === false) tr.classList.add("superseded");
      COLUMNS.forEach(function (col) {
        var td = el("td");
        td.dataset.key = col.key;
        var v = cell(r, col);
        if (col.key === "model") {
          td.appendChild(el("span", { "class": "model-name" }, v));
          if (KIND_LABEL[r.kind]) td.appendChild(el("span", { "class": "badge badge-" + r.kind }, KIND_LABEL[r.kind]));
          if (r.latest === false) td.appendChild(el("span", { "class": "badge badge-superseded" }, "superseded"));
        } else if (col.type === "number") {
          td.classList.add("num");
          td.textContent = fmt(v, col.digits);
          if (isNum(v)) td.dataset.value = String(v);
          if (col.key === "n_images" && r.n_failed) td.appendChild(el("span", { "class": "failed" }, " (" + r.n_failed + " failed)"));
          if (col.key === "n_images" && r.n_degenerate) td.appendChild(el("span", { "class": "failed", "title": "constant attention maps: scored as a uniform prediction" }, " (" + r.n_degenerate + " constant)"));
          var nonfinite = nonfiniteOf(r)[col.key];
          if (nonfinite) td.appendChild(el("span", { "class": "failed", "title": nonfinite + " stimuli with a non-finite value, left out of this mean" }, "*"));
        } else {
          td.textContent = v === null || v === undefined ? "\u2013" : String(v);
        }
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () { openRun(r.run_id); });
      tr.addEventListener("keydown", function (e) { if (e.key === "Enter") openRun(r.run_id); });
      tbody.appendChild(tr);
    });
    document.getElementById("row-count").textContent = rows.length + (rows.length === 1 ? " run" : " runs") + " shown";
  }

  function nonfiniteOf(r) {
    if (!r.nonfinite) return {};
    try { return typeof r.nonfinite === "string" ? JSON.parse(r.nonfinite) : r.nonfinite; } catch (e) { return {}; }
  }

  // ---- rendering: scatter plots -----------------------------------------------------------------
  function niceTicks(lo, hi, n) {
    var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / n)));
    [1, 2, 2.5, 5, 10].some(function (m) { if (span / (step * m) <= n) { step = step * m; return true; } return false; });
    var ticks = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toFixed(10)));
    return ticks;
  }
  function range(values) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 0.5; hi += Math.abs(hi) * 0.1 || 0.5; }
    var pad = (hi - lo) * 0.08;
    return [lo - pad, hi + pad];
  }
  function taskKey(rows) {
    var named = rows.map(function (r) { return r.task_primary ? "task:" + r.task_primary : null; })
      .filter(function (k) { return k && rows.some(function (r) { return isNum(r.values[k]); }); });
    if (named.length) return named[0];
    var keys = (DATA.task_metrics || []).map(function (m) { return m.name; })
      .filter(function (k) { return rows.some(function (r) { return isNum(r.values[k]); }); });
    return keys.length ? keys[0] : null;
  }
  function renderScatters(rows) {
    var box = document.getElementById("scatters");
    box.textContent = "";
    var x = DATA.primary;
    var groups = {}, order = [];
    rows.forEach(function (r) {
      if (isReference(r) || r.task === "free-viewing") return;
      var k = JSON.stringify([r.dataset, r.task]);
      if (!groups[k]) { groups[k] = []; order.push(k); }
      groups[k].push(r);
    });
    var drawn = 0;
    order.sort().forEach(function (k) {
      var dt = JSON.parse(k), members = groups[k];
      var y = taskKey(members);
      if (!x || !y) return;
      var pts = members.filter(function (r) { return isNum(r.values[x]) && isNum(r.values[y]); });
      if (!pts.length) return;
      var refs = rows.filter(function (r) { return isReference(r) && r.dataset === dt[0] && isNum(r.values[x]); });
      box.appendChild(scatter(dt[0], dt[1], x, y, pts, refs));
      drawn += 1;
    });
    if (!drawn) box.appendChild(el("p", { "class": "empty" },
      "No shown run has both a gaze metric and a task metric (free viewing has no task score)."));
  }
  function scatter(dataset, task, x, y, pts, refs) {
    var W = 560, H = 380, M = { l: 64, r: 24, t: 52, b: 52 };
    var xr = range(pts.map(function (r) { return r.values[x]; }).concat(refs.map(function (r) { return r.values[x]; })));
    var yr = range(pts.map(function (r) { return r.values[y]; }));
    function sx(v) { return M.l + (v - xr[0]) / (xr[1] - xr[0]) * (W - M.l - M.r); }
    function sy(v) { return H - M.b - (v - yr[0]) / (yr[1] - yr[0]) * (H - M.t - M.b); }
    var fig = el("figure", { "class": "scatter" });
    fig.dataset.dataset = dataset;
    fig.dataset.task = task;
    fig.appendChild(el("figcaption", null, dataset + " \u2014 " + task));
    var s = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" });
    s.appendChild(svg("title", null, "Gaze alignment (" + x + ") against task performance (" + y + ") on " + dataset + ", " + task));
    s.appendChild(svg("rect", { x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, "class": "plot-area" }));
    niceTicks(xr[0], xr[1], 6).forEach(function (t) {
      s.appendChild(svg("line", { x1: sx(t), x2: sx(t), y1: H - M.b, y2: H - M.b + 5, "class": "tick" }));
      s.appendChild(svg("text", { x: sx(t), y: H - M.b + 18, "class": "tick-label", "text-anchor": "middle" }, fmt(t, 2)));
    });
    niceTicks(yr[0], yr[1], 5).forEach(function (t) {
      s.appendChild(svg("line", { x1: M.l - 5, x2: M.l, y1: sy(t), y2: sy(t), "class": "tick" }));
      s.appendChild(svg("text", { x: M.l - 8, y: sy(t) + 4, "class": "tick-label", "text-anchor": "end" }, fmt(t, 2)));
    });
    var xcol = COL_BY_KEY[x], ycol = COL_BY_KEY[y];
    s.appendChild(svg("text", { x: (M.l + W - M.r) / 2, y: H - 10, "class": "axis-label", "text-anchor": "middle" },
      "gaze alignment: " + x + " " + (xcol && ARROW[xcol.direction] || "")));
    s.appendChild(svg("text", { x: 14, y: (M.t + H - M.b) / 2, "class": "axis-label", "text-anchor": "middle",
      transform: "rotate(-90 14 " + (M.t + H - M.b) / 2 + ")" }, "task: " + y.replace(/^task:/, "") + " " + (ycol && ARROW[ycol.direction] || "")));
    refs.forEach(function (r, i) {
      var g = svg("g", { "class": "reference reference-" + r.kind });
      g.appendChild(svg("line", { x1: sx(r.values[x]), x2: sx(r.values[x]), y1: M.t, y2: H - M.b }));
      var right = sx(r.values[x]) > (M.l + W - M.r) / 2;  // labels right of centre end at their line
      g.appendChild(svg("text", { x: sx(r.values[x]) + (right ? -3 : 3), y: M.t - 6 - (i % 3) * 12, "class": "ref-label",
        "text-anchor": right ? "end" : "start" }, (KIND_LABEL[r.kind] || r.kind) + ": " + r.model));
      g.appendChild(svg("title", null, r.model + " (" + r.kind + "): " + x + " = " + fmt(r.values[x])));
      s.appendChild(g);
    });
    pts.forEach(function (r) {
      var g = svg("g", { "class": "point", tabindex: "0" });
      g.setAttribute("data-run-id", r.run_id);
      g.appendChild(svg("circle", { cx: sx(r.values[x]), cy: sy(r.values[y]), r: 5 }));
      var right = sx(r.values[x]) > (M.l + W - M.r) / 2;
      g.appendChild(svg("text", { x: sx(r.values[x]) + (right ? -7 : 7), y: sy(r.values[y]) - 7, "class": "point-label",
        "text-anchor": right ? "end" : "start" }, r.model + " [" + r.attention + "]"));
      g.appendChild(svg("title", null, r.model + " [" + r.attention + "]: " + x + " = " + fmt(r.values[x]) + ", " + y + " = " + fmt(r.values[y])));
      g.addEventListener("click", function () { openRun(r.run_id); });
      s.appendChild(g);
    });
    fig.appendChild(s);
    return fig;
  }

  // ---- detail view -------------------------------------------------------------------------------
  function openRun(id) { location.hash = "run=" + encodeURIComponent(id); }
  function flatten(obj, prefix, out) {
    out = out || [];
    if (obj && typeof obj === "object" && !Array.isArray(obj)) {
      Object.keys(obj).sort().forEach(function (k) { flatten(obj[k], prefix ? prefix + "." + k : k, out); });
    } else {
      out.push([prefix, Array.isArray(obj) ? JSON.stringify(obj) : obj]);
    }
    return out;
  }
  function kvTable(pairs, cls) {
    var table = el("table", { "class": "kv " + (cls || "") });
    pairs.forEach(function (p) {
      var tr = el("tr");
      tr.appendChild(el("th", { scope: "row" }, p[0]));
      var v = p[1];
      tr.appendChild(el("td", null, v === null || v === undefined ? "\u2013" : (typeof v === "number" ? fmt(v, Number.isInteger(v) ? 0 : 4) : String(v))));
      table.appendChild(tr);
    });
    return table;
  }
  function section(panel, title, child) {
    var sec = el("section", { "class": "detail-section" });
    sec.appendChild(el("h3", null, title));
    sec.appendChild(child);
    panel.appendChild(sec);
  }
  function showDetail() {
    var panel = document.getElementById("detail");
    var m = /^#run=(.*)$/.exec(location.hash);
    var row = m ? BY_ID[decodeURIComponent(m[1])] : null;
    document.querySelectorAll("#leaderboard tbody tr.selected").forEach(function (tr) { tr.classList.remove("selected"); });
    if (!row) { panel.hidden = true; panel.textContent = ""; return; }
    document.querySelectorAll("#leaderboard tbody tr").forEach(function (tr) {
      if (tr.dataset.runId === row.run_id) tr.classList.add("selected");
    });
    panel.textContent = "";
    var close = el("button", { type: "button", "class": "close", "aria-label": "Close details" }, "\u00d7");
    close.addEventListener("click", function () {
      history.replaceState(null, "", location.pathname + location.search);
      showDetail();
    });
    panel.appendChild(close);
    var h = el("h2");
    h.appendChild(el("span", { "class": "model-name" }, row.model));
    if (KIND_LABEL[row.kind]) h.appendChild(el("span", { "class": "badge badge-" + row.kind }, KIND_LABEL[row.kind]));
    panel.appendChild(h);
    panel.appendChild(el("p", { "class": "run-id" }, row.run_id));
    section(panel, "Run", kvTable([["attention", row.attention], ["dataset", row.dataset], ["task", row.task],
      ["kind", row.kind], ["images", row.n_images], ["failed", row.n_failed], ["latest", row.latest ? "yes" : "no (superseded)"]]));
    section(panel, "Metrics", kvTable(COLUMNS.filter(function (c) { return c.value && row.values[c.key] !== undefined; })
      .map(function (c) { return [c.label + (ARROW[c.direction] ? " " + ARROW[c.direction] : ""), fmt(row.values[c.key])]; })));
    section(panel, "Examples", examples(row));
    section(panel, "Provenance", kvTable(flatten(row.provenance, "")));
    section(panel, "Packages", kvTable(Object.keys(row.packages || {}).sort().map(function (k) { return [k, row.packages[k]]; }), "packages"));
    section(panel, "Settings", kvTable(flatten(row.settings, ""), "settings"));
    var man = el("details");
    man.appendChild(el("summary", null, "full manifest"));
    man.appendChild(kvTable(flatten(row.manifest, ""), "manifest"));
    section(panel, "Manifest", man);
    panel.hidden = false;
    panel.scrollTop = 0;
  }
  function examples(row) {
    var box = el("div", { "class": "examples" });
    if (row.examples_note) box.appendChild(el("p", { "class": "note" }, row.examples_note));
    (row.examples || []).forEach(function (ex) {
      var fig = el("figure", { "class": "example" });
      fig.dataset.stimulusId = ex.stimulus_id;
      [["human", "human fixation density"], ["model", "model attention"]].forEach(function (side) {
        if (!ex[side[0]]) return;
        var f = el("figure", { "class": "side side-" + side[0] });
        var img = el("img", { alt: side[1] + " on " + ex.stimulus_id, loading: "lazy" });
        img.src = ex[side[0]];
        f.appendChild(img);
        f.appendChild(el("figcaption", null, side[1]));
        fig.appendChild(f);
      });
      fig.appendChild(el("figcaption", { "class": "stimulus" }, "stimulus " + ex.stimulus_id));
      box.appendChild(fig);
    });
    if (!row.examples_note && !(row.examples || []).length) box.appendChild(el("p", { "class": "note" }, "No example maps for this run."));
    return box;
  }

  // ---- wiring ----------------------------------------------------------------------------------
  function render() {
    renderHead();
    var rows = visibleRows().sort(compareRows);
    renderBody(rows);
    renderScatters(rows);
    showDetail();
  }
  document.getElementById("subtitle").textContent = ROWS.length + " runs \u00b7 primary gaze metric: " +
    (DATA.primary || "none") + " \u00b7 built " + DATA.generated_at + " with gaze-harness " + DATA.harness_version;
  fillSelect("filter-task", "task");
  fillSelect("filter-dataset", "dataset");
  fillSelect("filter-attention", "attention");
  var sup = document.getElementById("show-superseded");
  sup.addEventListener("change", function () { state.superseded = sup.checked; render(); });
  window.addEventListener("hashchange", showDetail);
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && !document.getElementById("detail").hidden) {
      history.replaceState(null, "", location.pathname + location.search);
      showDetail();
    }
  });
  render();
  document.body.dataset.ready = "true";
})();
