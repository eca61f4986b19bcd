"""The "steering" plugin: the Steering tab (vectors and sliders, dose-response, DPA), the
``workbench steer`` CLI group and the DPA rejection-sampling fine-tuning job. Gradio is
imported only when the tab is built."""
from __future__ import annotations

from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import GradioTab


@hookimpl
def gradio_tabs(context: Any) -> list[GradioTab]:
    return [GradioTab("Steering", "plugins.steering.tab:build_steering_tab", order=40, requires=["causal_lm"])]


@hookimpl
def job_types() -> dict[str, Any]:
    from workbench.steering.rsf import RSF_JOB  # torch: only in job_types()

    return {RSF_JOB.name: RSF_JOB}


@hookimpl
def cli_commands(app: Any) -> None:
    from plugins.steering.cli import steer_app  # only the CLI calls this hook: the app, notebooks and jobs never load it

    app.add_typer(steer_app, name="steer")
