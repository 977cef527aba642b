"""Test-wide setup. Qt must run offscreen, or it aborts the whole pytest process without a display."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
