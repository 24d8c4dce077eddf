"""The Streamlit app: `streamlit run app.py`. Page layout only; the work is in audit/ and train/.

The app reads and writes only under the allowed roots (IMAGE_AUDIT_ALLOWED_ROOTS, separated
by os.pathsep; default: the working folder). Reports go to <workdir>/reports and training
runs to <workdir>/runs (IMAGE_AUDIT_WORKDIR, default: the first allowed root).
"""

import streamlit as st

from ui import audit_page, checks_page, training_page
from ui.safety import allowed_roots

PAGES = {"Audit": audit_page.render, "Checks": checks_page.render, "Training": training_page.render}

st.set_page_config(page_title="Image dataset audit", layout="wide")
st.sidebar.title("Image dataset audit")
page = st.sidebar.radio("Page", list(PAGES), key="page")
st.sidebar.caption("Allowed roots: " + ", ".join(str(root) for root in allowed_roots()))
PAGES[page]()
