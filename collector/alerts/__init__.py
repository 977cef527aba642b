"""Alerts: rules from the collector's TOML config, a pure engine, and notification routing through Apprise.

``rules`` and ``routes`` read and check the config; ``engine`` turns samples and liveness
changes into alert transitions; ``notify`` groups transitions into notifications on a
schedule; ``delivery`` sends them through Apprise off the event loop. docs/alerts.md
describes the semantics and how the collector wires them in. Apprise is imported only
by ``delivery``, and only when a route is configured.
"""
