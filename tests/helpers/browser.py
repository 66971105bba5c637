"""Headless Chromium (Debian's chromium and chromium-driver) through selenium, for the page screenshots and checks."""

from __future__ import annotations

from helpers.peers import require_binary


def chromium(window: tuple[int, int] = (1100, 900), loopback_only: bool = False):
    """A headless Chromium that reaches nothing but what a test points it at (no sync, updates or QUIC).
    `loopback_only` also makes every other host name unresolvable, for pages that would fetch from the internet
    (Home Assistant's frontend loads integration logos from brands.home-assistant.io)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = require_binary("chromium", "chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    if loopback_only:
        options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    return webdriver.Chrome(service=Service(require_binary("chromedriver", "chromium-driver")), options=options)
