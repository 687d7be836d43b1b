"""nsad report: one self-contained HTML page, checked against the numbers and opened in a real browser."""

import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from nsad.cli import main
from nsad.data.folder import find_dataset, sample_data_path
from nsad.pipeline.evaluate import METRICS_FILE, REPORT_FILE, metrics_of, score_test_set
from nsad.pipeline.report import gallery_order, plots_of, training_losses
from nsad.pipeline.scoring import Scorer

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
NETWORK = re.compile(r"^\s*(https?:|wss?:|ftp:|//)", re.IGNORECASE)


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parsed(path):
    parser = _Elements()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tags


@pytest.mark.slow
def test_evaluate_writes_the_report_beside_the_metrics(sample_run):
    assert (sample_run / METRICS_FILE).is_file() and (sample_run / REPORT_FILE).is_file()
    tags = parsed(sample_run / REPORT_FILE)
    assert not [t for t, _ in tags if t in ("script", "link") and _ .get("rel") != "icon"]
    for _, attrs in tags:
        for name in ("src", "href"):
            assert not NETWORK.match(attrs.get(name, "")), attrs.get(name)
    assert all(attrs["src"].startswith("data:image/") for tag, attrs in tags if tag == "img")
    entries = [attrs for tag, attrs in tags if tag == "figure" and "entry" in attrs.get("class", "")]
    assert len(entries) == 9  # every test image of the sample


@pytest.mark.slow
def test_plots_draw_the_reported_numbers(sample_run):
    scorer = Scorer(sample_run, device="cpu")
    test = score_test_set(scorer)
    reported = json.loads((sample_run / METRICS_FILE).read_text())["metrics"]
    by_type = metrics_of(test)
    plots = {plot.title.split(" ")[0]: plot for plot in plots_of(test, by_type, scorer.metadata.threshold,
                                                                 training_losses(sample_run))}
    assert set(plots) == {"Image", "PRO", "Scores", "Decisions", "Training"}
    roc = plots["Image"].data
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(reported["image_auroc"], abs=1e-9)
    pro = plots["PRO"].data
    assert np.trapezoid(pro["pro"], pro["fpr"]) / 0.3 == pytest.approx(reported["aupro"], abs=1e-6)
    histogram = plots["Scores"].data
    assert histogram["normal"].sum() == 3 and histogram["anomalous"].sum() == 6  # the sample's test set
    matrix = plots["Decisions"].data["matrix"]
    flagged = test.scores >= scorer.metadata.threshold
    assert matrix.sum() == 9 and matrix[1, 1] == int((flagged & test.anomalous).sum())
    assert [epoch for epoch, _ in plots["Training"].data["curves"]["train_loss"]] == [0, 1]


def test_gallery_puts_missed_defects_then_false_alarms_first():
    samples = find_dataset(sample_data_path()).test
    kinds = [s.is_anomalous for s in samples]
    scores = np.linspace(0.0, 0.8, len(samples))
    order = gallery_order(samples, scores, threshold=0.45)
    outcomes = [entry.outcome for entry in order]
    rank = {"fn": 0, "fp": 1, "tp": 2, "tn": 2}
    assert [rank[o] for o in outcomes] == sorted(rank[o] for o in outcomes)
    assert {"fn", "fp"} <= set(outcomes)
    assert sorted(outcomes) == sorted(("fn" if a and s < 0.45 else "tp" if a else "fp" if s >= 0.45 else "tn")
                                      for a, s in zip(kinds, scores, strict=True))
    fn_scores = [e.score for e in order if e.outcome == "fn"]
    rest = [e.score for e in order if e.outcome in ("tp", "tn")]
    assert fn_scores == sorted(fn_scores) and rest == sorted(rest, reverse=True)


@pytest.mark.slow
def test_report_command_writes_where_asked(sample_run, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "r.html"
    assert main(["report", "--run", str(sample_run), "--out", str(out)]) == 0
    assert out.is_file() and "nsad report: wrote" in capsys.readouterr().out
    assert main(["report", "--run", str(tmp_path / "missing")]) == 2


def _browser():
    pytest.importorskip("selenium", reason="selenium is in the test extra (pip install -e '.[test]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.skip(f"{path} not found: install Debian's chromium and chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    return webdriver, Service(CHROMEDRIVER), options


@pytest.mark.slow
def test_report_in_headless_chromium(sample_run, tmp_path):
    webdriver, service, options = _browser()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get((sample_run / REPORT_FILE).resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);")
        assert len(images) >= 9 + 4 and all(done and width > 0 for done, width, _ in images), images
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        rows = driver.execute_script(
            "return Array.from(document.querySelectorAll('#metrics tbody tr td:first-child')).map(c => c.textContent);")
        for defect_type in ("broken_large", "broken_small", "contamination"):
            assert rows.count(defect_type) == 1, rows
        files = driver.execute_script(
            "return Array.from(document.querySelectorAll('#gallery figure.entry')).map(f => f.dataset.file);")
        expected = sorted(f"{s.path.parent.name}/{s.path.name}" for s in find_dataset(
            sample_data_path()).test)
        assert sorted(files) == expected
        addresses = driver.execute_script("""
            const found = [];
            for (const element of document.querySelectorAll('*')) {
              for (const attribute of element.attributes) {
                if (/^\\s*(https?:|wss?:|ftp:|\\/\\/)/i.test(attribute.value)) found.push(attribute.value);
              }
            }
            return found.concat(performance.getEntriesByType('resource').map(r => r.name)
                                .filter(name => !name.startsWith('data:')));""")
        assert addresses == []
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()
