"""The leaderboard page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright, the site served from a local port. Sorting, filtering, the detail view, the scatter
plots, escaping (no dialog fires) and the rule that the page requests nothing outside its folder;
at 1400 pixels wide, a table as wide as a real one with no page-wide scrollbar, the metric
glossary, the examples (best, median, worst, paged, with a colour scale) and scatter labels that do
not collide. Screenshots are written under pytest's temporary folder (``screenshots*/``), never
into the repository."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.leaderboard.site import build_site

try:
    from tests.site_helpers import ALL_METRICS, page_data, sample_results, wide_results, write_run
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from site_helpers import ALL_METRICS, page_data, sample_results, wide_results, write_run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
XSS = "<script>alert(1)</script>"
OSIE_PRESENT = (Path(os.environ["HARNESS_DATA_DIR"]) / "osie" / "eye" / "fixations.mat").is_file()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]


N_REAL = 8  # stimuli of the real run: examples on three pages (3, 3, 2)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go (pytest's temporary folder: look at them, commit nothing)."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def site(root) -> Path:
    """Synthetic runs (ceiling, baselines, classification models, a superseded run, an XSS name)
    plus, when the OSIE data is here, one real `harness eval` run whose kept maps give the example
    overlays (the overlay tests themselves fail without the data)."""
    results = root / "runs"
    sample_results(results)
    if OSIE_PRESENT:
        r = CliRunner().invoke(main, ["eval", "--model", "center-bias", "--dataset", "osie", "--limit", str(N_REAL),
                                      "--output", str(results / "real"), "--no-references", "--no-show"])
        assert r.exit_code == 0, r.output
    return build_site(results, root / "site").parent


@pytest.fixture(scope="module")
def wide_site(root) -> Path:
    """A leaderboard as wide as a real one (all nine gaze metrics, two task metrics, long model
    names), models close together, the same models on 700 and on 50 images (wide_results)."""
    wide_results(root / "wide-runs")
    return build_site(root / "wide-runs", root / "wide").parent


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server(root, site, wide_site):
    """Serves both sites: ``<server>site/`` and ``<server>wide/``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


class Watch:
    """Everything the page did that a test must check afterwards."""

    def __init__(self, page):
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda req: self.requests.append(req.url))
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()


def _open(browser, url: str, prefix: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    watch = Watch(pg)
    pg.goto(url)
    pg.wait_for_selector("body[data-ready=true]")
    yield pg, watch
    context.close()
    outside = [u for u in watch.requests if not u.startswith(prefix)]
    assert outside == [], f"requests outside the site's folder: {outside}"
    assert watch.dialogs == [] and watch.errors == []


@pytest.fixture
def page(browser, server):
    yield from _open(browser, server + "site/index.html", server + "site/")


@pytest.fixture
def wide_page(browser, server):
    yield from _open(browser, server + "wide/index.html", server + "wide/")


def wait_until(pg, expression: str, timeout_s: float = 10.0) -> None:
    """Poll ``expression`` (page.wait_for_function evaluates strings with eval, which the page's
    Content-Security-Policy rightly forbids)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not pg.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        pg.wait_for_timeout(50)


IMAGES_LOADED = ("(imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0))"
                 "([...document.querySelectorAll('#detail .examples img')])")
EXAMPLE_IMGS = "#detail .examples figure.example img"


def column(pg, key: str) -> list:
    return pg.eval_on_selector_all(
        f'#leaderboard tbody td[data-key="{key}"]',
        "tds => tds.map(td => td.dataset.value === undefined ? null : Number(td.dataset.value))")


def texts(pg, selector: str) -> list[str]:
    return pg.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")


def test_table_sorts_by_primary_then_by_clicked_column(page, site):
    pg, watch = page
    data = page_data(site / "index.html")
    latest = [r for r in data["rows"] if r["latest"]]
    nss = column(pg, "nss")
    assert len(nss) == len(latest)
    present = [v for v in nss if v is not None]
    assert present == sorted(present, reverse=True) and nss[: len(present)] == present  # best first, gaps last
    assert texts(pg, "#leaderboard tbody tr:first-child .model-name") == ["human-ceiling"]
    # directions shown in the headers
    assert texts(pg, 'th[data-key="nss"] .dir') == ["↑"] and texts(pg, 'th[data-key="kld"] .dir') == ["↓"]
    assert pg.get_attribute('th[data-key="nss"]', "aria-sort") == "descending"

    pg.click('th[data-key="kld"]')  # lower is better: best (lowest) first
    kld = [v for v in column(pg, "kld") if v is not None]
    assert kld == sorted(kld) and kld[0] == 0.6
    assert pg.get_attribute('th[data-key="kld"]', "aria-sort") == "ascending"
    assert pg.get_attribute('th[data-key="nss"]', "aria-sort") == "none"
    pg.click('th[data-key="kld"]')
    kld = [v for v in column(pg, "kld") if v is not None]
    assert kld == sorted(kld, reverse=True)

    pg.click('th[data-key="task:top1"]')  # numeric, not lexicographic
    top1 = column(pg, "task:top1")
    values = [v for v in top1 if v is not None]
    assert values == sorted(values, reverse=True) == [0.77, 0.75, 0.5]
    assert top1[3:] == [None] * (len(top1) - 3)

    pg.click('th[data-key="model"]')
    names = texts(pg, "#leaderboard tbody .model-name")
    assert names == sorted(names, key=lambda s: s.lower()) or names == sorted(names)


def test_filters_by_task_dataset_and_attention(page, site):
    pg, watch = page
    pg.select_option("#filter-task", "classification")
    rows = pg.eval_on_selector_all("#leaderboard tbody tr", "trs => trs.map(tr => [tr.dataset.kind, "
                                   "tr.querySelector('td[data-key=task]').textContent, "
                                   "tr.querySelector('.model-name').textContent])")
    models = sorted(m for k, t, m in rows if k == "model")
    assert models == sorted(["efficientnet-lite0", "efficientnet-lite1", XSS])
    assert all(t == "classification" for k, t, m in rows if k == "model")
    refs = sorted(m for k, t, m in rows if k != "model")  # the yardsticks stay
    expected = sorted(r["model"] for r in page_data(site / "index.html")["rows"]
                      if r["kind"] in ("ceiling", "baseline") and r["latest"])
    assert refs == expected and {"center-bias", "human-ceiling", "uniform"} <= set(refs)
    assert texts(pg, "#row-count") == [f"{3 + len(refs)} runs shown"]
    # the subtitle counts current runs, the superseded one apart (it counted every run as one)
    rows = page_data(site / "index.html")["rows"]
    current = sum(r["latest"] is not False for r in rows)
    assert len(rows) - current == 1
    assert texts(pg, "#subtitle")[0].startswith(f"{current} runs (and 1 superseded) \u00b7 primary gaze metric: ")

    pg.select_option("#filter-attention", "rollout")
    models = sorted(m for k, m in pg.eval_on_selector_all(
        "#leaderboard tbody tr", "trs => trs.map(tr => [tr.dataset.kind, tr.querySelector('.model-name').textContent])")
        if k == "model")
    assert models == ["efficientnet-lite1"]

    pg.select_option("#filter-task", "")
    pg.select_option("#filter-attention", "")
    pg.select_option("#filter-dataset", "osie")
    assert len(column(pg, "nss")) == sum(r["latest"] for r in page_data(site / "index.html")["rows"])

    # superseded runs are hidden until asked for
    assert pg.locator("#leaderboard tbody tr.superseded").count() == 0
    pg.check("#show-superseded")
    old = pg.locator("#leaderboard tbody tr.superseded")
    assert old.count() == 1
    assert old.locator(".model-name").text_content() == "efficientnet-lite0"
    assert old.locator(".badge-superseded").text_content() == "superseded"


def test_reference_rows_are_marked(page, site):
    pg, watch = page
    ceiling = pg.locator("#leaderboard tbody tr.kind-ceiling")
    assert ceiling.count() == 1 and ceiling.locator(".badge").text_content() == "human ceiling"
    baselines = pg.locator("#leaderboard tbody tr.kind-baseline")
    n = sum(r["kind"] == "baseline" and r["latest"] for r in page_data(site / "index.html")["rows"])
    assert baselines.count() == n >= 2
    assert pg.locator("#leaderboard tbody tr.kind-model .badge").count() == 0
    assert set(texts(pg, "#leaderboard tbody tr.kind-baseline .badge")) == {"baseline"}


def test_scatter_plots_alignment_against_task(page):
    pg, watch = page
    figs = pg.locator("figure.scatter")
    assert figs.count() == 1  # only classification has a task score; free viewing has none
    fig = figs.first
    assert fig.get_attribute("data-dataset") == "osie" and fig.get_attribute("data-task") == "classification"
    assert fig.get_attribute("data-n-images") == "4" and "4 images" in fig.locator("figcaption").text_content()
    points = fig.locator("g.point")
    assert points.count() == 3
    labels = sorted(texts(pg, "figure.scatter g.point text.point-label"))
    assert labels == sorted(["efficientnet-lite0 [grad-cam]", "efficientnet-lite1 [rollout]", f"{XSS} [grad-cam]"])
    # x follows NSS, y follows top-1 (nss, top1): lite1 (1.6, .77), XSS (1.1, .50), lite0 (0.9, .75)
    pos = {}
    for i in range(3):
        g = points.nth(i)
        c = g.locator("circle")
        pos[g.locator("text").text_content().split(" [")[0]] = (float(c.get_attribute("cx")), float(c.get_attribute("cy")))
    assert pos["efficientnet-lite1"][0] > pos[XSS][0] > pos["efficientnet-lite0"][0]
    assert pos["efficientnet-lite1"][1] < pos["efficientnet-lite0"][1] < pos[XSS][1]  # SVG y grows downwards
    x_ratio = (pos["efficientnet-lite1"][0] - pos[XSS][0]) / (pos[XSS][0] - pos["efficientnet-lite0"][0])
    y_ratio = (pos[XSS][1] - pos["efficientnet-lite0"][1]) / (pos["efficientnet-lite0"][1] - pos["efficientnet-lite1"][1])
    assert x_ratio == pytest.approx(0.5 / 0.2) and y_ratio == pytest.approx(0.25 / 0.02)  # linear axes
    refs = texts(pg, "figure.scatter g.reference text.ref-label")
    # center-bias (1.2) lies among the models (0.9 to 1.6): a dashed line; the ceiling (2.5) and
    # uniform (0.0) would squeeze them into a corner: marked at the edge with their values
    assert "baseline: center-bias (nss 1.20)" in refs
    assert "human ceiling: human-ceiling (nss 2.50, off the axis to the right)" in refs
    assert "baseline: uniform (nss 0.00, off the axis to the left)" in refs
    assert fig.locator("g.reference:not(.offscale) line").count() == 1
    # a point opens its run from the keyboard as from the mouse
    point = points.nth(0)
    point.focus()
    pg.keyboard.press("Enter")
    pg.locator("#detail").wait_for(state="visible")
    assert pg.evaluate("location.hash") == "#run=" + quote(point.get_attribute("data-run-id"), safe="")
    pg.keyboard.press("Escape")
    # filtering to one attention method redraws the plot
    pg.select_option("#filter-attention", "rollout")
    assert pg.locator("figure.scatter g.point").count() == 1


def test_detail_view_shows_provenance(page, site):
    pg, watch = page
    data = page_data(site / "index.html")
    lite1 = next(r for r in data["rows"] if r["model"] == "efficientnet-lite1")
    pg.click(f'#leaderboard tbody tr[data-run-id="{lite1["run_id"]}"]')
    detail = pg.locator("#detail")
    detail.wait_for(state="visible")
    assert pg.evaluate("location.hash") == "#run=" + quote(lite1["run_id"], safe="")
    text = detail.text_content()
    for needle in (lite1["run_id"], "ab" * 32, "f0" * 32, "2.13.0", "metric_params.sigma_px", "rollout",
                   "org/efficientnet-lite1", "saved no attention maps"):
        assert needle in text, needle
    assert detail.locator("h2 .model-name").text_content() == "efficientnet-lite1"
    assert texts(pg, "#detail table.packages th") == ["numpy", "torch"]
    assert pg.locator("#leaderboard tbody tr.selected").get_attribute("data-run-id") == lite1["run_id"]
    pg.click("#detail button.close")
    assert detail.is_hidden() and pg.evaluate("location.hash") == ""
    pg.keyboard.press("Escape")  # harmless when closed
    # keyboard: Enter on a focused row opens it, Escape closes
    pg.focus(f'#leaderboard tbody tr[data-run-id="{lite1["run_id"]}"]')
    pg.keyboard.press("Enter")
    detail.wait_for(state="visible")
    pg.keyboard.press("Escape")
    assert detail.is_hidden()


def test_detail_view_overlays_human_density_beside_the_model(page, site, server, osie_dir, shots):
    """The real `harness eval` run: its kept maps beside the human density, served as PNGs."""
    pg, watch = page
    detail = pg.locator("#detail")
    real = next(r for r in page_data(site / "index.html")["rows"] if r["examples"])
    assert len(real["examples"]) == N_REAL
    pg.goto(server + "site/index.html#run=" + quote(real["run_id"], safe=""))
    detail.wait_for(state="visible")
    imgs = detail.locator("figure.example img")
    assert imgs.count() == 2 * 3  # the first page: three stimuli, human and model each
    wait_until(pg, IMAGES_LOADED)
    widths = pg.eval_on_selector_all(EXAMPLE_IMGS, "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [360] * 6
    assert texts(pg, "#detail figure.example .sid") == [f"stimulus {e['stimulus_id']}" for e in real["examples"][:3]]
    pg.screenshot(path=str(shots / "leaderboard-detail.png"), full_page=False)
    assert (shots / "leaderboard-detail.png").stat().st_size > 10_000


def test_examples_show_best_median_worst_with_scores_a_colour_scale_and_pages(page, site, server, shots):
    """Page 1: the best, median and worst stimuli by NSS with their per-stimulus NSS and AUC and
    rank; a colour scale; next/previous walk through the other examples, three at a time."""
    pg, watch = page
    real = next(r for r in page_data(site / "index.html")["rows"] if r["examples"])
    pg.goto(server + "site/index.html#run=" + quote(real["run_id"], safe=""))
    pg.locator("#detail").wait_for(state="visible")
    wait_until(pg, IMAGES_LOADED)
    figs = pg.locator("#detail figure.example")
    assert [figs.nth(i).get_attribute("data-role") for i in range(3)] == ["best", "median", "worst"]
    assert texts(pg, "#detail figure.example .role") == ["best", "median", "worst"]
    assert texts(pg, "#detail figure.example .rank") == [f"rank 1 of {N_REAL}", f"rank {(N_REAL - 1) // 2 + 1} of {N_REAL}",
                                                         f"rank {N_REAL} of {N_REAL}"]
    nss = [float(v) for v in pg.eval_on_selector_all("#detail figure.example .score[data-metric=nss]",
                                                     "els => els.map(e => e.dataset.value)")]
    assert nss == [e["scores"]["nss"] for e in real["examples"][:3]] and nss[0] > nss[1] > nss[2]
    assert pg.locator("#detail figure.example .score[data-metric=auc_judd]").count() == 3
    assert all(t.startswith("nss ") for t in texts(pg, "#detail figure.example .score[data-metric=nss]"))
    # the colour scale of the maps, loaded, with its two ends named
    scale = pg.locator("#detail .colour-scale")
    assert scale.is_visible() and texts(pg, "#detail .colour-scale .end") == ["low", "high"]
    assert pg.evaluate("(i => i.complete && i.naturalWidth === 256)(document.querySelector('#detail .colour-scale img'))")
    pg.screenshot(path=str(shots / "examples-page-1.png"))
    # paging
    prev, nxt = pg.locator("#detail .pager button.prev"), pg.locator("#detail .pager button.next")
    assert prev.is_disabled() and nxt.is_enabled()
    assert texts(pg, "#detail .pager .page-info") == [f"page 1 of 3 \u00b7 examples 1\u20133 of {N_REAL}"]
    seen = []
    for page_no in (1, 2, 3):
        ids = pg.eval_on_selector_all("#detail figure.example", "fs => fs.map(f => f.dataset.stimulusId)")
        assert ids == [e["stimulus_id"] for e in real["examples"][3 * (page_no - 1): 3 * page_no]]
        seen += ids
        if page_no < 3:
            nxt.click()
            wait_until(pg, IMAGES_LOADED)
    assert nxt.is_disabled() and prev.is_enabled() and len(set(seen)) == N_REAL
    ranks = [int(t.split()[1]) for t in texts(pg, "#detail figure.example .rank")]
    assert ranks == sorted(ranks)  # later pages walk down the ranking
    pg.screenshot(path=str(shots / "examples-page-3.png"))
    prev.click()
    assert pg.eval_on_selector_all("#detail figure.example", "fs => fs.map(f => f.dataset.stimulusId)") == \
        [e["stimulus_id"] for e in real["examples"][3:6]]


def test_script_in_a_model_name_is_shown_as_text(page, site):
    pg, watch = page
    cell = pg.locator("#leaderboard tbody .model-name", has_text="alert(1)")
    assert cell.count() == 1 and cell.text_content() == XSS
    assert cell.is_visible()
    assert pg.evaluate("document.querySelectorAll('script').length") == 2
    xss = next(r for r in page_data(site / "index.html")["rows"] if r["model"] == XSS)
    pg.click(f'#leaderboard tbody tr[data-run-id="{xss["run_id"]}"]')
    assert pg.locator("#detail h2 .model-name").text_content() == XSS
    pg.wait_for_timeout(200)
    assert watch.dialogs == []


def test_page_works_from_file_url_without_any_request_outside_its_folder(browser, site):
    context = browser.new_context()
    pg = context.new_page()
    watch = Watch(pg)
    pg.goto(site.joinpath("index.html").as_uri())
    pg.wait_for_selector("body[data-ready=true]")
    assert pg.locator("#leaderboard tbody tr").count() > 5
    real = [r for r in page_data(site / "index.html")["rows"] if r["examples"]]
    if real:  # the overlay PNGs load from file:// too
        pg.evaluate(f"location.hash = {('run=' + quote(real[0]['run_id'], safe=''))!r}")
        wait_until(pg, IMAGES_LOADED)
        assert pg.locator(EXAMPLE_IMGS).count() == 2 * 3
    context.close()
    prefix = site.as_uri() + "/"
    assert watch.requests and all(u.startswith(prefix) for u in watch.requests), watch.requests
    assert watch.dialogs == [] and watch.errors == []


# --- at 1400 pixels: a table as wide as a real one, the glossary, the scatter plots ----------------------

OVERLAPS = """labels => {
  const boxes = labels.map(t => t.getBoundingClientRect());
  const hits = [];
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
        hits.push([labels[i].textContent, labels[j].textContent]);
    }
  return hits;
}"""


def test_no_page_wide_scrollbar_at_1400_pixels(wide_page, wide_site, shots):
    pg, watch = wide_page
    assert pg.evaluate("innerWidth") == 1400
    keys = pg.eval_on_selector_all("#leaderboard thead th[data-key]", "ths => ths.map(t => t.dataset.key)")
    assert set(ALL_METRICS) | {"task:top1", "task:top5", "model", "attention", "n_images"} <= set(keys)
    assert pg.evaluate("document.documentElement.scrollWidth") <= pg.evaluate("innerWidth")
    # and the table itself fits: its own scroller (for narrow screens) has nothing to scroll
    assert pg.evaluate("(w => w.scrollWidth <= w.clientWidth)(document.getElementById('table-wrap'))")
    pg.screenshot(path=str(shots / "wide-1400.png"), full_page=True)
    # a long model name wraps inside its cell instead of widening the table
    cell = pg.locator("#leaderboard td[data-key=model]", has_text="deit-small-distilled").first
    assert cell.bounding_box()["height"] > 25


def test_every_column_is_explained(wide_page, wide_site):
    """A tooltip on each metric header and a visible glossary, in the metric registry's words."""
    from harness.plugins import get_registry

    pg, watch = wide_page
    for m in ALL_METRICS:
        description = get_registry().get("metric", m).get("description")
        title = pg.get_attribute(f'#leaderboard th[data-key="{m}"]', "title")
        assert title.startswith(f"{m}: {description}") and "is better" in title
        dd = pg.locator(f'#glossary-list dt[data-key="{m}"] + dd')
        assert dd.text_content().startswith(description)
    assert pg.get_attribute('#leaderboard th[data-key="kld"]', "title").endswith("(lower is better)")
    assert pg.get_attribute('#leaderboard th[data-key="task:top1"]', "title").startswith("task:top1: top-1 accuracy")
    assert pg.locator("#glossary").is_visible()
    # one entry per column, and one for the intervals and significance marks
    assert pg.locator("#glossary-list dt[data-key]").count() == len(pg.locator("#leaderboard thead th[data-key]").all())
    assert pg.locator("#glossary-list dt").count() == pg.locator("#glossary-list dt[data-key]").count() + 1


def test_scatter_plots_one_per_dataset_task_and_image_count_labels_apart(wide_page, shots):
    pg, watch = wide_page
    figs = pg.locator("figure.scatter")
    assert figs.count() == 2
    assert [(figs.nth(i).get_attribute("data-dataset"), figs.nth(i).get_attribute("data-task"),
             figs.nth(i).get_attribute("data-n-images")) for i in range(2)] == \
        [("osie", "classification", "700"), ("osie", "classification", "50")]
    for i in range(2):
        fig = figs.nth(i)
        assert fig.locator("g.point").count() == 6  # each model once: the 50-image runs are in the other plot
        labels = fig.locator("text.point-label, text.ref-label")
        assert fig.locator("text.point-label.unplaced").count() == 0 and fig.locator(".unplaced-note").count() == 0
        assert pg.evaluate(OVERLAPS, labels.element_handles()) == []
        svg_box = fig.locator("svg").bounding_box()
        for handle in labels.element_handles():
            b = handle.bounding_box()
            assert svg_box["x"] - 0.5 <= b["x"] and b["x"] + b["width"] <= svg_box["x"] + svg_box["width"] + 0.5
        # no point hidden under a label
        circles = fig.locator("g.point circle").element_handles()
        assert pg.evaluate("""([labels, circles]) => labels.some(t => circles.some(c => {
            const a = t.getBoundingClientRect(), b = c.getBoundingClientRect();
            return a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1; }))""",
                           [fig.locator("text.point-label").element_handles(), circles]) is False
        # the references far from the models (ceiling at NSS ~3.7, uniform at 0) sit at the edge with
        # their values, so the models spread over the plot instead of a corner of it
        offscale = texts(pg, f"figure.scatter:nth-of-type({i + 1}) g.reference.offscale text")
        assert any(t.startswith("human ceiling: human-ceiling (nss 3.") for t in offscale)
        xs = [c.bounding_box()["x"] for c in circles]
        area = fig.locator("rect.plot-area").bounding_box()
        assert (max(xs) - min(xs)) > 0.7 * area["width"]
        assert fig.locator("svg").bounding_box()["width"] >= 600  # drawn at its size, for reading
    pg.locator("#scatter-section").screenshot(path=str(shots / "scatter-1400.png"))


def _stimulus_sets(line: str) -> tuple[str, dict[str, list[str]]]:
    """``osie/free-viewing: rows scored on different stimuli (700 images: a, b; 50 images: c): ...``
    -> ``("osie/free-viewing", {"700 images": ["a", "b"], "50 images": ["c"]})`` (models sorted)."""
    group, rest = line.split(": rows scored on different stimuli (", 1)
    sets = rest.split("): their means are over different images", 1)[0]
    return group, {label: sorted(models.split(", ")) for label, models in (s.split(": ", 1) for s in sets.split("; "))}


def _page_and_cli_notes(pg, runs: Path) -> tuple[list[str], list[str]]:
    import html
    import re

    from harness.leaderboard.table import render_table
    from harness.results import load_runs

    cli = [html.unescape(p) for p in re.findall(r"<p>(.*?)</p>", render_table(load_runs(runs), fmt="html"))
           if "different stimuli" in p]
    return texts(pg, "#table-notes p.mixed-stimuli"), cli


def test_rows_on_different_stimuli_are_said_not_to_compare(wide_page, page, root):
    """The line `harness leaderboard show` prints under its table, under the page's table too: the
    same groups, the same image counts, the same models (in the page's row order)."""
    pg, _ = wide_page
    lines, cli = _page_and_cli_notes(pg, root / "wide-runs")
    assert len(lines) == len(cli) == 2
    assert sorted(map(_stimulus_sets, lines)) == sorted(map(_stimulus_sets, cli))
    free = dict(map(_stimulus_sets, lines))["osie/free-viewing"]
    assert list(free) == ["700 images", "50 images"] and free["50 images"] == ["center-bias", "human-ceiling", "uniform"]
    assert all(line.endswith("evaluate every model with the same --limit") for line in lines)
    # the other site: groups of one set of stimuli say nothing; the same lines as the command line
    pg, _ = page
    lines, cli = _page_and_cli_notes(pg, root / "runs")
    assert sorted(map(_stimulus_sets, lines)) == sorted(map(_stimulus_sets, cli))
    groups = set(pg.eval_on_selector_all("#leaderboard tbody tr", """trs => trs.map(tr =>
        tr.querySelector('td[data-key=dataset]').textContent + '/' + tr.querySelector('td[data-key=task]').textContent)"""))
    assert [_stimulus_sets(line)[0] for line in lines] == ["osie/free-viewing"] and len(groups) > 1


def test_the_different_stimuli_note_gives_the_command_lines_advice(browser, server, root):
    """An aligned model's held-out subset beside runs of two --limit values: the page's line under
    the table is the command line's, advice included (both advised only "the same --limit")."""
    runs = root / "subset-runs"
    write_run(runs, model="net", metrics={"nss": 1.4}, n_images=20)
    write_run(runs, model="net-aligned", metrics={"nss": 1.5}, n_images=6,
              stimuli={"subset": "held-out", "n": 6, "sha256": "0" * 64})
    write_run(runs, model="other", metrics={"nss": 1.0}, n_images=40)
    write_run(runs, model="net", metrics={"nss": 1.3}, n_images=20, metric_params={"sigma_deg": 2.0, "sigma_px": 48.0})
    build_site(runs, root / "subset")
    for pg, watch in _open(browser, server + "subset/index.html", server + "subset/"):
        lines, cli = _page_and_cli_notes(pg, runs)
        assert len(lines) == len(cli) == 1
        # a row of another blur is named with its label in both (the same name twice said nothing)
        assert "net [sigma_deg=2, sigma_px=48]" in lines[0] and "net [sigma_deg=2, sigma_px=48]" in cli[0]
        advice = [line.split("do not compare; ", 1)[1] for line in lines + cli]
        assert advice == ["evaluate every model with the same --limit; `harness report` compares an aligned "
                          "model with its base on its held-out stimuli"] * 2


def test_raw_and_calibrated_rows_are_never_in_one_table(browser, server, root):

    runs = root / "scoring-runs"
    for scoring, ig in (("raw", -0.7), ("calibrated", 0.06)):
        cal = scoring == "calibrated"
        write_run(runs, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
                  metrics={"nss": 3.7, "ig": 2.0 + cal * 0.25, "kld": 1.0}, scoring=scoring)
        # the raw centre bias' IG as a float sum gives it: -1e-17, shown without a sign
        write_run(runs, model="center-bias", kind="baseline", attention="prior",
                  metrics={"nss": 0.8 + cal * 0.05, "ig": 0.01 if cal else -1e-17, "kld": 1.3}, scoring=scoring)
        write_run(runs, model="efficientnet-lite0", metrics={"nss": 0.6 + cal * 0.3, "ig": ig, "kld": 1.8 - cal * 0.6},
                  scoring=scoring)
    build_site(runs, root / "scoring")
    for pg, watch in _open(browser, server + "scoring/index.html", server + "scoring/"):
        assert pg.eval_on_selector_all("#filter-scoring option", "os => os.map(o => o.value)") == ["calibrated", "raw"]
        assert pg.eval_on_selector("#filter-scoring", "s => s.value") == "raw"  # raw first
        assert column(pg, "ig") == [2.0, -1e-17, -0.7]
        # the calibrated table's own column is not shown, all dashes, in the raw one
        assert column(pg, "ig_explained") == [] and not pg.query_selector('th[data-key="ig_explained"]')
        assert texts(pg, '#leaderboard tbody td[data-key="ig"]') == ["2.0000", "0.0000", "-0.7000"]
        pg.select_option("#filter-scoring", "calibrated")
        assert column(pg, "ig") == [2.25, 0.06, 0.01]
        assert column(pg, "ig_explained") == [100.0, pytest.approx(100 * 0.06 / 2.25), pytest.approx(100 * 0.01 / 2.25)]
        header = pg.get_attribute('#leaderboard thead th[data-key="ig_explained"]', "title")
        assert "percentage of the calibrated human ceiling" in header
        # ceiling-normalised: centre bias 0, ceiling 1, KLD turned so that higher is better
        pg.check("#normalised")
        assert column(pg, "nss") == [1.0, pytest.approx((0.9 - 0.85) / (3.7 - 0.85)), 0.0]
        assert column(pg, "kld") == [1.0, pytest.approx((1.2 - 1.3) / (1.0 - 1.3)), 0.0]  # 1/3: a third of the way
        assert pg.get_attribute('#leaderboard thead th[data-key="kld"] .dir', "title") == "higher is better"
        pg.uncheck("#normalised")
        assert column(pg, "nss") == pytest.approx([3.7, 0.9, 0.85])
        assert pg.get_attribute('#leaderboard thead th[data-key="kld"] .dir', "title") == "lower is better"


def test_intervals_on_hover_and_the_marks_of_show_ci(page, site, root):
    from harness.leaderboard import significance
    from harness.results import load_runs

    data = page_data(site / "index.html")
    runs = {r.run_id: r for r in load_runs(root / "runs")}
    latest = [r for r in data["rows"] if r["latest"]]
    tested = [r for r in latest if r["statistics"]]
    assert tested and len(tested) == len([r for r in latest if r["run_id"] in runs])
    stats = significance.table_statistics([runs[r["run_id"]] for r in tested], data["primary"])
    for r in tested:  # the same numbers and marks as `leaderboard show --ci` of the same runs
        want = stats.intervals[r["run_id"]]
        assert r["statistics"]["intervals"] == {m: [iv["lo"], iv["hi"]] for m, iv in want.items()}
        assert r["statistics"]["marks"] == stats.marks(r["run_id"])
    pg, watch = page
    first = next(r for r in tested if r["statistics"]["intervals"].get("nss", [None])[0] is not None)
    td = pg.locator(f'#leaderboard tbody tr[data-run-id="{first["run_id"]}"] td[data-key="nss"]')
    lo, hi = first["statistics"]["intervals"]["nss"]
    assert td.get_attribute("title") == f"95% bootstrap interval over stimuli: [{lo:.3f}, {hi:.3f}]"
    marked = [r for r in tested if r["statistics"]["marks"]]
    for r in marked:
        cell = pg.locator(f'#leaderboard tbody tr[data-run-id="{r["run_id"]}"] td[data-key="{data["primary"]}"] .mark')
        assert cell.text_content() == r["statistics"]["marks"]
        assert "not significantly different from" in cell.get_attribute("title")
    assert "intervals, † and ‡" in texts(pg, "#glossary-list dt")


def test_marks_for_differences_that_are_not_significant(browser, server, root):
    from harness.leaderboard import significance
    from harness.results import load_runs

    runs_dir = root / "marks-runs"
    write_run(runs_dir, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0}, n_images=8,
              shuffle=1)
    write_run(runs_dir, model="net-a", metrics={"nss": 1.05}, n_images=8, shuffle=2)  # within the noise
    write_run(runs_dir, model="net-b", metrics={"nss": 1.6}, n_images=8, shuffle=3)
    build_site(runs_dir, root / "marks")
    data = page_data(root / "marks" / "index.html")
    stats = significance.table_statistics(load_runs(runs_dir), "nss")
    by_model = {r["model"]: r for r in data["rows"]}
    assert by_model["net-a"]["statistics"]["marks"] == stats.marks(by_model["net-a"]["run_id"]) != ""
    for pg, watch in _open(browser, server + "marks/index.html", server + "marks/"):
        mark = pg.locator(f'#leaderboard tbody tr[data-run-id="{by_model["net-a"]["run_id"]}"] td[data-key="nss"] .mark')
        assert mark.text_content() == by_model["net-a"]["statistics"]["marks"]
        assert mark.get_attribute("title").startswith("not significantly different from ")
        pg.check("#normalised")  # normalised values are not in the intervals' units: no interval, no mark
        td = pg.locator(f'#leaderboard tbody tr[data-run-id="{by_model["net-a"]["run_id"]}"] td[data-key="nss"]')
        assert td.get_attribute("title") is None and td.locator(".mark").count() == 0


def test_a_test_not_made_is_marked_with_why(browser, server, root):
    """A row whose neighbour just above is a run of another seed was not tested against it; without a
    mark its cell read as significantly below it (found by QA): ◦, and why on hover, as show --ci's
    note under the table says."""
    runs_dir = root / "untested-runs"
    write_run(runs_dir, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0}, n_images=8,
              shuffle=1)
    write_run(runs_dir, model="net-a", metrics={"nss": 1.6}, n_images=8, shuffle=2, seed=1)
    write_run(runs_dir, model="net-b", metrics={"nss": 1.4}, n_images=8, shuffle=3)
    # another profile, and a calibrated run of mit's only: a pair of filters that leaves no row
    write_run(runs_dir, model="net-c", metrics={"nss": 1.1}, n_images=8, shuffle=4, profile="pysaliency")
    write_run(runs_dir, model="net-b", metrics={"nss": 1.5}, n_images=8, shuffle=5, scoring="calibrated")
    build_site(runs_dir, root / "untested")
    by_model = {r["model"]: r for r in page_data(root / "untested" / "index.html")["rows"]
                if r["scoring"] == "raw" and r["settings"].get("metric_profile") == "mit"}
    assert by_model["net-b"]["statistics"]["untested"] == ["not tested against net-a ranked just above (another --seed)"]
    for pg, watch in _open(browser, server + "untested/index.html", server + "untested/"):
        cell = pg.locator(f'#leaderboard tbody tr[data-run-id="{by_model["net-b"]["run_id"]}"] td[data-key="nss"]')
        assert cell.locator(".untested").text_content() == "\u25e6"
        assert cell.locator(".untested").get_attribute("title") == "not tested against net-a ranked just above (another --seed)"
        assert "test that was not made" in " ".join(texts(pg, "#glossary-list dd"))
        # the filters of a page whose table is empty are named (an empty table, unexplained: found by QA)
        pg.select_option("#filter-profile", "pysaliency")
        pg.select_option("#filter-scoring", "calibrated")
        assert pg.locator("#leaderboard tbody tr").count() == 0
        assert pg.text_content("#row-count") == ("0 runs shown: no run has scoring calibrated, profile pysaliency; "
                                                 "change a filter")


def test_a_row_on_another_version_of_the_dataset_is_labelled_and_noted_on_the_page(browser, server, root):
    """As `harness leaderboard show`: a row whose dataset fingerprint differs from the rest is
    labelled, its label's tooltip says why, and the note under the table is the data note, not the
    blur note the page gave every labelled row (found by a plugin author's QA)."""
    runs = root / "data-runs"
    write_run(runs, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out", metrics={"nss": 3.0})
    write_run(runs, model="net", metrics={"nss": 1.5})
    write_run(runs, model="old-net", metrics={"nss": 1.4}, dataset_fingerprint="742c8801" + "0" * 56)
    build_site(runs, root / "data-site")
    for pg, watch in _open(browser, server + "data-site/index.html", server + "data-site/"):
        cells = texts(pg, "#leaderboard tbody td[data-key=model]")
        assert [c for c in cells if "[" in c] == ["old-net [data 742c8801]"]
        assert pg.get_attribute("#leaderboard tbody td[data-key=model] .variant", "title") == (
            "scored on another version of the dataset's files")
        assert texts(pg, "#table-notes p.other-blur") == []
        (note,) = texts(pg, "#table-notes p.other-data")
        assert note.startswith("Rows scored on another version of the dataset's files than the rest "
                               "(old-net [data 742c8801]): the files changed between their runs")


def test_other_blurs_and_profiles_are_labelled_apart_and_normalised_by_their_own_references(browser, server, root):
    """Rows of two profiles, or of another blur, looked identical on the page and shared one table;
    the ceiling-normalised view took whichever ceiling and center-bias came last (another blur's)."""
    runs = root / "blur-runs"
    for blur, scale in (({"sigma_deg": 1.0, "sigma_px": 24.0}, 1.0), ({"sigma_deg": 2.0, "sigma_px": 48.0}, 2.0)):
        write_run(runs, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
                  metrics={"nss": 3.0 * scale, "kld": 1.0}, metric_params=blur)
        write_run(runs, model="center-bias", kind="baseline", attention="prior",
                  metrics={"nss": 1.0 * scale, "kld": 1.5}, metric_params=blur)
    write_run(runs, model="net", metrics={"nss": 2.0, "kld": 1.25})
    write_run(runs, model="net", metrics={"nss": 3.0, "kld": 1.2}, metric_params={"sigma_deg": 2.0, "sigma_px": 48.0})
    write_run(runs, model="net", metrics={"nss": 2.5, "kld": 1.1}, profile="pysaliency")
    build_site(runs, root / "blurs")
    label = " [sigma_deg=2, sigma_px=48]"
    for pg, watch in _open(browser, server + "blurs/index.html", server + "blurs/"):
        assert pg.eval_on_selector_all("#filter-profile option", "os => os.map(o => o.value)") == ["mit", "pysaliency"]
        assert pg.eval_on_selector("#filter-profile", "s => s.value") == "mit"  # the most common profile
        models = texts(pg, "#leaderboard tbody td[data-key=model] .model-name")
        variants = texts(pg, "#leaderboard tbody td[data-key=model]")
        assert sorted(models) == ["center-bias", "center-bias", "human-ceiling", "human-ceiling", "net", "net"]
        assert sum(t.startswith("net") and t.endswith(label) for t in variants) == 1
        assert sum(label in t for t in variants) == 3  # the 2-degree model and its two references
        note = texts(pg, "#table-notes p.other-blur")
        assert len(note) == 1 and note[0].startswith("Rows blurred otherwise than the rest (") and note[0].endswith(
            "their density metrics use another human density, so their scores do not compare with the others'.")
        # normalised by the references blurred alike: (2 - 1) / (3 - 1) and (3 - 2) / (6 - 2); both baselines 0
        pg.check("#normalised")
        by_text = dict(zip(texts(pg, "#leaderboard tbody td[data-key=model]"), column(pg, "nss")))
        assert by_text["net"] == pytest.approx(0.5) and by_text["net" + label] == pytest.approx(0.25)
        assert by_text["center-biasbaseline"] == 0.0 and by_text[f"center-bias{label}baseline"] == 0.0
        pg.uncheck("#normalised")
        # KLD normalised is better higher: the best rows stay first
        pg.click('#leaderboard thead th[data-key="kld"]')  # sorted by KLD, best (lowest) first
        assert column(pg, "kld")[0] == 1.0
        pg.check("#normalised")
        assert column(pg, "kld")[0] == pytest.approx(1.0)  # still the best first: the ceilings (normalised 1)
        assert pg.get_attribute('#leaderboard thead th[data-key="kld"]', "aria-sort") == "descending"
        pg.uncheck("#normalised")
        # the other profile: a table of its own
        pg.select_option("#filter-profile", "pysaliency")
        assert texts(pg, "#leaderboard tbody td[data-key=model] .model-name") == ["net"]
        # sorting from the keyboard keeps the focus on the header: Enter twice flips the direction
        pg.select_option("#filter-profile", "mit")
        pg.focus('#leaderboard thead th[data-key="nss"]')
        pg.keyboard.press("Enter")
        first = pg.get_attribute('#leaderboard thead th[data-key="nss"]', "aria-sort")
        assert pg.evaluate("document.activeElement.dataset.key") == "nss"
        pg.keyboard.press("Enter")
        assert pg.get_attribute('#leaderboard thead th[data-key="nss"]', "aria-sort") != first


def test_normalising_keeps_the_users_sort_and_a_phone_does_not_scroll_sideways(browser, server, root):
    """Ticking "ceiling-normalised" reset a KLD sorted worst first to best first (untick: ascending
    again); at 360 px a long metric name in the glossary pushed its text past the screen's edge."""
    runs = root / "phone-runs"
    long_name = "a_rather_long_metric_name_without_any_place_to_break"
    write_run(runs, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
              metrics={"nss": 3.0, "kld": 1.0, long_name: 0.5})
    write_run(runs, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0, "kld": 1.5,
                                                                                      long_name: 0.2})
    write_run(runs, model="net", metrics={"nss": 2.0, "kld": 1.25, long_name: 0.3})
    build_site(runs, root / "phone")
    for pg, watch in _open(browser, server + "phone/index.html", server + "phone/"):
        pg.click('#leaderboard thead th[data-key="kld"]')
        pg.click('#leaderboard thead th[data-key="kld"]')  # worst (highest) first
        assert column(pg, "kld") == [1.5, 1.25, 1.0]
        pg.check("#normalised")
        assert column(pg, "kld") == [0.0, 0.5, 1.0]  # still worst first: now ascending
        pg.uncheck("#normalised")
        assert column(pg, "kld") == [1.5, 1.25, 1.0]
        assert pg.get_attribute('#leaderboard thead th[data-key="kld"]', "aria-sort") == "descending"
        pg.set_viewport_size({"width": 360, "height": 800})
        assert pg.evaluate("document.documentElement.scrollWidth") <= 360
        assert pg.evaluate("Math.max(...[...document.querySelectorAll('#glossary-list > *')]"
                           ".map(e => e.getBoundingClientRect().right))") <= 360


def test_rows_of_several_datasets_are_ranked_within_each(browser, server, root):
    """With every dataset shown, a CAT2000 model (NSS 1.9) was ranked between OSIE's ceiling and
    OSIE's models in one list, without a word (found by QA): ranked within each dataset, the first
    row of each marked, and a note says why."""
    runs = root / "several-runs"
    write_run(runs, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out", metrics={"nss": 3.0})
    write_run(runs, model="net", metrics={"nss": 1.5})
    write_run(runs, model="net-b", metrics={"nss": 1.2})
    write_run(runs, model="cat-net", dataset="cat2000", metrics={"nss": 1.9})
    build_site(runs, root / "several")
    for pg, watch in _open(browser, server + "several/index.html", server + "several/"):
        rows = pg.eval_on_selector_all("#leaderboard tbody tr", "trs => trs.map(tr => [tr.querySelector("
                                       "'.model-name').textContent, tr.classList.contains('dataset-start')])")
        assert rows == [["cat-net", True], ["human-ceiling", True], ["net", False], ["net-b", False]]
        (note,) = texts(pg, "#table-notes p.several-datasets")
        assert note.startswith("Rows are ranked within each dataset (cat2000, osie)")
        pg.click('#leaderboard thead th[data-key="nss"]')  # worst first: still within each dataset
        assert texts(pg, "#leaderboard tbody .model-name") == ["cat-net", "net-b", "net", "human-ceiling"]
        pg.select_option("#filter-dataset", "osie")
        assert texts(pg, "#table-notes p.several-datasets") == []
        assert pg.locator("#leaderboard tbody tr.dataset-start").count() == 0
