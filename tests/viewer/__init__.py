"""Tests of the PyQt6 viewer: pure helpers, the model, the link and the window, offscreen."""
