"""Screenshots of the `serve` page for docs/: a classifier, a summarizer and a tagger, explained in
headless Chromium (Debian's `chromium` and `chromium-driver`, with Selenium) against a real
`nlp-lstm serve`. Any of the three models may be left out.

    .venv/bin/python benchmarks/page_screenshots.py --classifier runs/sentiment/model \
        --summarizer runs/descriptions-demo/model --tagger runs/turkish-pos/model [--out docs]

The tagger's picture hovers over its least sure token (the one the model nearly tagged otherwise).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import ROOT

CLASSIFIER_TEXT = "Not bad at all, I would buy it again."
SUMMARIZER_TEXT = ("The Danube is the second-longest river in Europe, after the Volga in Russia. It flows through "
                   "much of Central and Southeastern Europe, from the Black Forest into the Black Sea.")
TAGGER_TEXT = ("Ali dün akşam İstanbul'a gitti ve eski arkadaşlarıyla uzun bir yemek yedi. "
               "Ertesi sabah çok yorgundu ama yine de erkenden işe gitti.")
# per kind: the name it is served under, and the page's section that shows it
KINDS = {"classifier": ("sentiment", "classifier"), "summarizer": ("descriptions", "summarizer"),
         "tagger": ("turkish-pos", "tagger")}


def start(models: dict[str, str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    served = [argument for kind, path in models.items() for argument in ("--model", f"{KINDS[kind][0]}={path}")]
    process = subprocess.Popen([sys.executable, "-m", "nlp_lstm.cli.main", "serve", "--port", "0", "--threads", "1",
                                *served], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in process.stdout:
        if found := re.search(r"on (http://127\.0\.0\.1:\d+)", line):
            url = found.group(1)
            break
    else:
        raise SystemExit("the server did not start")
    for _ in range(600):
        try:
            if urllib.request.urlopen(url + "/ready").status == 200:
                return process, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server never became ready")


def explain(driver, url: str, kind: str, text: str, served: int, path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    model, shown = KINDS[kind]
    driver.get(url + "/")
    WebDriverWait(driver, 60).until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == served)
    Select(driver.find_element(By.ID, "model")).select_by_value(model)
    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "go").click()
    WebDriverWait(driver, 300).until(ready.visibility_of_element_located((By.ID, shown)))
    selector = {"classifier": "#words .w", "summarizer": "#outputs .out", "tagger": "#tagged .tok"}[kind]
    targets = driver.find_elements(By.CSS_SELECTOR, selector)
    if targets:  # hover the word the page should say most about
        if kind == "tagger":
            index = min(range(len(targets)), key=lambda i: float(targets[i].get_attribute("data-probability")))
        else:
            index = 1 if kind == "classifier" else min(1, len(targets) - 1)
        ActionChains(driver).move_to_element(targets[index]).perform()
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the whole page in one picture
                           {"width": 1100, "height": min(height, 2400), "deviceScaleFactor": 1, "mobile": False})
    if not driver.save_screenshot(str(path)):
        raise SystemExit(f"could not write {path}")
    print("wrote", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for kind in KINDS:
        parser.add_argument(f"--{kind}", help=f"a {kind} model directory")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    models = {kind: getattr(args, kind) for kind in KINDS if getattr(args, kind)}
    if not models:
        parser.error("give at least one of --classifier, --summarizer, --tagger")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    process, url = start(models)
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    texts = {"classifier": CLASSIFIER_TEXT, "summarizer": SUMMARIZER_TEXT, "tagger": TAGGER_TEXT}
    try:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for kind in models:
            explain(driver, url, kind, texts[kind], len(models), out / f"page-{kind}.png")
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    finally:
        driver.quit()
        process.send_signal(signal.SIGTERM)
        process.wait(60)


if __name__ == "__main__":
    main()
