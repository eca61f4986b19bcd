"""The Labeling tab: blind A/B judging with the keyboard, history, undo and progress.

Gradio has no hotkeys, so a small script (installed by an invisible ``gr.HTML`` with
``js_on_load``) maps keys to clicks on the tab's own controls. Everything it does is also a
visible button, so the keyboard is a shortcut, never the only way. Which pair comes next,
the displayed order and the vote log all live in the store (``LabelingStore``); the tab only
shows them, so a reload or a server restart resumes exactly where the annotator stopped.

The two responses stream in (an async generator yields them a few words at a time, both
sides together); the vote controls stay live meanwhile, so an annotator can vote as soon as
they have read enough. A vote always names the pair in the tab's state, which is set before
the stream starts, and a newer stream in the same page stops the older one.

When the server has logins, the annotator is whoever logged in (``gr.Request.username``):
the name box is locked to it and the handlers ignore anything else, so nobody can vote as,
or read the history of, another annotator. An annotator login sees and starts only the
sessions assigned to it (``require_assigned``), and cannot use the session tools below the
view, which show everyone's votes (``require_owner``, checked in every handler).
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from plugins.labeling.manage import build_manage_section
from workbench.app.auth import OWNER, login_name, require_assigned, role_of
from workbench.data.types import prompt_text
from workbench.errors import WorkbenchError
from workbench.labeling.page import page_url
from workbench.labeling.scores import describe_scores, model_scores
from workbench.labeling.sessions import Item, LabelingStore, to_displayed
from workbench.labeling.state import labeling_store

MAX_ASPECTS = 4
CHOICES = [("1 · Left is better", "left"), ("2 · Right is better", "right"), ("3 · Tie", "tie"),
           ("4 · Both bad", "both_bad"), ("5 · Skip", "skip")]
STRENGTHS = [("q · slight", 1), ("w · clear", 2)]
ASPECT_CHOICES = [("left", "left"), ("right", "right"), ("tie", "tie")]
KEYS_HELP = ("**Keys:** `1`/`a` left · `2`/`b` right · `3`/`t` tie · `4`/`x` both bad · `5`/`s` skip · "
             "`q` slight · `w` clear · `6`–`9` aspect 1–4 (left → right → tie) · `Enter` submit · `Ctrl+Z` undo · `←`/`→` history. "
             "Keys are ignored while typing in a text box (`Esc` leaves it, `Ctrl+Enter` submits).")

STREAM_TICK_S = 0.03  # one streamed chunk per tick ...
STREAM_WORDS = 4  # ... of this many words per side
STREAMING_NOTE = "⏳ *Responses are streaming — you can vote already.*"
_WORDS = re.compile(r"\s*\S+")




# Installed once per page; acts only while the labeling view is on screen. A key that asks the
# server for a new render (Enter, Ctrl+Z, ←/→) starts a round trip; keys pressed before that
# render is on screen wait in a queue and are applied in order once it is (``__wbLabRendered``,
# called by a JS step chained after each such event), so none is lost, none lands on the old
# pair, and none goes into the rationale box after its Ctrl+Enter (the box is left on submit).
KEYBOARD_JS = r"""
if (!window.__wbLabelingKeys) {
  window.__wbLabelingKeys = true;
  const pick = (id, value) => {
    const input = document.querySelector(`#${id} input[type=radio][value="${value}"]`);
    if (input) { input.click(); return true; }
    return false;
  };
  const click = (id) => { const el = document.getElementById(id); if (el) { el.click(); return true; } return false; };
  const outcomes = {"1": "left", "a": "left", "2": "right", "b": "right", "3": "tie", "t": "tie",
                    "4": "both_bad", "x": "both_bad", "5": "skip", "s": "skip"};
  const aspectKeys = {"6": 0, "7": 1, "8": 2, "9": 3};
  const aspectCycle = ["left", "right", "tie"];
  const queue = [];
  let pending = null;  // timer of the round trip in flight (a safety net if its render never comes)
  const roundTrip = (id) => {
    if (!document.getElementById(id)) return false;
    pending = setTimeout(rendered, 10000);
    setTimeout(() => click(id), 0);  // after the radio's new value has reached Gradio
    return true;
  };
  const rendered = () => {
    clearTimeout(pending);
    pending = null;
    while (queue.length && pending === null) apply(queue.shift(), null);
  };
  window.__wbLabRendered = rendered;
  const cycleAspect = (i) => {
    const box = document.getElementById(`wb-lab-aspect-${i}`);
    if (!box || box.offsetParent === null) return false;
    const now = box.querySelector("input[type=radio]:checked")?.value;
    return pick(`wb-lab-aspect-${i}`, aspectCycle[(aspectCycle.indexOf(now) + 1) % aspectCycle.length]);
  };
  const apply = (k, target) => {
    const {key, ctrl, alt} = k;
    const typing = target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "radio"));
    if (typing) {
      if (key === "Escape") { target.blur(); return true; }
      if (key === "Enter" && ctrl) { target.blur(); return roundTrip("wb-lab-submit"); }
      return false;
    }
    if (ctrl && key === "z") return roundTrip("wb-lab-undo");
    if (ctrl || alt) return false;
    if (outcomes[key]) {
      const done = pick("wb-lab-outcome", outcomes[key]);
      if (outcomes[key] === "skip") {
        const box = document.querySelector("#wb-lab-rationale textarea");
        if (box) setTimeout(() => { if (pending === null && !queue.length) box.focus(); }, 50);
      }
      return done;
    }
    if (key in aspectKeys) return cycleAspect(aspectKeys[key]);
    if (key === "q" || key === "w") return pick("wb-lab-strength", key === "q" ? "1" : "2");
    if (key === "Enter") return roundTrip("wb-lab-submit");
    if (key === "ArrowLeft") return roundTrip("wb-lab-prev");
    if (key === "ArrowRight") return roundTrip("wb-lab-next");
    return false;
  };
  const KNOWN = new Set([...Object.keys(outcomes), ...Object.keys(aspectKeys), "q", "w", "Enter", "ArrowLeft", "ArrowRight", "Escape"]);
  document.addEventListener("keydown", (ev) => {
    const view = document.getElementById("wb-lab-view");
    if (!view || view.offsetParent === null) return;
    const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    const k = {key, ctrl: ev.ctrlKey || ev.metaKey, alt: ev.altKey};
    const target = ev.target;
    const typing = target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "radio"));
    if (pending !== null && !typing && (KNOWN.has(key) || (k.ctrl && key === "z")) && !(k.alt || (k.ctrl && key !== "z"))) {
      queue.push(k);  // the previous pair is still being replaced: apply this key to the next one
      ev.preventDefault();
      return;
    }
    if (apply(k, target)) ev.preventDefault();
  });
}
"""


def fast_page_link(session: str | None) -> str:
    """A link to the chosen session's fast keyboard page, which skips Gradio's event queue."""
    if not session:
        return ""
    url = page_url(session)
    return f"Fast keyboard page: [{url}]({url})"


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA after the first votes"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"ETA {minutes} min {secs:02d} s" if minutes else f"ETA {secs} s"


class LabelingView:
    """Server-side handlers of the tab; ``state`` is per browser tab, the votes are in the store."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._streams: dict[str, object] = {}  # page (session hash) -> the one stream that may write to it

    @property
    def lab(self) -> LabelingStore:
        return labeling_store(self.ctx)

    def session_names(self, user: str | None = None) -> list[str]:
        """Open sessions; for an annotator login, only those assigned to them."""
        owner = role_of(self.ctx.settings, user) == OWNER
        return [s.name for s in self.lab.list_sessions() if s.status == "open" and (owner or s.assigned_to(user))]

    # -- rendering ------------------------------------------------------------------------

    def render(self, state: dict[str, Any], item: Item | None, message: str = "") -> tuple:
        """Every output of the view, for ``item`` (None = nothing left)."""
        session, annotator = state.get("session"), state.get("annotator")
        aspects = self.lab.session(session).settings.aspects if session else []
        history = self.history_rows(state) if session and annotator else []
        aspect_updates = [gr.update(visible=i < len(aspects), label=aspects[i] if i < len(aspects) else "", value=None)
                          for i in range(MAX_ASPECTS)]
        if item is None:
            state = {**state, "pair_id": None, "order": None, "editing": False}
            progress = self.lab.progress(session, annotator) if session and annotator else None
            if progress is None:
                text = "Choose a session and your name, then Start."
            elif progress.remaining:
                text = (f"**Nothing free right now** — the {progress.remaining} pairs left are being judged by others. "
                        "Press Start / resume in a minute.")
            else:
                text = f"**All done** — {progress.done} pairs judged. Thank you!"
            return (state, f"{message}\n\n{text}".strip(), "", "", "", gr.update(value=None), gr.update(value=2),
                    *aspect_updates, gr.update(value=""), history, "")
        progress = self.lab.progress(session, annotator)
        current = item.current or {}
        state = {**state, "pair_id": item.pair.id, "order": item.displayed_order, "started_at": time.time(),
                 "editing": bool(current)}
        where = f"Editing your vote on pair {item.position} of {item.total}" if current else f"Pair {item.position} of {item.total}"
        status = f"{message}\n\n**{where}** · {progress.done} done · {_fmt_eta(progress.eta_seconds)}".strip()
        for i, aspect in enumerate(aspects[:MAX_ASPECTS]):
            aspect_updates[i] = gr.update(visible=True, label=aspect,
                                          value=to_displayed(current.get("aspects", {}).get(aspect), item.displayed_order))
        # The responses start empty and stream in (``stream``, chained after every render).
        return (state, status, f"### Prompt\n\n{prompt_text(item.pair.prompt)}", "", "",
                gr.update(value=to_displayed(current.get("outcome"), item.displayed_order)),
                gr.update(value=current.get("strength") or 2), *aspect_updates,
                gr.update(value=current.get("rationale", "")), history, STREAMING_NOTE)

    def history_rows(self, state: dict[str, Any]) -> list[list[Any]]:
        rows = []
        for k, h in enumerate(self.lab.history(state["session"], state["annotator"]), start=1):
            rows.append([k, h["pair_id"], to_displayed(h["outcome"], h["displayed_order"]),
                         {1: "slight", 2: "clear"}.get(h["strength"], ""), time.strftime("%H:%M:%S", time.localtime(h["submitted_at"]))])
        return rows

    def next_or_done(self, state: dict[str, Any], message: str = "") -> tuple:
        return self.render(state, self.lab.next_item(state["session"], state["annotator"]), message)

    # -- actions ----------------------------------------------------------------------------

    def start(self, session: str | None, annotator: str, state: dict[str, Any], request: gr.Request) -> tuple:
        user = login_name(request)
        annotator = user or (annotator or "").strip()
        if not session or not annotator:
            return (*self.render({}, None, "⚠️ Choose a session and enter your name."), {})
        try:
            require_assigned(self.ctx.settings, user, self.lab.session(session))
            self.lab.join(session, annotator)
        except WorkbenchError as err:
            return (*self.render({}, None, f"⚠️ {err}"), {})
        state = {"session": session, "annotator": annotator}
        return (*self.next_or_done(state), {"session": session, "annotator": annotator})

    def submit(self, state: dict[str, Any], outcome: str | None, strength: int | None, *rest: Any) -> tuple:
        *aspect_values, rationale = rest
        if not state.get("pair_id"):
            return self.render(state, None, "Nothing to submit.")
        order = state["order"]
        try:
            if not outcome:
                raise WorkbenchError("Pick an outcome first (keys 1–5).")
            aspects = self.lab.session(state["session"]).settings.aspects
            chosen = {a: v for a, v in zip(aspects, aspect_values, strict=False) if v}
            self.lab.vote_choice(state["session"], state["annotator"], state["pair_id"], outcome, order,
                                 strength=int(strength) if strength and outcome in ("left", "right") else None, aspects=chosen,
                                 rationale=rationale or "", started_at=state.get("started_at"), edit=bool(state.get("editing")))
        except WorkbenchError as err:
            item = self.lab.item(state["session"], state["annotator"], state["pair_id"])
            return self.render(state, item, f"⚠️ {err}")
        return self.next_or_done({**state, "last": {"pair_id": state["pair_id"], "order": order}}, "✓ Saved.")

    def undo(self, state: dict[str, Any]) -> tuple:
        if not state.get("annotator"):
            return self.render(state, None)
        try:
            ack = self.lab.undo(state["session"], state["annotator"])
        except WorkbenchError as err:
            return self.render(state, self.current_item(state), f"⚠️ {err}")
        item = self.lab.item(state["session"], state["annotator"], ack.pair_id)
        return self.render(state, item, "↶ Vote undone; judge this pair again.")

    def current_item(self, state: dict[str, Any]) -> Item | None:
        if state.get("pair_id"):
            return self.lab.item(state["session"], state["annotator"], state["pair_id"])
        return self.lab.next_item(state["session"], state["annotator"]) if state.get("annotator") else None

    def step(self, state: dict[str, Any], delta: int) -> tuple:
        """Move through the history (←/→); past the newest vote, back to the queue."""
        if not state.get("annotator"):
            return self.render(state, None)
        ids = [h["pair_id"] for h in self.lab.history(state["session"], state["annotator"])]
        here = ids.index(state["pair_id"]) if state.get("pair_id") in ids else len(ids)
        target = max(0, here + delta)
        if target >= len(ids):
            return self.next_or_done(state)
        return self.render(state, self.lab.item(state["session"], state["annotator"], ids[target]))

    def open_row(self, state: dict[str, Any], evt: gr.SelectData) -> tuple:
        if not state.get("annotator"):
            return self.render(state, None)
        ids = [h["pair_id"] for h in self.lab.history(state["session"], state["annotator"])]
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if not 0 <= row < len(ids):
            return self.render(state, self.current_item(state))
        return self.render(state, self.lab.item(state["session"], state["annotator"], ids[row]))

    def after_vote(self, state: dict[str, Any]) -> str:
        """Model scores for the pair just voted on — computed only once the vote is stored."""
        last = state.get("last")
        if not last:
            return ""
        settings = self.lab.session(state["session"]).settings
        pair = self.ctx.store.get_pair(self.lab.session(state["session"]).dataset, last["pair_id"])
        try:
            row = model_scores(self.ctx, [pair], settings)[pair.id]
        except WorkbenchError as err:
            return f"**After your vote** — model scores unavailable: {err}"
        return f"**After your vote on the previous pair** (`{pair.id}`)\n\n{describe_scores(row, last['order'])}"

    def resume(self, saved: dict[str, Any] | None, request: gr.Request) -> tuple:
        """On page load: pick up the session and name this browser used last.

        With a login the name is the login's (locked); the saved session resumes only if
        that login has joined it, whatever name the browser remembers.
        """
        saved = saved or {}
        user = login_name(request)
        names = self.session_names(user)
        session = saved.get("session") if saved.get("session") in names else None
        annotator = user or saved.get("annotator") or ""
        # Only a login changes the box's props (a props update re-mounts it and would drop typing).
        # Nothing saved: leave the box alone, so a name typed while the page loads is kept.
        name_box = (annotator or gr.update()) if user is None else gr.update(value=user, interactive=False, label="Logged in as")
        if session and annotator and (user is None or annotator in self.lab.annotators(session)):
            state = {"session": session, "annotator": annotator}
            return (gr.update(choices=names, value=session), name_box, *self.next_or_done(state, "Resumed where you left off."))
        return (gr.update(choices=names, value=session or (names[0] if names else None)), name_box, *self.render({}, None))

    async def stream(self, state: dict[str, Any], request: gr.Request) -> AsyncIterator[tuple[Any, Any, str]]:
        """Stream the shown pair's two responses, a few words per tick, until done or superseded.

        ``state`` was written by the render that showed the pair, so a vote made meanwhile
        already names this pair. A later render in the same page starts a new stream, which
        takes over the page's slot; this one then stops without writing again.
        """
        if not state.get("pair_id"):
            yield gr.update(), gr.update(), ""
            return
        slot, token = request.session_hash or "", object()  # this very stream: the newest one owns the slot
        self._streams[slot] = token
        try:
            item = await asyncio.to_thread(self.lab.item, state["session"], state["annotator"], state["pair_id"])
            left, right = _WORDS.findall(item.left), _WORDS.findall(item.right)
            for n in range(STREAM_WORDS, max(len(left), len(right)) + STREAM_WORDS, STREAM_WORDS):
                if self._streams.get(slot) != token:
                    return
                yield "".join(left[:n]), "".join(right[:n]), STREAMING_NOTE
                await asyncio.sleep(STREAM_TICK_S)
            if self._streams.get(slot) == token:
                yield item.left, item.right, ""
        finally:
            if self._streams.get(slot) == token:
                del self._streams[slot]


def build_labeling_tab(ctx: Any) -> None:
    """Build the tab inside the current Blocks: the labeling view, then the session tools."""
    view = LabelingView(ctx)
    with gr.Column(elem_id="wb-lab-view"):
        gr.HTML("", js_on_load=KEYBOARD_JS, elem_id="wb-lab-keys", apply_default_css=False, padding=False)
        saved = gr.BrowserState({}, storage_key="wb-labeling")
        state = gr.State({})
        with gr.Row():
            session = gr.Dropdown(choices=view.session_names(), label="Session", elem_id="wb-lab-session", scale=2)
            view.session_dropdown = session
            annotator = gr.Textbox(label="Your name", elem_id="wb-lab-annotator", scale=2)
            start = gr.Button("Start / resume", variant="primary", elem_id="wb-lab-start", scale=1)
        fast_link = gr.Markdown(elem_id="wb-lab-fast")
        session.change(fast_page_link, session, fast_link, queue=False, show_progress="hidden")
        status = gr.Markdown("Loading…", elem_id="wb-lab-status")  # the page-load event replaces it; tests wait for that
        prompt = gr.Markdown(elem_id="wb-lab-prompt")
        with gr.Row(equal_height=True):
            with gr.Column():
                gr.Markdown("**Left** (`1`)")
                left = gr.Markdown(elem_id="wb-lab-left", container=True)
            with gr.Column():
                gr.Markdown("**Right** (`2`)")
                right = gr.Markdown(elem_id="wb-lab-right", container=True)
        outcome = gr.Radio(CHOICES, label="Which response is better?", elem_id="wb-lab-outcome")
        strength = gr.Radio(STRENGTHS, value=2, label="How much better?", elem_id="wb-lab-strength")
        aspects = [gr.Radio(ASPECT_CHOICES, visible=False, elem_id=f"wb-lab-aspect-{i}") for i in range(MAX_ASPECTS)]
        rationale = gr.Textbox(label="Rationale (optional; required for a skip)", lines=2, elem_id="wb-lab-rationale")
        with gr.Row():
            prev = gr.Button("← Previous", elem_id="wb-lab-prev")
            submit = gr.Button("Submit (Enter)", variant="primary", elem_id="wb-lab-submit")
            undo = gr.Button("Undo (Ctrl+Z)", elem_id="wb-lab-undo")
            nxt = gr.Button("Next →", elem_id="wb-lab-next")
        gr.Markdown(KEYS_HELP)
        streaming = gr.Markdown("", elem_id="wb-lab-stream")
        after = gr.Markdown(elem_id="wb-lab-after")
        history = gr.Dataframe(headers=["#", "pair", "your choice", "strength", "time"], interactive=False,
                               label="Your votes (click a row to revisit and edit)", elem_id="wb-lab-history")

    outputs = [state, status, prompt, left, right, outcome, strength, *aspects, rationale, history, streaming]

    def streamed(event: Any) -> Any:
        # Runs beside the vote controls: no progress overlay, any number at once, and a new
        # one may start while the previous is pending (it supersedes it, see ``stream``).
        event.then(view.stream, state, [left, right, streaming], show_progress="hidden", concurrency_limit=None,
                   trigger_mode="multiple", queue=True)
        # The render is on screen: apply the keys pressed meanwhile (KEYBOARD_JS).
        event.then(None, None, None, js="() => { window.__wbLabRendered && window.__wbLabRendered(); }")
        return event

    streamed(start.click(view.start, [session, annotator, state], [*outputs, saved]))
    streamed(annotator.submit(view.start, [session, annotator, state], [*outputs, saved]))
    streamed(submit.click(view.submit, [state, outcome, strength, *aspects, rationale], outputs)).then(view.after_vote, state, after)
    streamed(undo.click(view.undo, state, outputs))
    streamed(prev.click(lambda s: view.step(s, -1), state, outputs))
    streamed(nxt.click(lambda s: view.step(s, +1), state, outputs))
    streamed(history.select(view.open_row, state, outputs))
    # The link follows the session chosen on load too (the dropdown may already hold it: no change event).
    streamed(gr.context.Context.root_block.load(view.resume, saved, [session, annotator, *outputs])).then(
        fast_page_link, session, fast_link, queue=False, show_progress="hidden")

    build_manage_section(ctx, view)
