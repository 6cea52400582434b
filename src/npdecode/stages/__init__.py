"""DVC stages: one module per stage, each with main(params) and a thin CLI."""
