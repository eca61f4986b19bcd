"""HoloViews elements for the latent explorer: one scatter per space, datashaded when big."""
from __future__ import annotations

import holoviews as hv
import pandas as pd

DATASHADE_ABOVE = 20_000
HOVER_CHARS = 160


def hover_text(texts: pd.Series) -> pd.Series:
    """The first characters of each text on one line, so the hover box stays readable."""
    return texts.astype(str).str.replace(r"\s+", " ", regex=True).str.slice(0, HOVER_CHARS)


MAX_LEGEND_ENTRIES = 10  # categories a legend beside a 360 px plot holds


def points_plot(frame: pd.DataFrame, x: str, y: str, color_by: str, title: str, axis: str = "component") -> hv.Element | hv.DynamicMap:
    """A scatter of ``frame[x], frame[y]`` coloured by ``color_by``; hover shows the text; axes read "<axis> 1/2".

    Above ``DATASHADE_ABOVE`` points the scatter is rasterized by Datashader (categories
    counted per pixel, numbers averaged), since the browser cannot draw that many glyphs.
    """
    vdims = list(dict.fromkeys([color_by, "hover", "key"]))
    points = hv.Points(frame, kdims=[x, y], vdims=vdims).opts(title=title)
    if len(frame) <= DATASHADE_ABOVE:
        categorical = not pd.api.types.is_numeric_dtype(frame[color_by])
        # A legend of many categories is taller than the plot and covered the next plot's title: hover names them instead.
        legend = categorical and frame[color_by].nunique() <= MAX_LEGEND_ENTRIES
        return points.opts(
            color=color_by, cmap="Category20" if categorical else "viridis", colorbar=not categorical, size=5, alpha=0.75,
            tools=["hover", "box_select", "lasso_select"], width=430, height=360, legend_position="right",
            show_legend=legend, xlabel=f"{axis} 1", ylabel=f"{axis} 2",
        )
    import datashader as ds  # datashader: only for the rasterized plot of a large point set
    from holoviews.operation.datashader import dynspread, rasterize  # the same

    if pd.api.types.is_numeric_dtype(frame[color_by]):
        shaded = rasterize(points, aggregator=ds.mean(color_by)).opts(cmap="viridis", colorbar=True)
    else:
        categories = frame.assign(**{color_by: frame[color_by].astype(str).astype("category")})
        points = hv.Points(categories, kdims=[x, y], vdims=vdims).opts(title=title)
        shaded = rasterize(points, aggregator=ds.count_cat(color_by)).opts(cmap="Category20")
    return dynspread(shaded).opts(tools=["box_select", "hover"], width=430, height=360, title=title, xlabel=f"{axis} 1", ylabel=f"{axis} 2")
