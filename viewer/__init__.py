"""nodewatch viewer: a PyQt6 window that follows a collector's subscribe stream live.

Layout:
- pure (no Qt, no asyncio): ``format`` (numbers for people), ``cells`` (what each cell says,
  and the truth rule for stale/offline figures), ``filtering`` (the filter language),
  ``status`` (the words of the banner and indicator), ``backoff``, ``batching``, ``linkstate``
  (phases, URLs and the words for each connection failure, from ``shared.retry``), ``details``
  (the detail tabs' rows, and the slow-tier values kept with their time);
- the network boundary: ``link`` (one QObject) over ``worker`` (aiohttp in a background thread);
- UI-thread models and widgets: ``model``, ``sorting``, ``table``, ``filterbar``,
  ``statuswidgets``, ``charts``, ``overview``, ``detailtabs``, ``detail``, ``window``; ``cli`` is the entry point.
The viewer never imports ``agent`` or ``collector``: it meets them only in ``shared``.
"""
