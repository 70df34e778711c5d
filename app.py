"""MedSearch web app: `streamlit run app.py`. Pages live in views/ (not pages/, which Streamlit would also serve
as pages of their own, bypassing sign-in); the work is done by `medsearch`."""

import ipaddress
import socket

import streamlit as st

from medsearch.access import LOCAL, User
from medsearch.failures import STORAGE_ERRORS
from medsearch.i18n import Texts
from medsearch.records import MedSearchError
from views.common import current_user, failure, language_switch, role_name, signin_configured, streamlit_words, texts

TEXTS = Texts({
    "search": ("Search", "检索"), "compare": ("Compare retrievers", "检索方式对比"),
    "answers": ("Answers", "回答"), "corpus": ("Corpus", "语料"), "annotate": ("Annotate", "标注"),
    "finetune": ("Fine-tune", "微调"), "learn": ("Learn", "入门讲解"),
    "find": ("Find", "查找"), "data": ("Data", "数据"), "about": ("Understand", "了解原理"),
    "note": ("MedSearch supports and does not replace clinical judgement.",
             "MedSearch 辅助而不取代临床判断。"),
    "welcome": ("Sign in to search your team's medical collections.", "请登录以检索团队的医学文档集。"),
    "sign_in": ("Sign in", "登录"), "sign_out": ("Sign out", "退出登录"),
    "signed_in": ("Signed in as {name} · {role}", "已登录：{name} · {role}"),
    "refused": ("{name} is signed in but has no role in MedSearch. Ask an administrator to add you.",
                "{name} 已登录，但在 MedSearch 中没有角色。请联系管理员添加。"),
    "roles_broken": ("Sign-in is configured but the roles file cannot be read: {error}",
                     "已配置登录，但无法读取角色文件：{error}"),
    "local": ("Single local user: sign-in is not configured, so this app only answers on this machine.",
              "单一本地用户：未配置登录，因此本应用只在本机提供服务。"),
    "exposed": ("Sign-in is not configured, but this server listens on {address}, where other machines can reach "
                "it. Set up sign-in (README: Running it for a team), or start it with --server.address localhost.",
                "未配置登录，但本服务器监听 {address}，其他机器可以访问。请配置登录（见 README“团队使用”），"
                "或以 --server.address localhost 启动。"),
})


def loopback(address: str) -> bool:
    """Whether the server address only answers on this machine ('' means every interface)."""
    try:
        return bool(address) and all(ipaddress.ip_address(info[4][0]).is_loopback
                                     for info in socket.getaddrinfo(address, None))
    except (OSError, ValueError):
        return False


def alone(show) -> None:
    """Run `show` as the app's only page (no page list, so nothing else can be opened), then stop."""
    st.navigation([st.Page(show, title="MedSearch", default=True)], position="hidden").run()
    st.stop()


def exposed() -> None:
    st.error(t("exposed", address=st.get_option("server.address") or "0.0.0.0"))


def sign_in() -> None:
    st.title("MedSearch")
    st.write(t("welcome"))
    if st.button(t("sign_in"), type="primary"):
        st.login()


def broken_roles() -> None:
    try:
        current_user()
    except MedSearchError as exc:
        st.error(t("roles_broken", error=exc))


def refused() -> None:
    st.warning(t("refused", name=st.user.get("email") or "-"))
    if st.button(t("sign_out")):
        st.logout()


def gate() -> User:
    """The signed-in (or the one local) user; anyone else sees only a sign-in page, a refusal or a warning."""
    if not signin_configured():
        if not loopback(st.get_option("server.address") or ""):
            alone(exposed)
        st.sidebar.caption(t("local"))
        return LOCAL
    if not st.user.is_logged_in:
        alone(sign_in)
    try:
        user = current_user()
    except MedSearchError:
        alone(broken_roles)
    if user is None:
        alone(refused)
    st.sidebar.caption(t("signed_in", name=user.name, role=role_name(user)))
    if st.sidebar.button(t("sign_out")):
        st.logout()
    return user


st.set_page_config(page_title="MedSearch", page_icon="🩺", layout="wide")
language_switch()
streamlit_words()
t = texts(TEXTS)
user = gate()
data = [st.Page("views/corpus.py", title=t("corpus"), icon=":material/library_books:")]
if user.may("label"):
    data.append(st.Page("views/annotate.py", title=t("annotate"), icon=":material/label:"))
if user.may("train"):
    data.append(st.Page("views/finetune.py", title=t("finetune"), icon=":material/model_training:"))
pages = {
    t("find"): [st.Page("views/search.py", title=t("search"), icon=":material/search:", default=True),
                st.Page("views/compare.py", title=t("compare"), icon=":material/compare_arrows:"),
                st.Page("views/answers.py", title=t("answers"), icon=":material/forum:")],
    t("data"): data,
    t("about"): [st.Page("views/learn.py", title=t("learn"), icon=":material/school:")],
}
st.sidebar.caption(t("note"))
try:
    st.navigation(pages).run()
except STORAGE_ERRORS as exc:  # a read-only or full disk: one message, whichever page hit it
    st.error(failure(exc))
