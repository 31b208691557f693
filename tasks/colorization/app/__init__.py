"""The interactive colorization app: a FastAPI server over ``adacolor.colorize`` and one page."""
