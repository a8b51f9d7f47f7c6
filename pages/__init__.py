"""The dashboard's pages and their drawing helpers.

Entering through the app. Streamlit sees a folder named `pages/` beside `app.py` and, until
the app has called `st.navigation` once in this server process, serves every file in it as
a page of its own: a visitor whose first request is a bookmarked `/training` got the bare
page (no sidebar, no settings) and a list of helper modules as pages. Importing this
package in that state switches Streamlit to the app's navigation and reruns the request,
which then goes through `app.py` like any other. Every file under `pages/` imports it.
"""

from streamlit.runtime.pages_manager import PagesManager

if PagesManager.uses_pages_directory:
    import streamlit as st

    PagesManager.uses_pages_directory = False
    st.rerun()
