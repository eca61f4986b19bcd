"""The "Models & data" tab: model catalog and loading, dataset import, pair browser, chat.

Layout and event wiring only; the work is done by ``plugins.home.actions``. Every
WorkbenchError is shown in the page as its message and hint, never as a traceback.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from plugins.home import actions
from workbench.app import ui
from workbench.app.auth import login_name, require_owner
from workbench.context import AppContext
from workbench.data.readers import FORMATS, QUALITY_CHECKS
from workbench.errors import WorkbenchError
from workbench.jobs.options import SamplingOptions


def _models_section(ctx: AppContext, chat_model: gr.Markdown) -> None:
    gr.Markdown("### Models")
    catalog = gr.Dataframe(
        headers=actions.CATALOG_COLUMNS, interactive=False,
        wrap=True, max_height=260, label="Local checkpoints (nothing is downloaded)", elem_id="home-catalog",
    )
    with gr.Row(equal_height=True):
        model = gr.Dropdown(label="Model", choices=[], scale=4, elem_id="home-model")
        load = gr.Button("Load", variant="primary", scale=1, elem_id="home-load")
        refresh = gr.Button("Refresh list", scale=1)
    status = gr.Markdown(elem_id="home-load-status")

    def choices() -> tuple[Any, list[list[str]]]:
        rows, names = actions.catalog_table(ctx)
        current = ctx.active_model_name if ctx.active_model_name in names else (names[0] if names else None)
        return gr.Dropdown(choices=names, value=current), rows

    def on_load(name: str) -> Iterator[tuple[Any, Any, Any]]:
        yield f"Loading **{ui.md_escape(name or '')}**… (the first load of the demo model converts it, about 30 s)", gr.skip(), gr.skip()
        try:
            message = actions.load_model(ctx, name)
        except WorkbenchError as exc:
            yield ui.error_markdown(exc), actions.active_model_line(ctx), gr.skip()
            return
        yield message, actions.active_model_line(ctx), actions.catalog_table(ctx)[0]

    gr.on(triggers=None, fn=choices, outputs=[model, catalog])  # on every page load
    refresh.click(choices, outputs=[model, catalog])
    load.click(on_load, inputs=model, outputs=[status, chat_model, catalog])


def _chat_section(ctx: AppContext) -> gr.Markdown:
    gr.Markdown("### Chat with the loaded model")
    chat_model = gr.Markdown(value=lambda: actions.active_model_line(ctx), elem_id="home-chat-model")
    compare = gr.Dropdown(label="Compare with (optional)", choices=[], elem_id="home-chat-compare",
                          info="A second model answers the same message, history, seed and settings, next to the first.")
    with gr.Row(equal_height=True):
        chatbot = gr.Chatbot(height=340, label="Conversation", elem_id="home-chatbot")
        chatbot_b = gr.Chatbot(height=340, label="Compare", visible=False, elem_id="home-chatbot-compare")
    with gr.Row(equal_height=True):
        message = gr.Textbox(placeholder="Ask something…", show_label=False, scale=5, elem_id="home-chat-input")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="home-chat-send")
    with gr.Row():
        max_new = gr.Slider(1, 1024, value=128, step=1, label="Max new tokens", elem_id="home-chat-max-new")
        temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature (0 = greedy)", elem_id="home-chat-temperature")
        seed = gr.Number(value=0, precision=0, label="Seed", elem_id="home-chat-seed")
    status = gr.Markdown(elem_id="home-chat-status")
    clear = gr.Button("Clear conversation", size="sm")

    def compare_choices() -> Any:
        return gr.Dropdown(choices=[("— none —", ""), *ui.model_choices(ctx, actions.CHAT_NEEDS)])

    def on_compare(name: str | None) -> Any:
        """A new second model starts from the conversation so far (its pane empties until the next message)."""
        return gr.Chatbot(value=[], label=name or "Compare", visible=bool(name))

    def on_send(text: str, history: list[dict[str, Any]], history_b: list[dict[str, Any]], compare_name: str | None,
                max_new_tokens: float, temp: float, seed_value: float | None) -> Iterator[tuple[Any, Any, Any, Any]]:
        text = (text or "").strip()
        if not text:
            yield gr.skip(), gr.skip(), gr.skip(), "Type a message first."
            return
        try:
            settings = SamplingOptions(
                max_new_tokens=int(max_new_tokens), temperature=float(temp) if temp > 0 else 1.0,
                do_sample=temp > 0, seed=None if seed_value is None else int(seed_value),
            )
            if compare_name:
                yield gr.skip(), gr.skip(), gr.skip(), f"Loading **{ui.md_escape(compare_name)}**…"
            models = actions.chat_models(ctx, compare_name)
        except WorkbenchError as exc:
            yield gr.skip(), gr.skip(), gr.skip(), ui.error_markdown(exc)
            return
        question = {"role": "user", "content": text}
        conversations = [[*actions.to_messages(history), question]]
        if compare_name:  # the second pane continues its own answers, or the first pane's conversation when new
            conversations.append([*actions.to_messages(history_b or history), question])
        for n, update in enumerate(actions.answer(models, conversations, settings)):
            pane_a, pane_b = update.panes[0], update.panes[1] if compare_name else gr.skip()
            if n == 0:  # each pane names its model; the question and the notes show at once
                pane_a = gr.Chatbot(value=pane_a, label=models[0].name)
                if compare_name:
                    pane_b = gr.Chatbot(value=pane_b, label=models[1].name, visible=True)
            yield pane_a, pane_b, "", update.status

    inputs = [message, chatbot, chatbot_b, compare, max_new, temperature, seed]
    outputs = [chatbot, chatbot_b, message, status]
    gr.on(triggers=None, fn=compare_choices, outputs=compare)  # on every page load
    compare.change(on_compare, inputs=compare, outputs=chatbot_b)
    send.click(on_send, inputs=inputs, outputs=outputs)
    message.submit(on_send, inputs=inputs, outputs=outputs)
    clear.click(lambda: ([], [], ""), outputs=[chatbot, chatbot_b, status])
    return chat_model


def _data_section(ctx: AppContext) -> None:
    roots = ", ".join(f"`{r}`" for r in ctx.settings.all_data_roots())
    gr.Markdown(f"### Import a dataset\nUpload a file, or type the path of a file inside the data folders ({roots}).")
    with gr.Row():
        upload = gr.File(label="Upload (JSONL, JSON, CSV, Parquet)", file_count="single", type="filepath", scale=2, elem_id="home-import-file")
        with gr.Column(scale=3):
            path = gr.Textbox(label="…or a path inside the data folders (a relative one starts from the first)", elem_id="home-import-path")
            with gr.Row():
                fmt = gr.Dropdown(["auto", *FORMATS], value="auto", label="Format")
                name = gr.Textbox(label="Dataset name (default: the file name)", elem_id="home-import-name")
                replace = gr.Checkbox(label="Replace a dataset of that name", value=False)
            keep = gr.CheckboxGroup([(text, kind) for kind, text in QUALITY_CHECKS.items()], label="Keep anyway (records "
                                    "refused as likely mistakes unless ticked)", elem_id="home-import-allow")
            go = gr.Button("Import", variant="primary", elem_id="home-import")
    import_status = gr.Markdown(elem_id="home-import-status")

    gr.Markdown("### Browse pairs")
    with gr.Row(equal_height=True):
        dataset = gr.Dropdown(label="Dataset", choices=[], scale=3, elem_id="home-dataset")
        number = gr.Number(value=1, precision=0, minimum=1, label="Pair #", scale=1, elem_id="home-pair-number")
        prev = gr.Button("◀ Previous", scale=1)
        nxt = gr.Button("Next ▶", scale=1)
    header = gr.Markdown(elem_id="home-pair-header")
    prompt = gr.Markdown(label="Prompt", container=True, elem_id="home-pair-prompt")
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("**Response A**")
            response_a = gr.Markdown(container=True, elem_id="home-pair-a")
        with gr.Column():
            gr.Markdown("**Response B**")
            response_b = gr.Markdown(container=True, elem_id="home-pair-b")
    with gr.Accordion("Metadata", open=False):
        metadata = gr.Markdown(elem_id="home-pair-metadata")
    pair_outputs = [number, header, prompt, response_a, response_b, metadata]

    def show(name: str | None, n: float | None) -> tuple[Any, ...]:
        try:
            v = actions.pair_view(ctx, name, n)
        except WorkbenchError as exc:
            return 1, ui.error_markdown(exc), "", "", "", ""
        prompt_md = f"**Prompt**\n\n{v.prompt}" if v.total else ""
        return v.number or 1, v.header, prompt_md, v.response_a, v.response_b, v.metadata

    def datasets() -> Any:
        names = ui.dataset_choices(ctx)
        return gr.Dropdown(choices=names, value=names[0] if names else None)

    blocks = gr.context.Context.root_block  # its upload_file_set: the files Gradio's upload route received

    def on_import(file: str | None, typed: str, fmt_name: str, ds_name: str, replace_existing: bool, allow: list[str],
                  request: gr.Request) -> tuple[Any, Any, Any]:
        try:
            require_owner(ctx.settings, login_name(request), "import or replace datasets")
            stored, message = actions.import_dataset(ctx, upload=file, path=typed or "", name=ds_name or "", format=fmt_name,
                                                     replace=replace_existing, received=blocks.upload_file_set, allow=allow or ())
        except WorkbenchError as exc:
            return ui.error_markdown(exc), gr.skip(), gr.skip()
        return message, gr.Dropdown(choices=ui.dataset_choices(ctx), value=stored), 1

    gr.on(triggers=None, fn=datasets, outputs=dataset)  # on every page load
    go.click(on_import, inputs=[upload, path, fmt, name, replace, keep], outputs=[import_status, dataset, number])
    dataset.change(lambda d: show(d, 1), inputs=dataset, outputs=pair_outputs)
    number.submit(show, inputs=[dataset, number], outputs=pair_outputs)
    prev.click(lambda d, n: show(d, (n or 1) - 1), inputs=[dataset, number], outputs=pair_outputs)
    nxt.click(lambda d, n: show(d, (n or 1) + 1), inputs=[dataset, number], outputs=pair_outputs)


def build_home_tab(ctx: AppContext) -> None:
    """Called by the shell inside ``gr.Tab("Models & data")``."""
    with gr.Row():
        with gr.Column(scale=1):
            models_area = gr.Column()
        with gr.Column(scale=1):
            chat_model = _chat_section(ctx)
    with models_area:
        _models_section(ctx, chat_model)
    _data_section(ctx)
