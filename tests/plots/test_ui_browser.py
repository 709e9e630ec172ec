"""The MLflow UI as a user sees it: runs logged by tidymlflow, opened in headless Chromium.

A module fixture starts ``mlflow server`` on 127.0.0.1 (sqlite store and proxied artifacts in a
temporary folder) and logs, with ``tidymlflow.autolog()``, a ``WorkflowSet.fit_resamples`` of three
workflows and a single fit on data with a date column (so ``plots/forecast.html`` exists). Debian's
Chromium, driven through Debian's chromedriver with selenium, then checks on the rendered page:

- the experiment's run list shows the WorkflowSet parent, and its expander shows its children;
- the best child (tag ``rank`` = 1) is the first child listed under the default sort;
- a png plot renders in the run's artifact view (an ``<img>`` of the file's own width);
- the ``.csv`` twin of a table previews as a grid (its column names as headers, its first value);
- ``plots/forecast.html`` draws a plot or shows the visible fallback message (no internet here).

What the tests look for is read from MlflowClient first (run ids, names, ranks, file names, csv
header), so the page is only asked to show it. On a failure a screenshot and the page's html are
written to a temporary folder whose path is printed (pytest shows it with the failure). With
``TIDYMLFLOW_SCREENSHOTS=1`` the passing checks save the pictures the README shows into
``docs/screenshots/``. Without chromium / chromedriver the tests skip, except under CI (``CI=true``),
where they fail: ``.ci/run`` installs them. Select them with ``-k browser``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
import tempfile
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from servers import in_ci, mlflow_server

import tidymlflow

WAIT_S = 60
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
FALLBACK_TEXT = "plotly.js could not be loaded"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1600,1000", "--lang=en-US"]


def _browser_binaries() -> tuple[str, str]:
    chromium = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and os.path.exists(p)),
                    None)
    driver = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver")
                   if p and os.path.exists(p)), None)
    if chromium is None or driver is None:
        reason = ("Chromium and ChromeDriver not found (Debian: apt-get install chromium chromium-driver)")
        if in_ci():
            pytest.fail(f"CI=true but {reason}; .ci/run should have installed them", pytrace=False)
        pytest.skip(reason)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("the browser tests drive Chromium with selenium: pip install selenium", pytrace=False)
    return chromium, driver


@dataclass
class Logged:
    url: str
    experiment_id: str
    parent: object  # the WorkflowSet parent run
    children: list  # its child runs
    fit: object  # the single fit (date column, forecast.html)
    files: dict = field(default_factory=dict)  # artifact paths of the single fit

    def runs_page(self) -> str:
        return f"{self.url}/#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"

    def artifacts_page(self, run) -> str:
        return (f"{self.url}/#/experiments/{self.experiment_id}/runs/{run.info.run_id}/artifacts"
                "?workflowType=machine_learning")


@pytest.fixture(scope="module")
def logged(tmp_path_factory, split):
    _browser_binaries()
    import mlflow

    root = tmp_path_factory.mktemp("ui")
    with mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", root / "server.log") as url, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", url)
        mp.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
        mlflow.set_tracking_uri(url)
        client = mlflow.MlflowClient(url)
        exp = client.create_experiment(f"ui-{uuid.uuid4().hex[:8]}")
        mlflow.set_experiment(experiment_id=exp)
        try:
            tidymlflow.autolog()
            from py_parsnip import linear_reg
            from py_rsample import vfold_cv
            from py_workflows import workflow
            from py_workflowsets import WorkflowSet

            train, test = split
            WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2", "y ~ x2"], [linear_reg()]).fit_resamples(
                vfold_cv(train, v=3, seed=7))
            workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(train).evaluate(test)
            tidymlflow.flush(timeout=120)  # written before the browser looks
        finally:
            tidymlflow.autolog(disable=True)
            while mlflow.active_run() is not None:
                mlflow.end_run()
        runs = client.search_runs([exp], max_results=1000)
        tops = {r.data.tags.get("tidymlflow.call"): r for r in runs
                if "mlflow.parentRunId" not in r.data.tags}
        parent, fit = tops["WorkflowSet.fit_resamples"], tops["Workflow.fit"]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        files = {}
        for folder in ("plots", "tidymodels"):
            files[folder] = [a.path for a in client.list_artifacts(fit.info.run_id, folder)]
        yield Logged(url, exp, parent, children, fit, files)


@pytest.fixture(scope="module")
def browser(logged):
    chromium, driver_path = _browser_binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tidymlflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------------


def _wait(driver, condition, message: str, timeout: float = WAIT_S):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
                         ).until(condition, message)


def _xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"


@contextlib.contextmanager
def _evidence(driver, name: str):
    """On a failure inside the block: a screenshot and the page's html in a kept temp folder."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            driver.switch_to.default_content()
        folder = Path(tempfile.mkdtemp(prefix=f"tidymlflow-ui-{name}-"))
        try:
            driver.save_screenshot(str(folder / f"{name}.png"))
            (folder / f"{name}.html").write_text(driver.page_source, encoding="utf-8")
            (folder / "url.txt").write_text(driver.current_url + "\n")
        except Exception:  # the browser itself may be gone; say so, keep the real failure
            (folder / "error.txt").write_text(traceback.format_exc())
        print(f"[browser test {name}] screenshot and page kept in {folder}")
        raise


def _keep_screenshot(driver, name: str) -> None:
    if os.environ.get("TIDYMLFLOW_SCREENSHOTS") == "1":
        _close_assistant(driver)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _open(driver, url: str) -> None:
    """A full page load (a hash change alone keeps the single-page app's old view)."""
    driver.get("about:blank")
    driver.get(url)


def _close_assistant(driver) -> None:
    """MLflow 3.17 opens an 'MLflow Assistant' side panel; close it for the README pictures."""
    from selenium.webdriver.common.by import By

    close = '[data-assistant-ui] button[aria-label="Close"]'

    def panel_closed(d):
        buttons = [b for b in d.find_elements(By.CSS_SELECTOR, close) if b.is_displayed()]
        for button in buttons:
            button.click()
        return not buttons

    with contextlib.suppress(Exception):  # best effort: only the picture depends on it
        _wait(driver, panel_closed, "assistant panel still open", timeout=5)


def _run_link(driver, run_id: str):
    """The run's name link in the runs table (it points at the run's page)."""
    from selenium.webdriver.common.by import By

    links = [a for a in driver.find_elements(By.CSS_SELECTOR, f'a[href*="/runs/{run_id}"]')
             if a.is_displayed() and a.text.strip()]
    return links[0] if links else None


def _tree_node(driver, name: str):
    """A file or folder of the artifact tree, by its name."""
    from selenium.webdriver.common.by import By

    nodes = driver.find_elements(
        By.XPATH, f"//*[@data-testid='artifact-tree-node'][normalize-space(.)={_xpath_literal(name)}]")
    return next((n for n in nodes if n.is_displayed()), None)


def _open_artifact(driver, logged: Logged, run, path: str) -> None:
    """Open the run's artifact view and click through the tree to ``path``, as a user does."""
    _open(driver, logged.artifacts_page(run))
    parts = path.split("/")
    for i, part in enumerate(parts):
        node = _wait(driver, lambda d, p=part: _tree_node(d, p),
                     f"artifact tree node {part!r} of {path!r} not shown")
        if i == len(parts) - 1 or _tree_node(driver, parts[i + 1]) is None:
            node.click()


def _png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a png file"
    return struct.unpack(">I", data[16:20])[0]


def _download(logged: Logged, run, path: str) -> bytes:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.MlflowClient(logged.url).download_artifacts(run.info.run_id, path, tmp)
        return Path(local).read_bytes()


def _widen_run_name_column(driver) -> None:
    """For the README picture only: drag the Run Name column wider so names are not cut."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with contextlib.suppress(Exception):
        handle = driver.find_element(By.CSS_SELECTOR,
                                     '.ag-header-cell[col-id*="Run Name"] .ag-header-cell-resize')
        ActionChains(driver).click_and_hold(handle).move_by_offset(170, 0).release().perform()


# -- the checks ------------------------------------------------------------------------------------


def _click_expander(driver, run_id: str) -> None:
    """The +/- button next to a parent run's name."""
    from selenium.webdriver.common.by import By

    cell = _run_link(driver, run_id).find_element(By.XPATH, "./ancestor::*[@role='gridcell'][1]")
    cell.find_element(By.TAG_NAME, "button").click()


def _expanded_run_tree(driver, logged: Logged) -> dict:
    """Open the runs list, expand the WorkflowSet parent; {run id: y position} of its children."""
    _open(driver, logged.runs_page())
    parent_id = logged.parent.info.run_id
    link = _wait(driver, lambda d: _run_link(d, parent_id),
                 f"the WorkflowSet parent {logged.parent.info.run_name!r} is not in the run list")
    assert link.text.strip() == logged.parent.info.run_name

    def shown(d):
        return [c for c in logged.children if _run_link(d, c.info.run_id)]

    if shown(driver):  # the UI remembers an expanded parent (in the browser's storage): collapse it
        _click_expander(driver, parent_id)
        _wait(driver, lambda d: not shown(d), "collapsing the parent does not hide its children")
    _click_expander(driver, parent_id)
    positions = {}
    for child in logged.children:
        link = _wait(driver, lambda d, c=child: _run_link(d, c.info.run_id),
                     f"child {child.info.run_name!r} not listed after expanding the parent")
        assert link.text.strip() == child.info.run_name
        positions[child.info.run_id] = link.location["y"]
    parent_y = _run_link(driver, parent_id).location["y"]
    assert all(y > parent_y for y in positions.values()), "children are listed below their parent"
    return positions


def test_browser_run_list_expands_the_workflowset_parent(browser, logged):
    assert len(logged.children) == 3
    with _evidence(browser, "run_tree"):
        _expanded_run_tree(browser, logged)
        _widen_run_name_column(browser)
        _keep_screenshot(browser, "run_tree")


def test_browser_best_child_is_listed_first(browser, logged):
    ranks = {c.info.run_id: c.data.tags.get("rank") for c in logged.children}
    (best,) = [run_id for run_id, rank in ranks.items() if rank == "1"]
    names = {c.info.run_id: c.info.run_name for c in logged.children}
    with _evidence(browser, "best_first"):
        positions = _expanded_run_tree(browser, logged)
        shown = [names[run_id] for run_id in sorted(positions, key=positions.get)]
        assert shown[0] == names[best], (
            f"the default sort lists the children as {shown} (ranks "
            f"{[ranks[r] for r in sorted(positions, key=positions.get)]}); the best, "
            f"{names[best]!r} (rank 1), should come first")


def test_browser_png_plot_renders(browser, logged):
    pngs = sorted(p for p in logged.files["plots"] if p.endswith(".png"))
    assert pngs, f"no png plot logged: {logged.files['plots']}"
    path = pngs[0]
    width = _png_width(_download(logged, logged.fit, path))
    script = """
        return Array.from(document.querySelectorAll('img'))
            .filter(i => (i.alt === arguments[0] || i.src.startsWith('blob:')) && i.complete)
            .map(i => i.naturalWidth);"""
    with _evidence(browser, "png_plot"):
        _open_artifact(browser, logged, logged.fit, path)
        widths = _wait(browser, lambda d: [w for w in d.execute_script(script, path) if w > 0],
                       f"{path} did not render as an image")
        assert width in widths, f"rendered image widths {widths}, the file is {width} px wide"
        _keep_screenshot(browser, "plot_png")


def test_browser_table_csv_twin_previews_as_a_grid(browser, logged):
    from selenium.webdriver.common.by import By

    tables = logged.files["tidymodels"]
    csvs = [p for p in tables if p.endswith(".csv") and p[:-4] + ".parquet" in tables]
    assert csvs, (f"no .csv twin of a table to preview (the UI cannot preview parquet); "
                  f"tidymodels/ holds {tables}")
    path = "tidymodels/stats.csv" if "tidymodels/stats.csv" in csvs else sorted(csvs)[0]
    frame = pd.read_csv(io.BytesIO(_download(logged, logged.fit, path)))
    columns = [str(c) for c in frame.columns[:3]]
    first = str(frame.iloc[0, 0])

    def headers(driver):
        shown = {h.text.strip() for h in driver.find_elements(By.XPATH, "//th") if h.text.strip()}
        return shown if set(columns) <= shown else None

    with _evidence(browser, "table_csv"):
        _open_artifact(browser, logged, logged.fit, path)
        _wait(browser, headers, f"{path} did not preview as a grid with the headers {columns}")
        _wait(browser, lambda d: [c for c in d.find_elements(By.XPATH, "//td")
                                  if c.text.strip() == first],
              f"{path}: the first cell {first!r} is not in the grid")
        _keep_screenshot(browser, "table_csv")


def test_browser_html_plot_shows_a_plot_or_the_fallback_message(browser, logged):
    from selenium.webdriver.common.by import By

    path = "plots/forecast.html"
    assert path in logged.files["plots"], logged.files["plots"]

    def drawn_or_fallback(driver):
        """Inside the preview's iframe: plotly's drawn svg, or the message as visible text."""
        for frame in [f for f in driver.find_elements(By.TAG_NAME, "iframe") if f.is_displayed()]:
            driver.switch_to.frame(frame)
            try:
                if driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg"):
                    return "plot"
                visible = " ".join(driver.find_element(By.TAG_NAME, "body").text.split())
                if FALLBACK_TEXT in visible:
                    return "fallback message"
            finally:
                driver.switch_to.default_content()
        return None

    with _evidence(browser, "html_plot"):
        _open_artifact(browser, logged, logged.fit, path)
        shown = _wait(browser, drawn_or_fallback,
                      f"{path} shows neither a plot nor a visible {FALLBACK_TEXT!r} message")
        print(f"{path}: the page shows the {shown}")
        _keep_screenshot(browser, "plot_html")
