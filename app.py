"""MedSearch web app: `streamlit run app.py`. Pages live in pages/; the work is done by `medsearch`."""

import streamlit as st

st.set_page_config(page_title="MedSearch", page_icon="🩺", layout="wide")
page = st.navigation([st.Page("pages/search.py", title="Search · 检索", icon="🔎", default=True)])
page.run()
