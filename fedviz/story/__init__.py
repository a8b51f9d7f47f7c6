"""The story in two minutes: what a newcomer reads before the numbers.

- `walkthrough`: one federated round told step by step with a run's own numbers, and the
  ring picture each step highlights.
- `visibility`: who sees what, derived from the privacy rules of `fedviz.privacy.attacks`.
- `glossary`: the words the dashboard uses, in plain language.

Pure Python, no Streamlit: the pages draw what these modules compute.
"""
