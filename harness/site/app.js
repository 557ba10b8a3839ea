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
    if (Number.isInteger(v) && digits === 0) return String(v);
    var text = v.toFixed(digits === undefined ? 4 : digits);
    // a value that rounds to zero is shown without a sign (the calibrated uniform map's IG is -1e-17)
    return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
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
                   primary: m.name === DATA.primary, group: "gaze", description: m.description });
  });
  (DATA.task_metrics || []).forEach(function (m) {
    COLUMNS.push({ key: m.name, label: m.name.replace(/^task:/, ""), type: "number", direction: m.direction,
                   value: true, group: "task", description: m.description });
  });
  COLUMNS.push({ key: "n_images", label: "images", type: "number", digits: 0,
                 description: "stimuli the run scored; failed stimuli and constant maps are noted" });
  var TEXT_DESCRIPTIONS = {
    model: "the model, or a reference: the human ceiling (each observer predicted by the others) and the baselines",
    attention: "how the attention map was taken from the model (Grad-CAM, attention rollout, ...)",
    dataset: "the eye-tracking dataset the maps were scored against",
    task: "the task the model solved while its attention was recorded"
  };
  COLUMNS.forEach(function (c) { if (!c.description && TEXT_DESCRIPTIONS[c.key]) c.description = TEXT_DESCRIPTIONS[c.key]; });
  function headerTitle(col) {
    var dir = col.direction ? " (" + col.direction + " is better)" : "";
    return (col.group === "task" ? col.key : col.label) + ": " + (col.description || "") + dir;
  }
  var COL_BY_KEY = {};
  COLUMNS.forEach(function (c) { COL_BY_KEY[c.key] = c; });

  // ceiling-normalised scores (the "ceiling-normalised" box): (model - center-bias) / (ceiling -
  // center-bias), the references of the row's own dataset, task, profile, scoring and stimuli
  function groupKey(r) {
    return [r.dataset, r.task, (r.provenance || {}).metric_profile, r.scoring || "raw", r.n_images,
            r.blur || ""].join("\u0000");
  }
  var REFS = {};
  ROWS.forEach(function (r) {
    if (r.latest === false) return;
    var g = REFS[groupKey(r)] = REFS[groupKey(r)] || {};
    if (r.kind === "ceiling") g.high = r;
    else if (r.kind === "baseline" && r.model === "center-bias") g.low = r;
  });
  function normalised(row, key) {
    var g = REFS[groupKey(row)] || {};
    if (!g.low || !g.high) return null;
    var a = g.low.values[key], b = g.high.values[key], v = row.values[key];
    if (!isNum(a) || !isNum(b) || !isNum(v) || a === b) return null;
    return (v - a) / (b - a);
  }
  function cell(row, col) {
    if (col.value && col.group === "gaze" && state.normalised) return normalised(row, col.key);
    return col.value ? row.values[col.key] : row[col.key];
  }
  function bestFirst(col) { return col.direction === "lower" ? "asc" : "desc"; }

  var primaryCol = COL_BY_KEY[DATA.primary];
  var state = {
    sortKey: primaryCol ? primaryCol.key : "model",
    sortDir: primaryCol ? bestFirst(primaryCol) : "asc",
    task: "", dataset: "", attention: "", superseded: false,
    // the metrics of two profiles are defined differently: one profile at a time, the most common first
    profile: mostCommon(ROWS.map(profileOf)),
    // raw and calibrated numbers are never shown in one table: one scoring at a time, raw first
    scoring: ROWS.some(function (r) { return (r.scoring || "raw") === "raw"; }) || !ROWS.length ? "raw" :
      (ROWS[0].scoring || "raw")
  };

  function profileOf(r) { return String((r.provenance || {}).metric_profile || ""); }
  function mostCommon(values) {
    var counts = {}, best = "", n = -1;
    values.forEach(function (v) { counts[v] = (counts[v] || 0) + 1; });
    Object.keys(counts).sort().forEach(function (v) { if (counts[v] > n) { best = v; n = counts[v]; } });
    return best;
  }

  // ---- filtering and sorting -----------------------------------------------------------------
  function isReference(r) { return r.kind === "ceiling" || r.kind === "baseline"; }
  function visibleRows() {
    return ROWS.filter(function (r) {
      if (!state.superseded && r.latest === false) return false;
      if (state.dataset && r.dataset !== state.dataset) return false;
      if ((r.scoring || "raw") !== state.scoring) return false;
      if (profileOf(r) !== state.profile) return false;
      // references are the yardstick of every task and attention method of their dataset
      if (state.task && r.task !== state.task && !isReference(r)) return false;
      if (state.attention && r.attention !== state.attention && !isReference(r)) return false;
      return true;
    });
  }
  // rows of different datasets never share one ranking: a CAT2000 model (NSS 1.9) sat between OSIE's
  // ceiling and OSIE's models with all datasets shown (found by QA); ranked within each dataset, by
  // name, as `harness leaderboard show` prints them
  function compareRows(a, b) {
    var ds = String(a.dataset || "").localeCompare(String(b.dataset || ""));
    return ds !== 0 ? ds : compareWithin(a, b);
  }
  function compareWithin(a, b) {
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

  // one value at a time (never two scorings or two metric profiles in one table)
  function fillChoice(id, key, valueOf) {
    var select = document.getElementById(id);
    if (!select) return;
    var values = {};
    ROWS.forEach(function (r) { values[valueOf(r)] = true; });
    Object.keys(values).sort().forEach(function (v) {
      var opt = el("option", null, v || "\u2013");
      opt.value = v;
      if (v === state[key]) opt.selected = true;
      select.appendChild(opt);
    });
    select.addEventListener("change", function () { state[key] = select.value; render(); });
  }

  // ---- rendering: table ------------------------------------------------------------------------
  var shownColumns = COLUMNS;
  function columnsFor(rows) {
    return COLUMNS.filter(function (col) {
      return !col.value || rows.some(function (r) { return isNum(r.values[col.key]); });
    });
  }
  function renderHead() {
    var COLUMNS = shownColumns;
    var thead = document.querySelector("#leaderboard thead");
    thead.textContent = "";
    // a first row names the column groups: gaze alignment metrics, task metrics
    var groups = el("tr", { "class": "groups" });
    var spans = [];
    COLUMNS.forEach(function (col) {
      var g = col.group || "";
      var last = spans[spans.length - 1];
      if (last && last.group === g) last.span += 1;
      else spans.push({ group: g, span: 1 });
    });
    spans.forEach(function (sp) {
      var attrs = { colspan: String(sp.span), "class": "group group-" + (sp.group || "none") };
      if (sp.group) attrs.scope = "colgroup";
      var th = el("th", attrs, sp.group === "gaze" ? "gaze alignment with human fixations (mean over stimuli)" :
        sp.group === "task" ? "task performance" : "");
      groups.appendChild(th);
    });
    thead.appendChild(groups);
    var tr = el("tr");
    COLUMNS.forEach(function (col) {
      var th = el("th", { scope: "col", tabindex: "0", title: headerTitle(col) });
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
    var focused = document.activeElement && document.activeElement.dataset &&
      document.activeElement.closest && document.activeElement.closest("#leaderboard thead");
    render();
    if (focused) {  // the header was rebuilt: give the keyboard its place back
      var th = document.querySelector('#leaderboard thead th[data-key="' + key.replace(/["\\]/g, "\\$&") + '"]');
      if (th) th.focus();
    }
  }
  function renderBody(rows) {
    var COLUMNS = shownColumns;
    var tbody = document.querySelector("#leaderboard tbody");
    tbody.textContent = "";
    var datasets = {};
    rows.forEach(function (r) { datasets[r.dataset] = true; });
    var several = Object.keys(datasets).length > 1;
    rows.forEach(function (r, i) {
      var tr = el("tr", { tabindex: "0" });
      tr.dataset.runId = r.run_id;
      if (several && (i === 0 || rows[i - 1].dataset !== r.dataset)) tr.classList.add("dataset-start");
      tr.dataset.kind = r.kind;
      tr.classList.add("kind-" + (KIND_LABEL[r.kind] ? r.kind : "model"));
      if (r.latest === false) tr.classList.add("superseded");
      COLUMNS.forEach(function (col) {
        var td = el("td");
        td.dataset.key = col.key;
        var v = cell(r, col);
        if (col.key === "model") {
          td.appendChild(el("span", { "class": "model-name" }, v));
          if (r.variant) td.appendChild(el("span", { "class": "variant", title: variantTitle(r) }, " [" + r.variant + "]"));
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
          // intervals and significance marks (pages built from run folders), in the metric's own units
          var st = r.statistics;
          if (st && col.group === "gaze" && !state.normalised) {
            var iv = (st.intervals || {})[col.key];
            if (iv && isNum(iv[0]) && isNum(iv[1])) {
              td.title = "95% bootstrap interval over stimuli: [" + fmt(iv[0], 3) + ", " + fmt(iv[1], 3) + "]";
              td.dataset.lo = String(iv[0]);
              td.dataset.hi = String(iv[1]);
            }
            if (col.primary && st.marks) {
              var why = (st.tests || []).filter(function (t) { return !t.significant; }).map(function (t) {
                return "not significantly different from " + t.against + " (paired sign-flip test, Holm-corrected p = " +
                  fmt(t.p_holm, 3) + ")";
              }).join("; ");
              td.appendChild(el("span", { "class": "mark", title: why }, st.marks));
            }
            if (col.primary && (st.untested || []).length) {
              td.appendChild(el("span", { "class": "untested", title: st.untested.join("; ") }, "\u25e6"));
            }
          }
        } else {
          td.textContent = v === null || v === undefined ? "\u2013" : String(v);
        }
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () { openRun(r.run_id); });
      tr.addEventListener("keydown", function (e) { if (e.key === "Enter") openRun(r.run_id); });
      tbody.appendChild(tr);
    });
    var count = rows.length + (rows.length === 1 ? " run" : " runs") + " shown";
    if (!rows.length && ROWS.length) {  // say why, not just an empty table: the filters exclude each other
      var chosen = ["task", "dataset", "attention", "scoring", "profile"].map(function (name) {
        var sel = document.getElementById("filter-" + name);
        return sel && sel.value ? name + " " + sel.value : null;
      }).filter(Boolean);
      count += ": no run has " + chosen.join(", ") + "; change a filter";
    }
    document.getElementById("row-count").textContent = count;
  }

  // Rows of one dataset and task scored on different stimuli (another --limit, an aligned model's
  // held-out subset) do not compare: their means are over other images, and each stimulus' sAUC
  // negatives come from the other stimuli of its run. The line under the table says which, in the
  // words of `harness leaderboard show`.
  function stimuliLabel(r) {
    var s = (r.settings || {}).stimuli;
    if (!s || typeof s !== "object") return "";
    return s.in_sample ? "in-sample" : String(s.subset || "");
  }
  // what mends it, as the command line says it: another --limit, or an aligned model's held-out subset
  function mixedAdvice(sets) {
    var limits = {}, nLimits = 0, subset = false, out = [];
    sets.forEach(function (s) {
      if (s.label) { subset = true; return; }
      if (!limits[String(s.n)]) { limits[String(s.n)] = true; nLimits += 1; }
    });
    if (nLimits > 1) out.push("evaluate every model with the same --limit");
    if (subset) out.push("`harness report` compares an aligned model with its base on its held-out stimuli");
    return out.join("; ");
  }
  function mixedStimuliNotes(rows) {
    var groups = {}, order = [];
    rows.forEach(function (r) {
      var key = r.dataset + "/" + r.task;
      if (!groups[key]) { groups[key] = { sets: {}, order: [] }; order.push(key); }
      var n = isNum(r.n_images) ? r.n_images : null, label = stimuliLabel(r);
      var which = JSON.stringify([n, label]);
      var g = groups[key];
      if (!g.sets[which]) { g.sets[which] = { n: n, label: label, models: [] }; g.order.push(which); }
      g.sets[which].models.push(String(r.model) + (r.variant ? " [" + r.variant + "]" : ""));
    });
    return order.filter(function (key) { return groups[key].order.length > 1; }).map(function (key) {
      var sets = groups[key].order.map(function (w) { return groups[key].sets[w]; });
      sets.sort(function (a, b) {  // the larger first, as the command line does
        return (b.n === null ? 0 : b.n) - (a.n === null ? 0 : a.n) || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0);
      });
      return key + ": rows scored on different stimuli (" + sets.map(function (s) {
        return s.n + " images" + (s.label ? " (" + s.label + ")" : "") + ": " + s.models.join(", ");
      }).join("; ") + "): their means are over different images and do not compare; " + mixedAdvice(sets);
    });
  }
  function renderNotes(rows) {
    var box = document.getElementById("table-notes");
    box.textContent = "";
    var names = [];
    rows.forEach(function (r) { if (names.indexOf(r.dataset) < 0) names.push(r.dataset); });
    if (names.length > 1) {
      box.appendChild(el("p", { "class": "several-datasets" }, "Rows are ranked within each dataset (" +
        names.join(", ") + "): scores on different stimuli and observers do not compare; pick a dataset above " +
        "to see one."));
    }
    mixedStimuliNotes(rows).forEach(function (line) { box.appendChild(el("p", { "class": "mixed-stimuli" }, line)); });
    // in the words of `harness leaderboard show` (table._variant_notes), one paragraph per reason
    Object.keys(VARIANT_NOTES).forEach(function (kind) {
      var other = rows.filter(function (r) { return r.variant && kindsOf(r).indexOf(kind) >= 0; });
      if (!other.length) return;
      var note = VARIANT_NOTES[kind];
      box.appendChild(el("p", { "class": "other-" + kind }, note[0] + " (" + other.map(function (r) {
        return String(r.model) + " [" + r.variant + "]";
      }).join("; ") + "): " + note[1]));
    });
  }

  var VARIANT_NOTES = {
    blur: ["Rows blurred otherwise than the rest",
           "their density metrics use another human density, so their scores do not compare with the others'."],
    task: ["Rows whose task was scored otherwise than the rest",
           "their task columns do not compare with the others' (their gaze metrics do); evaluate them again to " +
           "score the task as the others were."],
    data: ["Rows scored on another version of the dataset's files than the rest",
           "the files changed between their runs (their dataset fingerprint differs), so their scores do not " +
           "compare with the others'; evaluate them again on the same files."]
  };
  var VARIANT_TITLES = { blur: "scored with another blur than the other rows",
                         task: "its task scored otherwise than the other rows",
                         data: "scored on another version of the dataset's files" };

  function kindsOf(r) {  // rows published before the page said why: a blur, as the page then read it
    return r.variant_kinds && r.variant_kinds.length ? r.variant_kinds : ["blur"];
  }

  function variantTitle(r) {
    return kindsOf(r).map(function (k) { return VARIANT_TITLES[k] || k; }).join("; ");
  }

  function nonfiniteOf(r) {
    if (!r.nonfinite) return {};
    try { return typeof r.nonfinite === "string" ? JSON.parse(r.nonfinite) : r.nonfinite; } catch (e) { return {}; }
  }

  // ---- glossary: what each column means -------------------------------------------------------
  function renderGlossary() {
    var dl = document.getElementById("glossary-list");
    if (!dl) return;
    dl.textContent = "";
    COLUMNS.forEach(function (col) {
      if (!col.description) return;
      var dt = el("dt");
      dt.dataset.key = col.key;
      dt.appendChild(el("span", { "class": "term" }, col.group === "task" ? col.key : col.label));
      if (col.direction && ARROW[col.direction]) dt.appendChild(el("span", { "class": "dir" }, " " + ARROW[col.direction]));
      dl.appendChild(dt);
      dl.appendChild(el("dd", null, col.description + (col.direction ? "; " + col.direction + " is better" : "") + "."));
    });
    var tested = ROWS.filter(function (r) { return r.statistics; })[0];
    if (tested) {
      var dt2 = el("dt");
      dt2.appendChild(el("span", { "class": "term" }, "intervals, \u2020 and \u2021"));
      dl.appendChild(dt2);
      dl.appendChild(el("dd", null, "Hover a gaze metric for its 95% percentile-bootstrap interval of the mean over " +
        "stimuli (" + tested.statistics.n_boot + " resamples). On the primary metric, \u2020 marks a model not " +
        "significantly different from the model ranked just above it and \u2021 one not significantly different " +
        "from center-bias (paired sign-flip test over the stimuli both runs scored, Holm-corrected across the table's " +
        "tests, alpha " + tested.statistics.alpha + "), as harness leaderboard show --ci prints them; \u25e6 marks a " +
        "test that was not made (hover it for why: another seed or --limit just above, no center-bias run alike)."));
    }
  }

  // ---- before/after alignment training (harness align) -------------------------------------------
  function renderBeforeAfter() {
    var pairs = DATA.before_after || [];
    var section = document.getElementById("before-after");
    var box = document.getElementById("before-after-tables");
    if (!section || !box || !pairs.length) return;
    section.hidden = false;
    box.textContent = "";
    pairs.forEach(function (p) {
      var agree = isNum(p.top1_agreement) ? "; top-1 agreement with " + p.base + ": " + fmt(100 * p.top1_agreement, 1) + "%" : "";
      box.appendChild(el("h3", null, p.base + " \u2192 " + p.aligned + " on " + p.dataset + "/" + p.task + " (" + p.n +
                         " held-out stimuli" + agree + ")"));
      var table = el("table", { "class": "before-after" });
      var head = el("tr");
      ["metric", "before", "after", "after \u2212 before [95% CI]", ""].forEach(function (h) { head.appendChild(el("th", null, h)); });
      table.appendChild(el("thead")).appendChild(head);
      var body = el("tbody");
      p.metrics.forEach(function (m) {
        var tr = el("tr");
        tr.appendChild(el("td", null, m.name));
        tr.appendChild(el("td", null, fmt(m.before, 4)));
        tr.appendChild(el("td", null, fmt(m.after, 4)));
        tr.appendChild(el("td", null, (m.diff >= 0 ? "+" : "") + fmt(m.diff, 4) + " [" + fmt(m.lo, 4) + ", " + fmt(m.hi, 4) + "]"));
        tr.appendChild(el("td", null, m.better === true ? "\u25b2" : m.better === false ? "\u25bc" : "n.s."));
        body.appendChild(tr);
      });
      table.appendChild(body);
      box.appendChild(table);
    });
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
  // One plot per dataset x task x number of images: runs on other stimuli are not comparable, and
  // the references (ceiling, baselines) are those of the same dataset and number of images.
  function renderScatters(rows) {
    var box = document.getElementById("scatters");
    box.textContent = "";
    var x = DATA.primary;
    var groups = {}, order = [];
    rows.forEach(function (r) {
      if (isReference(r) || r.task === "free-viewing") return;
      var k = JSON.stringify([r.dataset, r.task, isNum(r.n_images) ? r.n_images : -1]);
      if (!groups[k]) { groups[k] = []; order.push(k); }
      groups[k].push(r);
    });
    order.sort(function (a, b) {
      var pa = JSON.parse(a), pb = JSON.parse(b);
      return String(pa[0]).localeCompare(String(pb[0])) || String(pa[1]).localeCompare(String(pb[1])) || pb[2] - pa[2];
    });
    var drawn = 0;
    order.forEach(function (k) {
      var key = JSON.parse(k), members = groups[k];
      var y = taskKey(members);
      if (!x || !y) return;
      var pts = members.filter(function (r) { return isNum(r.values[x]) && isNum(r.values[y]); });
      if (!pts.length) return;
      var refs = rows.filter(function (r) {
        return isReference(r) && r.dataset === key[0] && (isNum(r.n_images) ? r.n_images : -1) === key[2] && isNum(r.values[x]);
      });
      var fig = scatter(key[0], key[1], key[2], x, y, pts, refs);
      box.appendChild(fig);
      placeLabels(fig);  // needs the rendered text to measure it
      drawn += 1;
    });
    if (!drawn) box.appendChild(el("p", { "class": "empty" },
      "No shown run has both a gaze metric and a task metric (free viewing has no task score)."));
  }

  var FONT = 12, ASC = 10, DESC = 3;  // label font size and its extent above and below the baseline
  function scatter(dataset, task, nImages, x, y, pts, refs) {
    var xcol = COL_BY_KEY[x], ycol = COL_BY_KEY[y];
    var xs = pts.map(function (r) { return r.values[x]; });
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    var span = hi - lo || Math.max(Math.abs(hi) * 0.2, 0.1);
    // a reference far from the models would squeeze them into a corner: it is drawn at the edge
    // of the plot with its value instead of as a line
    var near = refs.filter(function (r) { return r.values[x] >= lo - 0.5 * span && r.values[x] <= hi + 0.5 * span; });
    var far = refs.filter(function (r) { return near.indexOf(r) < 0; });
    var W = 640, M = { l: 70, r: 28, t: 18 + 16 * refs.length, b: 52 }, PH = 330, H = M.t + PH + M.b;
    var xr = range(xs.concat(near.map(function (r) { return r.values[x]; })));
    var yr = range(pts.map(function (r) { return r.values[y]; }));
    function sx(v) { return M.l + (v - xr[0]) / (xr[1] - xr[0]) * (W - M.l - M.r); }
    function sy(v) { return H - M.b - (v - yr[0]) / (yr[1] - yr[0]) * (H - M.t - M.b); }
    var fig = el("figure", { "class": "scatter" });
    fig.dataset.dataset = dataset;
    fig.dataset.task = task;
    fig.dataset.nImages = String(nImages);
    fig.appendChild(el("figcaption", null, dataset + " \u00b7 " + task + " \u00b7 " +
      (nImages >= 0 ? nImages + " images" : "images unknown")));
    var s = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" });
    s.appendChild(svg("title", null, "Gaze alignment (" + x + ") against task performance (" + y + ") on " + dataset +
      ", " + task + ", " + nImages + " images"));
    s.appendChild(svg("rect", { x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, "class": "plot-area" }));
    niceTicks(xr[0], xr[1], 6).forEach(function (t) {
      s.appendChild(svg("line", { x1: sx(t), x2: sx(t), y1: H - M.b, y2: H - M.b + 5, "class": "tick" }));
      s.appendChild(svg("text", { x: sx(t), y: H - M.b + 18, "class": "tick-label", "text-anchor": "middle" }, fmt(t, 2)));
    });
    niceTicks(yr[0], yr[1], 5).forEach(function (t) {
      s.appendChild(svg("line", { x1: M.l - 5, x2: M.l, y1: sy(t), y2: sy(t), "class": "tick" }));
      s.appendChild(svg("text", { x: M.l - 8, y: sy(t) + 4, "class": "tick-label", "text-anchor": "end" }, fmt(t, 3)));
    });
    s.appendChild(svg("text", { x: (M.l + W - M.r) / 2, y: H - 12, "class": "axis-label", "text-anchor": "middle" },
      "gaze alignment: " + x + " " + (xcol && ARROW[xcol.direction] || "")));
    s.appendChild(svg("text", { x: 16, y: (M.t + H - M.b) / 2, "class": "axis-label", "text-anchor": "middle",
      transform: "rotate(-90 16 " + (M.t + H - M.b) / 2 + ")" }, "task: " + y.replace(/^task:/, "") + " " + (ycol && ARROW[ycol.direction] || "")));
    // references: each label on its own line above the plot, so none can cover another; the
    // labels of the dashed lines on the lowest lines, next to the plot
    refs.slice().sort(function (a, b) {
      return (near.indexOf(b) >= 0) - (near.indexOf(a) >= 0) || a.values[x] - b.values[x];
    }).forEach(function (r, i) {
      var ly = M.t - 8 - i * 16;
      var g = svg("g", { "class": "reference reference-" + r.kind });
      var name = (KIND_LABEL[r.kind] || r.kind) + ": " + r.model;
      var value = x + " " + fmt(r.values[x], 2);
      if (near.indexOf(r) >= 0) {
        var rx = sx(r.values[x]);
        g.appendChild(svg("line", { x1: rx, x2: rx, y1: i === 0 ? ly + 3 : M.t, y2: H - M.b }));
        var right = rx > (M.l + W - M.r) / 2;  // labels right of centre end at their line
        g.appendChild(svg("text", { x: rx + (right ? -4 : 4), y: ly, "class": "ref-label", "text-anchor": right ? "end" : "start" },
          name + " (" + value + ")"));
      } else {
        g.classList.add("offscale");
        var out = r.values[x] > hi;
        var ex = out ? W - M.r : M.l;
        g.appendChild(svg("path", { d: out ? "M" + (ex - 8) + " " + (ly - 8) + " l8 4 l-8 4 z" : "M" + (ex + 8) + " " + (ly - 8) + " l-8 4 l8 4 z",
          "class": "arrow" }));
        g.appendChild(svg("text", { x: out ? ex - 12 : ex + 12, y: ly, "class": "ref-label", "text-anchor": out ? "end" : "start" },
          name + " (" + value + ", off the axis " + (out ? "to the right" : "to the left") + ")"));
      }
      g.appendChild(svg("title", null, r.model + " (" + r.kind + "): " + x + " = " + fmt(r.values[x])));
      s.appendChild(g);
    });
    pts.forEach(function (r) {
      var g = svg("g", { "class": "point", tabindex: "0" });
      g.setAttribute("data-run-id", r.run_id);
      var cx = sx(r.values[x]), cy = sy(r.values[y]);
      g.appendChild(svg("circle", { cx: cx, cy: cy, r: 5 }));
      g.appendChild(svg("text", { x: cx + 8, y: cy + 4, "class": "point-label", "text-anchor": "start" }, r.model + " [" + r.attention + "]"));
      g.appendChild(svg("title", null, r.model + " [" + r.attention + "]: " + x + " = " + fmt(r.values[x]) + ", " + y + " = " + fmt(r.values[y])));
      g.addEventListener("click", function () { openRun(r.run_id); });
      g.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openRun(r.run_id); } });
      s.appendChild(g);
    });
    fig.appendChild(s);
    fig._plot = { W: W, H: H, M: M };
    return fig;
  }

  // Point labels without collisions: for each point (left to right), the first free spot among
  // right, left, above, below, then further up or down with a leader line. Free means inside the
  // plot area and clear of every label placed so far and of every point. A label with no free spot
  // is left out (its point keeps its tooltip) and named under the plot.
  function placeLabels(fig) {
    var s = fig.querySelector("svg"), P = fig._plot;
    var area = { x0: P.M.l + 2, y0: P.M.t + 2, x1: P.W - P.M.r - 2, y1: P.H - P.M.b - 2 };
    var groups = Array.prototype.slice.call(s.querySelectorAll("g.point"));
    var items = groups.map(function (g) {
      var c = g.querySelector("circle"), t = g.querySelector("text.point-label");
      var w = 0;
      try { w = t.getComputedTextLength(); } catch (e) { w = 0; }
      if (!w) w = t.textContent.length * FONT * 0.6;
      return { g: g, t: t, cx: Number(c.getAttribute("cx")), cy: Number(c.getAttribute("cy")), w: w };
    });
    var taken = items.map(function (it) { return { x0: it.cx - 7, y0: it.cy - 7, x1: it.cx + 7, y1: it.cy + 7 }; });
    function free(b) {
      if (b.x0 < area.x0 || b.x1 > area.x1 || b.y0 < area.y0 || b.y1 > area.y1) return false;
      return taken.every(function (o) { return b.x1 <= o.x0 || b.x0 >= o.x1 || b.y1 <= o.y0 || b.y0 >= o.y1; });
    }
    function box(x, y, anchor, w) {
      var x0 = anchor === "start" ? x : anchor === "end" ? x - w : x - w / 2;
      return { x0: x0 - 1, y0: y - ASC - 1, x1: x0 + w + 1, y1: y + DESC + 1 };
    }
    var left = [];
    items.sort(function (a, b) { return a.cx - b.cx || a.cy - b.cy; }).forEach(function (it) {
      // candidate spots: baselines from near to far, the label right of the point, left of it,
      // centred on it, or against the plot's right or left edge; tried nearest first
      var w = it.w, cands = [];
      var dys = [4, -9, 18];
      for (var k = 1; k <= 20; k++) dys.push(4 - (8 + k * 15), 4 + (8 + k * 15));
      dys.forEach(function (dy) {
        [it.cx + 8, it.cx - 8 - w, it.cx - w / 2, area.x1 - w - 1, area.x0 + 1].forEach(function (lx) {
          var gap = it.cx < lx ? lx - it.cx : it.cx > lx + w ? it.cx - lx - w : 0;
          cands.push({ x: lx, dy: dy, cost: Math.abs(dy - 4) + gap });
        });
      });
      cands.sort(function (a, b) { return a.cost - b.cost; });
      for (var i = 0; i < cands.length; i++) {
        var lx = cands[i].x, dy = cands[i].dy, ly = it.cy + dy, b = box(lx, ly, "start", w);
        if (!free(b)) continue;
        it.t.setAttribute("x", lx);
        it.t.setAttribute("y", ly);
        it.t.setAttribute("text-anchor", "start");
        if (cands[i].cost > 16) {  // away from its point: a leader line to the label's nearest side
          var tx = Math.min(Math.max(it.cx, lx), lx + w), ty = dy < 0 ? ly + DESC : ly - ASC;
          it.g.insertBefore(svg("line", { x1: it.cx, y1: it.cy, x2: tx, y2: ty, "class": "leader" }), it.t);
        }
        taken.push(b);
        return;
      }
      it.t.classList.add("unplaced");
      it.t.setAttribute("display", "none");
      left.push(it.t.textContent);
    });
    if (left.length) fig.appendChild(el("p", { "class": "note unplaced-note" }, "Not labelled for lack of space (hover the points): " + left.join(", ")));
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
    section(panel, "Examples", examples(row));
    section(panel, "Metrics", kvTable(COLUMNS.filter(function (c) { return c.value && row.values[c.key] !== undefined; })
      .map(function (c) { return [(c.group === "task" ? c.key : c.label) + (ARROW[c.direction] ? " " + ARROW[c.direction] : ""),
                                  fmt(row.values[c.key])]; })));
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
  // Examples, three to a page: page 1 shows the run's best, median and worst stimuli by NSS, the
  // next pages walk down its NSS ranking. Each with its id, rank and per-stimulus scores.
  var PER_PAGE = 3;
  var ROLE_TEXT = { best: "best", median: "median", worst: "worst" };
  function examples(row) {
    var box = el("div", { "class": "examples" });
    var items = row.examples || [];
    if (row.examples_note) box.appendChild(el("p", { "class": "note" }, row.examples_note));
    if (!items.length) {
      if (!row.examples_note) box.appendChild(el("p", { "class": "note" }, "No example maps for this run."));
      return box;
    }
    var ranked = items.filter(function (ex) { return isNum(ex.rank); });
    if (ranked.length) {
      box.appendChild(el("p", { "class": "examples-intro" }, "Chosen by per-stimulus " + (DATA.examples_by || "nss") +
        " among the run's " + ranked[0].of + " scored stimuli: the first page shows the best, the median and the " +
        "worst; the next pages walk down the ranking."));
    }
    if (DATA.colour_scale) {
      var legend = el("div", { "class": "colour-scale" });
      legend.appendChild(el("span", { "class": "end low" }, "low"));
      var img = el("img", { alt: "colour scale from low to high", "class": "scale" });
      img.src = DATA.colour_scale;
      legend.appendChild(img);
      legend.appendChild(el("span", { "class": "end high" }, "high"));
      legend.appendChild(el("span", { "class": "scale-text" }, "Each map is coloured from its own minimum " +
        "(transparent) to its maximum (bright) over the stimulus; cyan dots are the observers' fixations."));
      box.appendChild(legend);
    }
    var pages = Math.ceil(items.length / PER_PAGE);
    var nav = el("div", { "class": "pager" });
    var prev = el("button", { type: "button", "class": "prev" }, "\u2039 previous");
    var info = el("span", { "class": "page-info", "aria-live": "polite" });
    var next = el("button", { type: "button", "class": "next" }, "next \u203a");
    nav.appendChild(prev);
    nav.appendChild(info);
    nav.appendChild(next);
    if (pages > 1) box.appendChild(nav);
    var list = el("div", { "class": "example-page" });
    box.appendChild(list);
    var page = 0;
    function show() {
      list.textContent = "";
      list.dataset.page = String(page + 1);
      items.slice(page * PER_PAGE, page * PER_PAGE + PER_PAGE).forEach(function (ex) { list.appendChild(example(ex)); });
      info.textContent = "page " + (page + 1) + " of " + pages + " \u00b7 examples " + (page * PER_PAGE + 1) + "\u2013" +
        Math.min(items.length, page * PER_PAGE + PER_PAGE) + " of " + items.length;
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    }
    prev.addEventListener("click", function () { if (page > 0) { page -= 1; show(); } });
    next.addEventListener("click", function () { if (page < pages - 1) { page += 1; show(); } });
    show();
    return box;
  }
  function example(ex) {
    var fig = el("figure", { "class": "example" });
    fig.dataset.stimulusId = ex.stimulus_id;
    if (ex.role) fig.dataset.role = ex.role;
    var cap = el("figcaption", { "class": "stimulus" });
    if (ex.role) cap.appendChild(el("span", { "class": "role role-" + ex.role }, ROLE_TEXT[ex.role] || ex.role));
    cap.appendChild(el("span", { "class": "sid" }, "stimulus " + ex.stimulus_id));
    if (isNum(ex.rank)) cap.appendChild(el("span", { "class": "rank" }, "rank " + ex.rank + " of " + ex.of));
    var scores = el("span", { "class": "scores" });
    Object.keys(ex.scores || {}).forEach(function (k) {
      var sc = el("span", { "class": "score" }, k + " " + fmt(ex.scores[k], 3));
      sc.dataset.metric = k;
      sc.dataset.value = String(ex.scores[k]);
      scores.appendChild(sc);
    });
    cap.appendChild(scores);
    fig.appendChild(cap);
    [["human", "human fixation density"], ["model", "model attention"]].forEach(function (side) {
      if (!ex[side[0]]) return;
      var f = el("figure", { "class": "side side-" + side[0] });
      var img = el("img", { alt: side[1] + " on " + ex.stimulus_id });
      img.src = ex[side[0]];
      f.appendChild(img);
      f.appendChild(el("figcaption", null, side[1]));
      fig.appendChild(f);
    });
    return fig;
  }

  // ---- wiring ----------------------------------------------------------------------------------
  function render() {
    var rows = visibleRows().sort(compareRows);
    shownColumns = columnsFor(rows);
    renderHead();
    renderBody(rows);
    renderNotes(rows);
    renderScatters(rows);
    showDetail();
  }
  // the runs the table shows by default; superseded ones are counted apart (they are hidden until asked for)
  var current = ROWS.filter(function (r) { return r.latest !== false; }).length;
  var superseded = ROWS.length - current;
  document.getElementById("subtitle").textContent = current + (current === 1 ? " run" : " runs") +
    (superseded ? " (and " + superseded + " superseded)" : "") + " \u00b7 primary gaze metric: " +
    (DATA.primary || "none") + " \u00b7 built " + DATA.generated_at + " with gaze-harness " + DATA.harness_version;
  renderGlossary();
  renderBeforeAfter();
  fillSelect("filter-task", "task");
  fillSelect("filter-dataset", "dataset");
  fillSelect("filter-attention", "attention");
  fillChoice("filter-scoring", "scoring", function (r) { return r.scoring || "raw"; });
  fillChoice("filter-profile", "profile", profileOf);
  var norm = document.getElementById("normalised");
  norm.addEventListener("change", function () {
    state.normalised = norm.checked;
    var sorted = COL_BY_KEY[state.sortKey];
    var bestWas = sorted && sorted.group === "gaze" && sorted.direction ? state.sortDir === bestFirst(sorted) : null;
    // normalised, every gaze metric is better higher (KLD too)
    COLUMNS.forEach(function (c) {
      if (c.group !== "gaze") return;
      if (c.rawDirection === undefined) c.rawDirection = c.direction;
      c.direction = norm.checked ? "higher" : c.rawDirection;
    });
    // the user's order kept (best or worst first), not reset to best first: a KLD sorted worst first
    // came back ascending after a tick and an untick (found by the leaderboard QA, round 2)
    if (bestWas !== null) state.sortDir = bestWas ? bestFirst(sorted) : (bestFirst(sorted) === "asc" ? "desc" : "asc");
    render();
  });
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
