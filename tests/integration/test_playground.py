"""The playground page of `tersify serve`, in a real headless Chromium (Debian's package).

A real `tersify serve` (the tiny scorer) on a free loopback port; Playwright for Python
drives /usr/bin/chromium (never a downloaded browser build). Set
``TERSIFY_PLAYGROUND_SCREENSHOT=docs/playground.png`` to also save a screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "playground-test-token"
MAX_CONTEXTS = 4
SEED = json.loads((ROOT / "examples" / "seed_request.json").read_text(encoding="utf-8"))
CHROMIUM = os.environ.get("TERSIFY_CHROMIUM", "/usr/bin/chromium")
# Chromium logs every non-2xx answer to a fetch; the error tests ask for those on purpose.
ANSWERED_NON_2XX = "Failed to load resource: the server responded with a status of"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_browser() -> None:
    """Skip where no browser is installed, but never in CI: .ci/run installs both."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "the playground test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def service(tiny_scorer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `tersify serve` with a token, on a free loopback port; stopped by its pid."""
    _need_browser()
    port = _free_port()
    folder = tmp_path_factory.mktemp("serve")
    (folder / "token").write_text(TOKEN + "\n", encoding="utf-8")
    log = (folder / "serve.log").open("wb")
    command = [sys.executable, "-m", "tersify.cli", "serve", "--scorer", str(tiny_scorer_dir)]
    options = ["--token-file", str(folder / "token"), "--max-contexts", str(MAX_CONTEXTS)]
    process = subprocess.Popen(
        [*command, *options, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"tersify serve did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(service: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives every launch a fresh, temporary --user-data-dir.
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: object, service: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1100, "height": 1400})  # type: ignore[attr-defined]
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console {msg.type}: {msg.text}")
        if msg.type in ("error", "warning") and not msg.text.startswith(ANSWERED_NON_2XX)
        else None,
    )
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(service) else elsewhere.append(r.url))
    response = page.goto(f"{service}/")
    assert response is not None and response.status == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    yield page
    assert not elsewhere, f"the page reached beyond its service: {elsewhere}"
    assert not problems, problems
    context.close()


def _fill_seed(page: object) -> None:
    (context,) = SEED["context"]
    page.select_option("#split", "none")  # type: ignore[attr-defined]
    page.fill("#contexts", context)  # type: ignore[attr-defined]
    page.fill("#question", SEED["question"])  # type: ignore[attr-defined]
    page.select_option("#budget-kind", "ratio")  # type: ignore[attr-defined]
    page.fill("#budget-value", str(SEED["ratio"]))  # type: ignore[attr-defined]
    page.fill("#token", TOKEN)  # type: ignore[attr-defined]


def test_seed_request_shows_what_was_dropped(page: object, service: str) -> None:
    p = page  # Playwright's Page: typed loosely so the module imports without playwright
    _fill_seed(p)
    assert p.text_content("#context-count") == "1 context will be sent."
    p.focus("#question")
    with p.expect_response(f"{service}/compress") as answered:
        p.keyboard.press("Control+Enter")  # the keyboard path
    assert answered.value.status == 200
    p.wait_for_selector("#result:not([hidden])")
    shown = answered.value.json()["data"]

    # The same request without the page, and without explain: the same compression.
    status, plain = _post(f"{service}/compress", SEED)
    assert status == 200
    data = plain["data"]
    assert "explanation" not in data
    assert shown["compressed_prompt"] == data["compressed_prompt"]
    counts = {k: p.text_content(f"#{k}") for k in ("origin-tokens", "compressed-tokens")}
    assert counts == {
        "origin-tokens": f"{data['origin_tokens']:,}",
        "compressed-tokens": f"{data['compressed_tokens']:,}",
    }
    assert data["origin_tokens"] == 3701
    saved = data["origin_tokens"] - data["compressed_tokens"]
    assert p.text_content("#saved-tokens") == f"{saved:,}"
    assert p.text_content("#ratio") == data["ratio"] and p.text_content("#rate") == data["rate"]
    assert p.text_content("#saving") in data["saving"]
    seconds = r"\d+\.\d\d s"  # the round trip, then the service's own figures
    assert re.fullmatch(f"{seconds}service {seconds}, scorer {seconds}", p.text_content("#time"))
    assert p.text_content("#compressed") == data["compressed_prompt"]

    # Struck-through text and kept text interleave back into the original, and the kept
    # text is exactly what the compressed prompt holds.
    pieces = p.eval_on_selector_all(
        "#original .text[data-context='0'] > *", "els => els.map(e => [e.tagName, e.textContent])"
    )
    original = SEED["context"][0]
    assert "".join(text for _, text in pieces) == original
    kept = "".join(text for tag, text in pieces if tag == "SPAN")
    dropped = "".join(text for tag, text in pieces if tag == "DEL")
    assert dropped and kept
    assert data["compressed_prompt"] == f"{kept}\n\n{SEED['question']}"
    assert p.locator("#legend li").count() == 6
    assert p.locator("#original del").first.evaluate(
        "e => getComputedStyle(e).textDecorationLine"
    ) == "line-through"

    # A narrow window: nothing wider than the screen.
    p.set_viewport_size({"width": 360, "height": 900})
    assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot = os.environ.get("TERSIFY_PLAYGROUND_SCREENSHOT")
    if shot:
        p.set_viewport_size({"width": 1100, "height": 1400})
        p.screenshot(path=shot, full_page=False)


def _refusal(page: object, service: str, status: int) -> str:
    """Submit the form, expect the service to answer ``status``; the error box's text."""
    p = page
    with p.expect_response(f"{service}/compress") as answered:  # type: ignore[attr-defined]
        p.click("#submit")  # type: ignore[attr-defined]
    assert answered.value.status == status
    error = p.locator("#error")  # type: ignore[attr-defined]
    error.wait_for(state="visible")
    assert p.evaluate("document.activeElement.id") == "error"  # type: ignore[attr-defined]
    assert p.locator("#result").is_hidden()  # type: ignore[attr-defined]
    text = error.text_content()
    request_id = answered.value.json()["error"]["request_id"]
    assert f"HTTP {status}" in text and request_id in text
    return str(text)


def test_service_errors_are_shown_in_plain_words(page: object, service: str) -> None:
    p = page
    p.fill("#contexts", "Some text to compress.")
    assert "needs an access token (401)" in _refusal(p, service, 401)

    p.fill("#token", TOKEN)
    p.click("#more summary")
    p.fill("#options", '{"colour": "red"}')
    text = _refusal(p, service, 400)
    assert "could not use this request (400)" in text and "colour" in text

    p.fill("#options", "")
    p.fill("#contexts", "\n\n".join(f"Context number {i}." for i in range(MAX_CONTEXTS + 1)))
    assert p.text_content("#context-count") == f"{MAX_CONTEXTS + 1} contexts will be sent."
    text = _refusal(p, service, 413)
    assert "larger than this service allows (413)" in text and str(MAX_CONTEXTS) in text


def test_bad_input_is_caught_before_sending(page: object) -> None:
    p = page
    sent: list[str] = []
    p.on("request", lambda r: sent.append(r.url) if r.url.endswith("/compress") else None)
    p.click("#submit")
    assert "nothing to compress" in p.text_content("#error")
    p.fill("#contexts", "text")
    p.select_option("#budget-kind", "rate")
    p.fill("#budget-value", "1.5")
    p.click("#submit")
    assert "budget is not valid" in p.text_content("#error")
    assert p.evaluate("document.activeElement.id") == "budget-value"
    assert not sent


def test_a_request_file_fills_the_form(page: object, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    p = page
    request = {"context": ["first", "second"], "question": "q?", "target_token": 42}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    p.set_input_files("#file", str(path))
    # (wait_for_function would evaluate a string, which the page's CSP rightly forbids)
    expect(p.locator("#question")).to_have_value("q?")
    assert p.input_value("#contexts") == "first\n---\nsecond"
    assert p.input_value("#split") == "dashes" and p.input_value("#budget-kind") == "target_token"
    assert p.input_value("#budget-value") == "42"
    assert p.text_content("#context-count") == "2 contexts will be sent."


PARAGRAPHS = [
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, trimmed the wick, "
    "polished the great lens and wrote the weather in a leather log book before midnight.",
    "Sourdough bread needs a lively starter, flour, water and salt; the dough rests overnight "
    "in a cool kitchen so that the crumb turns open and the crust bakes dark and crisp.",
    "The treaty was signed in the spring of 1648 in the town of Osnabrueck, ending thirty "
    "years of war; the delegates had argued for five years over seating and titles.",
    "Honeybees dance in a figure of eight to tell their sisters where the flowers are; the "
    "angle of the waggle run points the way relative to the sun and its length the distance.",
]


def test_question_aware_folds_the_contexts_it_dropped(page: object, service: str) -> None:
    p = page
    p.fill("#token", TOKEN)
    p.fill("#contexts", "\n\n".join(PARAGRAPHS))
    p.fill("#question", "In which year was the treaty signed?")
    p.check("input[name=mode][value=question-aware]")
    p.fill("#budget-value", "0.4")
    p.click("#more summary")
    p.fill("#options", '{"context_budget": "+0"}')  # no slack: the coarse filter must drop
    with p.expect_response(f"{service}/compress") as answered:
        p.click("#submit")
    assert answered.value.status == 200
    p.wait_for_selector("#result:not([hidden])")
    data = answered.value.json()["data"]
    contexts = data["explanation"]["contexts"]
    dropped = [c for c in contexts if c["position"] is None]
    assert dropped and all(c["rank"] is not None for c in contexts)

    folded = p.locator("#original details.dropped")
    assert folded.count() == len(dropped)
    for k, context in enumerate(dropped):
        summary = folded.nth(k).locator("summary").text_content()
        assert f"Context {context['index'] + 1}: dropped whole" in summary
        assert f"rank {context['rank'] + 1} of {len(PARAGRAPHS)}" in summary
        assert folded.nth(k).get_attribute("open") is None  # folded until asked
    folded.first.locator("summary").focus()
    p.keyboard.press("Enter")  # unfold with the keyboard
    assert folded.first.get_attribute("open") is not None

    kept_parts = {}
    for context in contexts:
        pieces = p.eval_on_selector_all(
            f"#original .text[data-context='{context['index']}'] > *",
            "els => els.map(e => [e.tagName, e.textContent])",
        )
        assert "".join(text for _, text in pieces) == PARAGRAPHS[context["index"]]
        if context["position"] is not None:
            kept_parts[context["position"]] = "".join(t for tag, t in pieces if tag == "SPAN")
        else:
            assert all(tag == "DEL" for tag, _ in pieces)
    prompt_parts = [kept_parts[k] for k in sorted(kept_parts) if kept_parts[k]]
    question = "In which year was the treaty signed?"
    assert data["compressed_prompt"] == "\n\n".join([*prompt_parts, question])
