"""The ``nodewatch`` command: a launcher that dispatches to agent, collector, viewer or up.

It is not a program of its own: each subcommand lives in its package and is
imported only when asked for, so ``nodewatch agent`` never loads Qt.
"""
