"""The Labeling tab: the session picker and, below it, the fast keyboard page of that session.

Annotating happens in the fast page (``/label/<session>``, embedded in an iframe): one request
per vote, keys queued while a vote is in flight, pair texts set as text, and a reload resumes
from its ``localStorage`` entry. The tab used to have a second vote path through Gradio's event
queue, which was ~100× slower per vote, lost its name on reload and rendered pair text as HTML;
one path is kept. The page checks logins and roles through the same API as every other client.

An annotator login sees only the sessions assigned to it; the session tools below the view
(``build_manage_section``) show everyone's votes and refuse annotators on the server.
"""
from __future__ import annotations

import html
import json
from typing import Any

import gradio as gr

from plugins.labeling.manage import build_manage_section
from workbench.app import ui
from workbench.app.auth import OWNER, login_name, role_of
from workbench.errors import WorkbenchError
from workbench.labeling.page import page_url
from workbench.labeling.scores import describe_scores, model_scores
from workbench.labeling.sessions import LabelingStore

FRAME_HEIGHT_PX = 900
NO_SESSION = "<p id='wb-lab-none'>Choose a session in <b>Session</b> above to start labeling.</p>"

# Installed once per page: a key pressed while nothing in the tab has the focus (after a reload,
# or a click beside the frame) is handed to the embedded page, which then keeps the focus, so
# the keyboard works without first clicking into the frame. Keys typed into a box or pressed on
# a focused control of the tab stay with it.
FORWARD_KEYS_JS = r"""
if (!window.__wbLabForward) {
  window.__wbLabForward = true;
  document.addEventListener("keydown", (ev) => {
    const frame = document.getElementById("wb-lab-frame");
    if (!frame || frame.offsetParent === null || !frame.contentDocument) return;
    const target = ev.target;
    if (target && target !== document.body && target !== document.documentElement) return;
    frame.contentWindow.focus();
    const init = {key: ev.key, code: ev.code, ctrlKey: ev.ctrlKey, metaKey: ev.metaKey, altKey: ev.altKey,
                  shiftKey: ev.shiftKey, bubbles: true, cancelable: true};
    (frame.contentDocument.activeElement ?? frame.contentDocument.body).dispatchEvent(new KeyboardEvent("keydown", init));
    ev.preventDefault();
  });
}
"""


# The embedded page posts {type: "wb-label-voted", session, annotator, pair_id} after each stored vote;
# this hands it to the server (``after_vote``), which answers with the session's model scores.
VOTED_JS = r"""
window.addEventListener("message", (ev) => {
  if (ev.origin !== window.location.origin || ev.data?.type !== "wb-label-voted") return;
  const {session, annotator, pair_id} = ev.data;
  props.value = JSON.stringify({session, annotator, pair_id});
  trigger("change");
});
"""


def after_vote_markdown(ctx: Any, lab: LabelingStore, session: str, annotator: str, pair_id: str) -> str:
    """The session's model scores for a pair the annotator has voted on (shown only after the vote, in
    the left/right terms they saw); nothing when the session names no reward, policy or reference model."""
    info = lab.session(session)
    if not (info.settings.reward_model or info.settings.policy_model):
        return ""
    vote = next((j for j in reversed(lab.judgments(session)) if j.annotator == annotator and j.pair_id == pair_id), None)
    if vote is None:
        return ""  # no stored vote: scores must never come before one
    pair = next(p for p in lab.pairs(session) if p.id == pair_id)
    try:
        row = model_scores(ctx, [pair], info.settings)[pair.id]
    except WorkbenchError as err:
        return f"**After your vote** — model scores unavailable: {ui.md_escape(str(err))}"
    return f"**After your vote on the previous pair** (`{ui.md_escape(pair.id)}`)\n\n{describe_scores(row, vote.displayed_order)}"


def fast_page_link(session: str | None) -> str:
    """A link to the chosen session's fast keyboard page, to label it in a tab of its own."""
    if not session:
        return ""
    url = page_url(session)
    return f"Fast keyboard page: [{url}]({url})"


def frame_html(session: str | None) -> str:
    """The session's fast page in an iframe (escaped: a session name is user data)."""
    if not session:
        return NO_SESSION
    url = html.escape(page_url(session), quote=True)
    title = html.escape(f"Labeling {session}", quote=True)
    return (f'<iframe id="wb-lab-frame" src="{url}" title="{title}" '
            f'style="width:100%;height:{FRAME_HEIGHT_PX}px;border:0"></iframe>')


class LabelingView:
    """Which sessions the login may open; the votes themselves go through the fast page's API."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.session_dropdown: Any = None

    @property
    def lab(self) -> LabelingStore:
        return self.ctx.labeling

    def session_names(self, user: str | None = None) -> list[str]:
        """Open sessions; for an annotator login, only those assigned to them."""
        owner = role_of(self.ctx.settings, user) == OWNER
        return [s.name for s in self.lab.list_sessions() if s.status == "open" and (owner or s.assigned_to(user))]

    def choose(self, session: str | None, request: gr.Request) -> tuple[str, str, dict[str, Any]]:
        """Show the chosen session's page; a session this login may not open shows nothing."""
        if session not in self.session_names(login_name(request)):
            return NO_SESSION, "", {}
        return frame_html(session), fast_page_link(session), {"session": session}

    def after_vote(self, message: str | None, request: gr.Request) -> str:
        """Model scores for the pair the embedded page just stored a vote on: only in a session this login
        may open, and only for the login's own votes (an owner may look at any annotator's)."""
        try:
            data = json.loads(message or "{}")
            session, annotator, pair_id = (str(data.get(k) or "") for k in ("session", "annotator", "pair_id"))
        except (json.JSONDecodeError, AttributeError):
            return ""
        user = login_name(request)
        if session not in self.session_names(user) or (user and role_of(self.ctx.settings, user) != OWNER and annotator != user):
            return ""
        return after_vote_markdown(self.ctx, self.lab, session, annotator, pair_id)

    def resume(self, saved: dict[str, Any] | None, request: gr.Request) -> tuple[Any, str, str]:
        """On page load: the session this browser labeled last (the page inside resumes on its pair)."""
        names = self.session_names(login_name(request))
        session = (saved or {}).get("session")
        session = session if session in names else (names[0] if names else None)
        return gr.update(choices=names, value=session), frame_html(session), fast_page_link(session)


def build_labeling_tab(ctx: Any) -> None:
    """Build the tab inside the current Blocks: the picker and fast page, then the session tools."""
    view = LabelingView(ctx)
    with gr.Column(elem_id="wb-lab-view"):
        gr.HTML("", js_on_load=FORWARD_KEYS_JS, elem_id="wb-lab-keys", apply_default_css=False, padding=False)
        saved = gr.BrowserState({}, storage_key="wb-labeling")
        session = gr.Dropdown(choices=view.session_names(), label="Session", elem_id="wb-lab-session")
        view.session_dropdown = session
        fast_link = gr.Markdown(elem_id="wb-lab-fast")
        frame = gr.HTML(NO_SESSION, elem_id="wb-lab-page")
        voted = gr.HTML("", html_template="", js_on_load=VOTED_JS, elem_id="wb-lab-voted", apply_default_css=False, padding=False)
        scores = gr.Markdown(elem_id="wb-lab-after-vote")
    session.change(view.choose, session, [frame, fast_link, saved], show_progress="hidden")
    voted.change(view.after_vote, voted, scores, show_progress="hidden")
    gr.context.Context.root_block.load(view.resume, saved, [session, frame, fast_link], show_progress="hidden")
    build_manage_section(ctx, view)
