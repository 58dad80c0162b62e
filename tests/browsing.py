"""Waiting for a page in a real browser: the one helper every browser test uses instead of fixed
sleeps, so a fast machine does not wait and a slow one does not fail."""

from __future__ import annotations

# Everything drawn: Streamlit marks elements of an unfinished run stale; charts (vega-embed,
# SVG unless very large) draw after their element is mounted; web fonts load after the text
# is laid out. Two animation frames let the layout of all that land before anyone measures.
DRAWN = """async (timeout) => {
  const deadline = Date.now() + timeout;
  const charts = () => [...document.querySelectorAll('.stVegaLiteChart')]
    .every((c) => c.querySelector('svg, canvas'));
  while (!charts()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  await document.fonts.ready;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return true;
}"""


def settle(page, timeout: float = 60_000) -> None:
    """Wait for the script run to finish and everything it shows to be drawn (before reading,
    measuring or a screenshot). A click's run may not have started yet when this looks: wait
    for the click's result itself where that matters."""
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout
    )
    page.wait_for_function(
        "() => !document.querySelector(\"[data-stale='true']\")", timeout=timeout
    )
    assert page.evaluate(DRAWN, timeout), "a chart was not drawn within the timeout"
