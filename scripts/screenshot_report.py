"""Screenshot an nsad report in headless Chromium (Debian's chromium and chromium-driver), e.g. for the README.

Example: ``.venv/bin/python scripts/screenshot_report.py runs/bottle/report.html shot.png --height 1800``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def main() -> None:
    """Open the report with the flags of the browser test and save a screenshot of the window."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1800)
    parser.add_argument("--scroll-to", help="CSS selector to scroll to before the screenshot, e.g. '#gallery'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={args.width},{args.height}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(args.report.resolve().as_uri())
            if args.scroll_to:
                driver.execute_script("document.querySelector(arguments[0]).scrollIntoView();", args.scroll_to)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
