"""The page in a real browser: headless Chromium driven by Selenium against a real `nlp-lstm serve`
on loopback (with an API key), for a classifier, a summarizer and a tagger: type, submit, read the
label bars, the shading, the tags and the hover view; keyboard focus; contrast; the pending state;
errors as text; a 1,000-word text.

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
from tests.tagger_helpers import train_tagger_dir

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
SERVED = 3  # models on the page's list


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
    return train_tagger_dir(tmp_path_factory.mktemp("page_tagger") / "ner", steps=60)


@pytest.fixture(scope="module")
def server(trained, tagger_dir, tmp_path_factory):
    key_file = tmp_path_factory.mktemp("page") / "key.txt"
    key_file.write_text(KEY + "\n")
    running = Server("--model", f"cls={trained['classifier_dir']}", "--model", f"sum={trained['summarizer_dir']}",
                     "--model", f"ner={tagger_dir}", "--api-key-file", str(key_file))
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
    wait(browser, lambda b: len(Select(b.find_element(By.ID, "model")).options) == SERVED, "the model list")
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


def submit(browser, text: str, *, answer: str) -> None:
    """Type `text` into the page's box, press its button and wait for the `answer` section (an id)."""
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "go").click()
    wait(browser, ready.visibility_of_element_located((By.ID, answer)), f"the {answer}'s answer")


def test_a_summarizer_explained_in_the_browser(browser, server, trained, shots):
    open_page_with_key(browser, server)
    Select(browser.find_element(By.ID, "model")).select_by_value("sum")
    assert not browser.find_element(By.ID, "label-row").is_displayed()
    text = "the old movie by anna was long"
    submit(browser, text, answer="summarizer")
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


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two CSS `rgb(...)`/`rgba(...)` colours (opaque ones)."""
    def luminance(colour: str) -> float:
        red, green, blue = (int(v) / 255 for v in re.findall(r"\d+", colour)[:3])
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_a_tagger_explained_in_the_browser(browser, server, tagger_dir, shots):
    import nlp_lstm

    open_page_with_key(browser, server)
    Select(browser.find_element(By.ID, "model")).select_by_value("ner")
    assert not browser.find_element(By.ID, "label-row").is_displayed()  # a tagger takes no label
    assert "tag" in browser.find_element(By.ID, "model-note").text
    text = "Anna Bob went to Paris ,  with Zyx and Carl"
    submit(browser, text, answer="tagger")
    assert not browser.find_element(By.ID, "classifier").is_displayed()
    [expected] = nlp_lstm.load(tagger_dir, device="cpu").explain(text)
    words = expected["words"]
    tokens = browser.find_elements(By.CSS_SELECTOR, "#tagged .tok")
    assert [t.text for t in tokens] == [w["token"] for w in words]
    assert [t.get_attribute("data-tag") for t in tokens] == [w["tag"] for w in words]
    low = [w["probability"] < 0.7 for w in words]
    assert any(low) and not all(low)  # both kinds are on the page
    for token, is_low in zip(tokens, low):  # doubt is told by a dotted underline and a "?", not by colour
        assert ("low" in token.get_attribute("class").split()) == is_low
        after = browser.execute_script("return getComputedStyle(arguments[0], '::after').content", token)
        assert (after == '"?"') == is_low, after
        assert ("dotted" in token.value_of_css_property("text-decoration")) == is_low
    # Spans: one highlight each, holding its tokens, the type written after them; a colour per type.
    marks = browser.find_elements(By.CSS_SELECTOR, "#tagged mark.ent")
    assert [m.find_element(By.CLASS_NAME, "type").text for m in marks] == [s["type"] for s in expected["spans"]]
    colours = {}
    for mark, span in zip(marks, expected["spans"]):
        inside = [t.text for t in mark.find_elements(By.CLASS_NAME, "tok")]
        assert inside == expected["tokens"][span["start"] : span["end"]]
        colour = [c for c in mark.get_attribute("class").split() if c != "ent"][0]
        assert colours.setdefault(span["type"], colour) == colour
        for token in mark.find_elements(By.CLASS_NAME, "tok"):  # black text on the light highlight
            assert contrast(token.value_of_css_property("color"), mark.value_of_css_property("background-color")) >= 4.5
    assert len(set(colours.values())) == len(colours)
    legend = browser.find_elements(By.CSS_SELECTOR, "#tag-legend .ent")
    assert [chip.text for chip in legend] == list(dict.fromkeys(s["type"] for s in expected["spans"]))
    assert "low confidence" in browser.find_element(By.ID, "tag-legend").text
    # Hover: the token's tag, probability and runner-up; and the span it is in.
    first = expected["spans"][0]
    ActionChains(browser).move_to_element(tokens[first["start"]]).perform()
    word = words[first["start"]]
    assert browser.find_element(By.ID, "tag-info").text == (
        f"{word['token']}: {word['tag']} {word['probability']:.3f}; runner-up {word['runner_up']} "
        f"{word['runner_up_probability']:.3f}" + (" (low confidence)" if word["probability"] < 0.7 else "")
        + f"; in the {first['type']} span \u201c{first['text']}\u201d {first['confidence']:.3f}")
    # The keyboard: Tab from the button reaches the first token, and Tab again the next, each telling its numbers.
    browser.execute_script("arguments[0].focus()", browser.find_element(By.ID, "go"))
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == tokens[0]
    assert browser.find_element(By.ID, "tag-info").text.startswith(f"{words[0]['token']}: {words[0]['tag']} ")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == tokens[1]
    assert browser.find_element(By.ID, "tag-info").text.startswith(f"{words[1]['token']}: {words[1]['tag']} ")
    rows = browser.find_elements(By.CSS_SELECTOR, "#spans tbody tr")
    assert [[c.text for c in row.find_elements(By.TAG_NAME, "td")][::3] for row in rows] == \
        [[s["type"], f"{s['confidence']:.3f}"] for s in expected["spans"]]
    least = min(words, key=lambda w: w["probability"])
    first_unsure = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#unsure tbody tr:first-child td")]
    assert first_unsure == [least["token"], least["tag"], f"{least['probability']:.3f} ?", least["runner_up"],
                            f"{least['runner_up_probability']:.3f}"]
    assert browser.find_element(By.ID, "tag-note").text.startswith(f"{len(words)} tokens, {len(expected['spans'])} span")
    browser.save_screenshot(str(shots / "page-tagger-test.png"))
    # A thousand words: every one tagged on the page.
    browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, "text"),
                           " ".join(["Anna went to Paris"] * 250))
    browser.find_element(By.ID, "go").click()
    wait(browser, lambda b: b.find_element(By.ID, "tag-note").text.startswith("1000 tokens"), "a thousand tagged words")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tagged .tok")) == 1000


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
