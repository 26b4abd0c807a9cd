"""The book's players (descent.plots.interactive + book/_static/descent-player.js) in Chromium.

The built book is served on localhost and every request to another host is refused and
recorded, as in tests/test_browser.py, whose fixtures this module shares. For each player the
test does what a reader does and checks what a reader would see:

- chapter 4, heavy ball: the controls are shown (JavaScript ran), moving the β slider and then
  the α slider redraws the path and the error curve and updates the values shown; Play moves
  the iterate along the path and Pause stops it;
- chapter 5, the race: Play advances every iterate and the losses beside the labels; Pause
  stops them; the iteration slider moves them back;
- both: no console error, no request leaves localhost, the player fits the article at 1280 px
  (688 px wide) and at 400 px the page does not scroll sideways.
"""

from __future__ import annotations

import time
from urllib.parse import urljoin

import pytest
from test_browser import NARROW, SCREENSHOTS, WIDE, _open_tab, browser, site  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.book]

PAGES = {"momentum": "book/04-momentum.html", "race": "book/05-adaptive.html"}


@pytest.fixture
def reader(browser):  # noqa: F811 - the fixture imported above
    """A 1280-px tab that records console errors and requests that leave localhost."""
    context, tab = _open_tab(browser, WIDE)
    errors: list[str] = []
    tab.page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    yield tab, errors
    context.close()


def _open(tab, site, kind: str):  # noqa: F811
    base, _ = site
    tab.page.goto(urljoin(base, PAGES[kind]), wait_until="load")
    player = tab.page.locator(f'figure.descent-player[data-kind="{kind}"]')
    assert player.count() == 1, f"{PAGES[kind]} has no {kind} player"
    player.scroll_into_view_if_needed()
    tab.page.wait_for_function(
        f'document.querySelector(\'figure.descent-player[data-kind="{kind}"]\')'
        '.dataset.ready === "true"', timeout=10_000)
    return player


def _iterates(player) -> list[tuple[str, str]]:
    circles = player.locator(".dp-plot .dp-iterate")
    return [(circles.nth(k).get_attribute("cx"), circles.nth(k).get_attribute("cy"))
            for k in range(circles.count())]


def _set_range(player, selector: str, value: int) -> None:
    """Move a range input as a reader's drag does: set the value, fire `input`."""
    player.locator(selector).evaluate(
        "(el, v) => { el.value = String(v); "
        "el.dispatchEvent(new Event('input', {bubbles: true})); }", value)


def _fits(tab, player) -> None:
    box = player.bounding_box()
    article = tab.page.locator("article.bd-article").bounding_box()
    assert box["width"] <= article["width"] + 1, (box, article)
    assert 600 <= box["width"] <= 700, f"the player is {box['width']} px wide at 1280 px"


def _phone(tab, player, name: str) -> None:
    tab.page.set_viewport_size({"width": NARROW, "height": 900})
    width, window = tab.page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    player.screenshot(path=str(SCREENSHOTS / f"player-{name}@{NARROW}.png"))
    assert width <= window + 1, f"at {NARROW} px the page is {width} px wide"
    assert player.bounding_box()["width"] <= window, "the player is wider than a phone"


def _play_and_pause(player, steps: int) -> None:
    """Play advances the iteration from 0 (it restarts at the end), Pause stops it."""
    before = _iterates(player)
    player.locator(".dp-play").click()
    assert player.get_attribute("data-playing") == "true"
    assert player.locator(".dp-play").text_content() == "Pause"
    time.sleep(0.6)
    running = int(player.get_attribute("data-t"))
    player.locator(".dp-play").click()                       # pause
    paused_at = int(player.get_attribute("data-t"))
    assert 0 < running <= paused_at < steps, (running, paused_at, steps)
    moved = _iterates(player)
    assert moved != before, "Play did not move the iterate"
    time.sleep(0.5)
    assert int(player.get_attribute("data-t")) == paused_at, "Pause did not stop it"
    assert _iterates(player) == moved
    assert player.locator(".dp-play").text_content() == "Play"
    assert player.locator(".dp-t-out").text_content() == str(paused_at)


def test_heavy_ball_sliders_redraw_the_path(reader, site):  # noqa: F811
    tab, errors = reader
    player = _open(tab, site, "momentum")
    assert player.locator(".dp-controls").is_visible()
    _fits(tab, player)
    path = player.locator(".dp-plot .dp-path")
    curve = player.locator(".dp-error .dp-errcurve")
    readout = player.locator(".dp-readout")
    beta_out, alpha_out = player.locator(".dp-momentum-out"), player.locator(".dp-lr-out")
    assert "β = 0.9" in readout.text_content()

    d0, e0, beta0, text0 = (path.get_attribute("d"), curve.get_attribute("d"),
                            beta_out.text_content(), readout.text_content())
    _set_range(player, ".dp-momentum", 0)                    # β = 0: gradient descent
    assert path.get_attribute("d") != d0 and curve.get_attribute("d") != e0
    assert beta_out.text_content() == "0" != beta0
    assert readout.text_content() != text0 and "β = 0:" in readout.text_content()

    d1, alpha0 = path.get_attribute("d"), alpha_out.text_content()
    last = int(player.locator(".dp-lr").get_attribute("max"))
    _set_range(player, ".dp-lr", last)                       # the largest α diverges
    assert path.get_attribute("d") != d1 and alpha_out.text_content() != alpha0
    assert "diverges" in readout.text_content()

    _set_range(player, ".dp-momentum", 4)                    # back to a converging pair
    _set_range(player, ".dp-lr", 4)
    assert "converges" in readout.text_content()
    _play_and_pause(player, int(player.locator(".dp-t").get_attribute("max")))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    player.screenshot(path=str(SCREENSHOTS / f"player-momentum@{WIDE}.png"))
    _phone(tab, player, "momentum")
    assert not errors, f"console errors: {errors}"
    assert not tab.outside, f"requests that left localhost: {tab.outside}"


def test_race_plays_and_pauses(reader, site):  # noqa: F811
    tab, errors = reader
    player = _open(tab, site, "race")
    _fits(tab, player)
    steps = int(player.locator(".dp-t").get_attribute("max"))
    assert player.get_attribute("data-t") == str(steps)      # shows the finish first
    losses = player.locator(".dp-legend .dp-loss")
    assert losses.count() == 3
    at_end = [losses.nth(k).text_content() for k in range(3)]

    _play_and_pause(player, steps)
    paused = [losses.nth(k).text_content() for k in range(3)]
    assert paused != at_end and all(v.startswith("f(θₜ) = ") for v in paused)
    drawn = [player.locator(".dp-plot .dp-path").nth(k).get_attribute("d") for k in range(3)]
    assert all(d.count("L") < steps for d in drawn)          # paths drawn up to t only

    _set_range(player, ".dp-t", 0)                           # drag back to the start
    assert player.get_attribute("data-t") == "0"
    starts = set(_iterates(player))
    assert len(starts) == 1, f"at t = 0 all iterates sit on the start: {starts}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    player.screenshot(path=str(SCREENSHOTS / f"player-race@{WIDE}.png"))
    _phone(tab, player, "race")
    assert not errors, f"console errors: {errors}"
    assert not tab.outside, f"requests that left localhost: {tab.outside}"


def test_players_work_offline_from_the_books_own_files(site):  # noqa: F811
    """The script and the stylesheet are the book's: in _static, linked from the page."""
    _, html = site
    for kind, page in PAGES.items():
        text = (html / page).read_text()
        assert "_static/descent-player.js" in text and "_static/descent-player.css" in text
        assert f'data-kind="{kind}"' in text
    assert (html / "_static" / "descent-player.js").is_file()
