"""fedviz dashboard entry point: page config, the shared sidebar controls, navigation.

Run with `scripts/run.sh` (or `python -m streamlit run app.py`).
"""

import streamlit as st

from pages import common

st.set_page_config(page_title="fedviz · federated learning with Paillier", page_icon="🔐", layout="wide")

pages = [
    st.Page("pages/training.py", title="Training", icon="📈", default=True, url_path="training"),
    st.Page("pages/ring.py", title="Ring inspector", icon="🔁", url_path="ring"),
    st.Page("pages/privacy.py", title="Privacy", icon="🛡️", url_path="privacy"),
]
page = st.navigation(pages)
common.sidebar()
page.run()
