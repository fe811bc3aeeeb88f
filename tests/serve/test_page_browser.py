"""The page in a real browser: headless Chromium driven by Selenium against a real `nlp-lstm serve`
on loopback (with an API key), for a classifier and a summarizer: type, submit, read the label bars,
the shading and the hover view; the pending state; errors as text; a 1,000-word text.

Needs Debian's `chromium` and `chromium-driver` (and the `selenium` package); without them the tests
skip, saying which is missing. Screenshots go to the test's temporary directory, or to
`$NLP_LSTM_SCREENSHOTS` when set.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.serve.test_server import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    webdriver = None

MISSING = [name for name, found in (("chromium", CHROMIUM), ("chromedriver (chromium-driver)", DRIVER),
                                    ("the selenium package", webdriver)) if not found]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"no browser to drive: {', '.join(MISSING)} not installed "
                                                      "(apt-get install chromium chromium-driver; pip install selenium)")
KEY = "browser-test-key"
WAIT = 90  # s: a loaded 2-core machine explains slowly


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    key_file = tmp_path_factory.mktemp("page") / "key.txt"
    key_file.write_text(KEY + "\n")
    running = Server("--model", f"cls={trained['classifier_dir']}", "--model", f"sum={trained['summarizer_dir']}",
                     "--api-key-file", str(key_file))
    try:
        yield running.wait_ready()  # /ready answers without the key
    finally:
        assert running.stop() == 0, running.log
        assert "Traceback" not in running.log, running.log


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,1000", "--lang=en"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def shots(tmp_path):
    where = Path(os.environ.get("NLP_LSTM_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def wait(browser, condition, what: str):
    try:
        return WebDriverWait(browser, WAIT).until(condition)
    except TimeoutException:
        logs = browser.find_element(By.ID, "error").text
        raise AssertionError(f"waited {WAIT} s for {what}; the page's error line: {logs!r}") from None


def open_page_with_key(browser, server):
    browser.get(server.url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(server.url + "/")
    error = wait(browser, ready.visibility_of_element_located((By.ID, "error")), "the missing key's error")
    assert "API key" in error.text  # said as text, not only as a colour
    key = browser.find_element(By.ID, "key")
    key.send_keys(KEY, Keys.TAB)  # "change" fires on leaving the field: the models load
    wait(browser, lambda b: len(Select(b.find_element(By.ID, "model")).options) == 2, "the model list")
    assert not browser.find_element(By.ID, "error").is_displayed()


def alpha(style: str) -> float:
    found = re.search(r"rgba\([^)]*,\s*([\d.]+)\)", style or "")
    return float(found.group(1)) if found else 0.0


def test_a_classifier_explained_in_the_browser(browser, server, trained, shots):
    open_page_with_key(browser, server)
    Select(browser.find_element(By.ID, "model")).select_by_value("cls")
    assert browser.find_element(By.ID, "label-row").is_displayed()  # a classifier can be asked about a label
    text = "the film was great, really great!"
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    # A slow model: the answer is held back 1.5 s; meanwhile the page must say that it is working.
    browser.execute_script("""const real = window.fetch; window.fetch = (...args) =>
        new Promise((resolve) => setTimeout(() => resolve(real(...args)), 1500));""")
    box.send_keys(Keys.CONTROL, Keys.ENTER)  # the keyboard submits
    button = browser.find_element(By.ID, "go")
    assert button.get_attribute("disabled") is not None
    assert "Explaining" in browser.find_element(By.ID, "status").text
    wait(browser, ready.visibility_of_element_located((By.ID, "classifier")), "the classifier's answer")
    assert button.get_attribute("disabled") is None and browser.find_element(By.ID, "status").text == ""

    [expected] = trained["classifier"].explain(text)
    rows = browser.find_elements(By.CSS_SELECTOR, "#bars .bar-row")
    shown = {row.find_element(By.CLASS_NAME, "bar-name").text: row.find_element(By.CLASS_NAME, "bar-value").text
             for row in rows}
    assert shown == {label: f"{100 * p:.1f}%" for label, p in expected["scores"].items()}
    assert browser.find_element(By.CSS_SELECTOR, "#bars .bar-row.top .bar-name").text == expected["predicted"]
    words = browser.find_elements(By.CSS_SELECTOR, "#words .w")
    assert [w.text for w in words] == [w["word"] for w in expected["words"]]
    strongest = max(range(len(words)), key=lambda i: abs(expected["words"][i]["total"]))
    weakest = min(range(len(words)), key=lambda i: abs(expected["words"][i]["total"]))
    assert alpha(words[strongest].get_attribute("style")) == pytest.approx(0.65, abs=0.01)
    assert alpha(words[weakest].get_attribute("style")) < alpha(words[strongest].get_attribute("style"))
    for element, word in zip(words, expected["words"]):
        assert ("for" if word["total"] > 0 else "against") in element.get_attribute("class").split()
    ActionChains(browser).move_to_element(words[strongest]).perform()
    info = browser.find_element(By.ID, "word-info").text
    assert info.startswith(expected["words"][strongest]["word"] + ": ")
    assert f"{expected['words'][strongest]['total']:+.3f}" in info
    browser.execute_script("arguments[0].focus()", words[weakest])  # keyboard focus shows the numbers too
    assert browser.find_element(By.ID, "word-info").text.startswith(expected["words"][weakest]["word"] + ": ")
    assert "decided by" in browser.find_element(By.ID, "parts").text
    browser.save_screenshot(str(shots / "page-classifier.png"))


def test_a_summarizer_explained_in_the_browser(browser, server, trained, shots):
    open_page_with_key(browser, server)
    Select(browser.find_element(By.ID, "model")).select_by_value("sum")
    assert not browser.find_element(By.ID, "label-row").is_displayed()
    text = "the old movie by anna was long"
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "go").click()
    wait(browser, ready.visibility_of_element_located((By.ID, "summarizer")), "the summarizer's answer")
    [expected] = trained["summarizer"].explain(text)
    outputs = browser.find_elements(By.CSS_SELECTOR, "#outputs .out")
    assert [o.text for o in outputs] == [o["word"] for o in expected["outputs"]]
    sources = browser.find_elements(By.CSS_SELECTOR, "#source .src")
    assert [s.text for s in sources] == text.split()
    if outputs:
        ActionChains(browser).move_to_element(outputs[0]).perform()
        info = browser.find_element(By.ID, "output-info").text
        assert info.startswith(f"\u201c{expected['outputs'][0]['word']}\u201d") and "p_gen" in info
        attention = expected["outputs"][0]["attention"]
        top = max(range(len(attention)), key=attention.__getitem__)
        assert alpha(sources[top].get_attribute("style")) == pytest.approx(0.65, abs=0.01)
        assert ("copied" in info) == expected["outputs"][0]["copied"]
    browser.save_screenshot(str(shots / "page-summarizer.png"))


def test_errors_are_text_and_a_thousand_words_are_explained(browser, server):
    open_page_with_key(browser, server)
    Select(browser.find_element(By.ID, "model")).select_by_value("cls")
    box = browser.find_element(By.ID, "text")
    box.clear()
    browser.find_element(By.ID, "go").click()
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and error.text == "Error: the text is empty: type or paste a text to explain"
    Select(browser.find_element(By.ID, "label")).select_by_value("pos")
    browser.execute_script("arguments[0].value = arguments[1]", box, " ".join(["a great film"] * 334))
    browser.find_element(By.ID, "go").click()
    wait(browser, lambda b: "only the words shown were read" in b.find_element(By.ID, "parts").text, "the long text")
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "explained-label").text == "pos"
    browser.execute_script("sessionStorage.clear()")
