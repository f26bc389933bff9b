"""Screenshot of the playground page compressing the seed's request (docs/playground.png).

Starts `tersify serve` with the default scorer on a free loopback port, fills the page with
examples/seed_request.json in Debian's headless Chromium, submits, and saves the result.
Needs `apt-get install chromium` (and fonts-noto-cjk for the seed's Chinese text):

    .venv/bin/python perf/playground_screenshot.py [--scorer NAME] [--out docs/playground.png]
"""

from __future__ import annotations

import argparse
import sys

from harness import ROOT, requests, serve
from playwright.sync_api import sync_playwright

# Playwright itself adds --no-sandbox, --no-first-run and the switches that keep Chromium off
# the network in the background; these are the rest a headless run on a server wants.
FLAGS = ["--disable-gpu", "--disable-quic", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default=None, help="default: tersify's default scorer")
    parser.add_argument("--out", default=str(ROOT / "docs" / "playground.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    seed = requests.seed()
    # A 2-core machine may need more than the default 60 s deadline for the seed.
    flags = ["--timeout", "900", *(["--scorer", args.scorer] if args.scorer else [])]
    with serve.serving(*flags, stdout=None, stderr=None) as service:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, headless=True, args=FLAGS
            )
            page = browser.new_page(viewport={"width": 1200, "height": 1500})
            page.goto(f"{service.base}/")
            page.select_option("#split", "none")
            page.fill("#contexts", seed["context"][0])
            page.fill("#question", seed["question"])
            page.select_option("#budget-kind", "ratio")
            page.fill("#budget-value", str(seed["ratio"]))
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden]), #error:not([hidden])", timeout=900_000)
            if page.locator("#error").is_visible():
                sys.exit(f"the service refused: {page.text_content('#error')}")
            page.evaluate("document.activeElement.blur()")
            page.locator("#result").screenshot(path=args.out)
            browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
