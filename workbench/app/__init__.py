"""The browser app: one FastAPI server that hosts the Gradio tabs and the Panel views.

Only this package and the plugins' UI modules import UI libraries; everything they show
comes from the application context.
"""
