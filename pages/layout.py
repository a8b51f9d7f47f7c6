"""Page-wide presentation: what every page shares in look and fit (projector, laptop, phone).
Drawing only."""

from __future__ import annotations

import streamlit as st

import pages  # noqa: F401  (a first request enters through the app: see pages/__init__.py)

CSS = """
<style>
/* Room for content on a 1024-pixel projector: narrower side padding in wide layout. */
@media (max-width: 1280px) {
  [data-testid="stMainBlockContainer"] { padding-left: 1.5rem; padding-right: 1.5rem; }
}
/* A phone: a page title of two lines, not four. */
@media (max-width: 640px) {
  [data-testid="stMain"] [data-testid="stHeading"] h1 { font-size: 2rem; }
}
/* A column holding a button never squeezes it below its label (the run banner's Stop). */
[data-testid="stColumn"]:has([data-testid="stButton"]) { min-width: max-content; }
/* Streamlit draws every Graphviz label at 9.6 px, whatever size the DOT asks for: a chart in a
   container keyed "dot-sized-…" is drawn with its DOT's font sizes (the walkthrough's ring). */
[class*="st-key-dot-sized-"] [data-testid="stGraphVizChart"] text { font-size: revert-layer; }
/* The script below draws nothing: take its slot out of the layout. */
[data-testid="stElementContainer"]:has(#fedviz-sidebar-closes) { display: none; }
</style>
"""

SIDEBAR_CLOSES = """
<script id="fedviz-sidebar-closes">
/* On a narrow window the open sidebar lies over the page. Streamlit closes it after a click
   in the page menu only for a phone's user agent; close it whenever it covers the page. */
if (!window.fedvizSidebarCloses) {
  window.fedvizSidebarCloses = true;
  document.addEventListener("click", (event) => {
    if (!event.target.closest?.("[data-testid='stSidebarNavLink']")) return;
    setTimeout(() => {  // after Streamlit handled the click (it may have closed it already)
      const sidebar = document.querySelector("[data-testid='stSidebar']");
      const main = document.querySelector("[data-testid='stMain']");
      const close = document.querySelector("[data-testid='stSidebarCollapseButton'] button");
      if (sidebar && main && close
          && sidebar.getBoundingClientRect().right > main.getBoundingClientRect().left + 1) {
        close.click();
      }
    });
  });
}
</script>
"""


def apply() -> None:
    """Called once per script run, before the page draws."""
    st.html(CSS)
    st.html(SIDEBAR_CLOSES, unsafe_allow_javascript=True)
