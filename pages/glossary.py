"""Glossary: the dashboard's words in plain language, alphabetically, with a search box. Each
entry has its own anchor (`/glossary#paillier`). Drawing only: `fedviz.story.glossary`
holds the entries."""

from __future__ import annotations

import streamlit as st

import pages  # noqa: F401  (a first request enters through the app: see pages/__init__.py)
from fedviz.story import glossary

st.title("Glossary")
st.markdown(
    "The words this dashboard uses, in plain language: for a hospital's data officer deciding whether "
    "this protocol fits their data, not for a cryptographer."
)
query = st.text_input(
    "Search",
    key="glossary-search",
    placeholder="e.g. ciphertext, ε, masks",
    help="Finds a word in the terms, the other names they go by, and the explanations.",
)
found = glossary.search(query)
total = len(glossary.ENTRIES)
if not found:
    st.info(f"No term matches '{query}'. Clear the search to see all {total}.", icon=":material/search_off:")
else:
    st.caption(f"{len(found)} of {total} terms" if query.strip() else f"{total} terms, A to Z")
for entry in found:
    st.subheader(entry.term, anchor=entry.anchor)
    st.markdown(entry.text)
