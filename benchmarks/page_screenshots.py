"""Screenshots of the `serve` page for docs/: a classifier and a summarizer, explained in headless
Chromium (Debian's `chromium` and `chromium-driver`, with Selenium) against a real `nlp-lstm serve`.

    .venv/bin/python benchmarks/page_screenshots.py --classifier runs/sentiment/model \
        --summarizer runs/descriptions-demo/model [--out docs]
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


def start(classifier: str, summarizer: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "nlp_lstm.cli.main", "serve", "--port", "0", "--threads", "1",
                                "--model", f"sentiment={classifier}", "--model", f"descriptions={summarizer}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
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


def explain(driver, url: str, model: str, text: str, shown: str, path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(url + "/")
    WebDriverWait(driver, 60).until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
    Select(driver.find_element(By.ID, "model")).select_by_value(model)
    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "go").click()
    WebDriverWait(driver, 300).until(ready.visibility_of_element_located((By.ID, shown)))
    targets = driver.find_elements(By.CSS_SELECTOR, "#words .w" if model == "sentiment" else "#outputs .out")
    if targets:  # hover the word the page should say most about
        index = 1 if model == "sentiment" else min(1, len(targets) - 1)
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
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--summarizer", required=True)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    process, url = start(args.classifier, args.summarizer)
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        explain(driver, url, "sentiment", CLASSIFIER_TEXT, "classifier", out / "page-classifier.png")
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        explain(driver, url, "descriptions", SUMMARIZER_TEXT, "summarizer", out / "page-summarizer.png")
    finally:
        driver.quit()
        process.send_signal(signal.SIGTERM)
        process.wait(60)


if __name__ == "__main__":
    main()
