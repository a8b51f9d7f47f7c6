"""fedviz dashboard entry point: page config, the shared sidebar controls, navigation.

Run with `scripts/run.sh` (or `python -m streamlit run app.py`).

Everything happens inside `main()` behind the `__main__` guard: the obfuscator pool's worker
processes re-import this entry script (multiprocessing's forkserver rule), and for them it
must be a cheap no-op, not a second dashboard.
"""


def main() -> None:
    import streamlit as st

    from fedviz.crypto.pool import shared_pool, warm
    from pages import common

    st.set_page_config(
        page_title="fedviz · federated learning with Paillier", page_icon=":material/lock:", layout="wide"
    )
    if "pool_warmed" not in st.session_state:  # start the obfuscator workers before the first Run
        warm(shared_pool())
        st.session_state["pool_warmed"] = True
    page = st.navigation(
        [
            st.Page(
                "pages/training.py",
                title="Training",
                icon=":material/monitoring:",
                default=True,
                url_path="training",
            ),
            st.Page(common.RING_PAGE, title="Ring inspector", icon=":material/sync_lock:", url_path="ring"),
            st.Page(common.PRIVACY_PAGE, title="Privacy", icon=":material/shield_lock:", url_path="privacy"),
        ]
    )
    common.sidebar()
    page.run()


if __name__ == "__main__":
    main()
