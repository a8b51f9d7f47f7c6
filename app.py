"""fedviz dashboard entry point: page config, the shared sidebar controls, navigation, and
the run banner every page shows while this session's run is in flight.

Run with `scripts/run.sh` (or `python -m streamlit run app.py`).

Everything happens inside `main()` behind the `__main__` guard: the obfuscator pool's worker
processes re-import this entry script (multiprocessing's forkserver rule), and for them it
must be a cheap no-op, not a second dashboard.
"""

from pathlib import Path

FAVICON = Path(__file__).resolve().parent / "static" / "favicon.png"


def main() -> None:
    import streamlit as st

    from fedviz.crypto.pool import start_forkserver
    from pages import common, controls, layout, session

    st.set_page_config(
        page_title="fedviz · federated learning with Paillier", page_icon=str(FAVICON), layout="wide"
    )
    st.cache_resource(start_forkserver)()  # once per server process; holds nothing secret
    taken = session.reattach()  # a page reloaded during a run takes it over (`?run=` in its URL)
    if taken is not None:
        controls.adopt(taken.settings, taken.job.pause)
    session.collect()  # a run that ended since the last script run: take in its results
    common.reopen_stored()  # a reloaded page that showed a stored run (`?stored=` in its URL)
    # The default page is served at "/" only (Streamlit reserves its own path but answers "Page
    # not found" there): a hidden page at "/training" leads to it, for bookmarks and links.
    training = st.Page(common.TRAINING_PAGE, title="Training", default=True, url_path="start")

    def training_by_name() -> None:
        st.switch_page(training, query_params=st.query_params.to_dict())  # `?run=` and `?stored=` kept

    page = st.navigation(
        [
            training,
            st.Page(training_by_name, title="Training", url_path="training", visibility="hidden"),
            st.Page(common.RING_PAGE, title="Ring inspector", url_path="ring"),
            st.Page(common.PRIVACY_PAGE, title="Privacy", url_path="privacy"),
            st.Page(common.WALKTHROUGH_PAGE, title="Walkthrough", url_path="walkthrough"),
            st.Page(common.COMPARE_PAGE, title="Compare", url_path="compare"),
            st.Page(common.RUNS_PAGE, title="Runs", url_path="runs"),
            st.Page(common.GLOSSARY_PAGE, title="Glossary", url_path="glossary"),
        ]
    )
    layout.apply()
    controls.sidebar()
    if page.url_path != training.url_path:  # the Training page draws its own, with the charts
        common.run_banner(page.url_path)
    common.notices()
    if page.url_path != "runs":
        common.stored_notice()
    page.run()


if __name__ == "__main__":
    main()
