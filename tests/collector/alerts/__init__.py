"""Tests of collector.alerts: rules, the pure engine, grouping, and one real delivery through Apprise."""
