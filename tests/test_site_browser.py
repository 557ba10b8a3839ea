"""The leaderboard page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright, the site served from a local port. Sorting, filtering, the detail view, the scatter
plots, escaping (no dialog fires) and the rule that the page requests nothing outside its folder.
Screenshots land in test-artifacts/."""

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
    from tests.site_helpers import page_data, sample_results
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from site_helpers import page_data, sample_results

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
XSS = "<script>alert(1)</script>"
OSIE_PRESENT = (Path(os.environ["HARNESS_DATA_DIR"]) / "osie" / "eye" / "fixations.mat").is_file()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Synthetic runs (ceiling, baselines, classification models, a superseded run, an XSS name)
    plus, when the OSIE data is here, one real `harness eval` run whose saved maps give the example
    overlays (the overlay test itself skips without the data)."""
    root = tmp_path_factory.mktemp("browser")
    results = root / "runs"
    sample_results(results)
    if OSIE_PRESENT:
        r = CliRunner().invoke(main, ["eval", "--model", "center-bias", "--dataset", "osie", "--limit", "3",
                                      "--output", str(results / "real"), "--no-references", "--no-show"])
        assert r.exit_code == 0, r.output
    return build_site(results, root / "site").parent


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server(site):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
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


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    watch = Watch(pg)
    pg.goto(server + "index.html")
    pg.wait_for_selector("body[data-ready=true]")
    yield pg, watch
    context.close()
    outside = [u for u in watch.requests if not u.startswith(server)]
    assert outside == [], f"requests outside the local server: {outside}"
    assert watch.dialogs == [] and watch.errors == []


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
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "leaderboard-table.png"), full_page=True)


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
    assert "human ceiling: human-ceiling" in refs and "baseline: uniform" in refs
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


def test_detail_view_overlays_human_density_beside_the_model(page, site, server, osie_dir):
    """The real `harness eval` run: its saved maps beside the human density, served as PNGs."""
    pg, watch = page
    detail = pg.locator("#detail")
    real = next(r for r in page_data(site / "index.html")["rows"] if r["examples"])
    pg.goto(server + "index.html#run=" + quote(real["run_id"], safe=""))
    detail.wait_for(state="visible")
    imgs = detail.locator(".examples img")
    assert imgs.count() == 2 * len(real["examples"]) == 6
    wait_until(pg, IMAGES_LOADED)
    widths = pg.eval_on_selector_all("#detail .examples img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [360] * 6
    assert texts(pg, "#detail figure.example > figcaption.stimulus") == [f"stimulus {e['stimulus_id']}" for e in real["examples"]]
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "leaderboard-detail.png"), full_page=False)
    assert (ARTIFACTS / "leaderboard-detail.png").stat().st_size > 10_000


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
        assert pg.locator("#detail .examples img").count() == 2 * len(real[0]["examples"])
    context.close()
    prefix = site.as_uri() + "/"
    assert watch.requests and all(u.startswith(prefix) for u in watch.requests), watch.requests
    assert watch.dialogs == [] and watch.errors == []
