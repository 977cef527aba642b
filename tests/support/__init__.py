"""The one test support package: builders, fakes and real-part fixtures that every test layer shares.

Tests import from here, never from a conftest or from another test module.
Benches never import it (``bench/`` keeps its own small copies, see ``bench/__init__``).

What is where:

- ``messages``: valid wire-message builders on one epoch, ``WALL_T0``:
  ``facts``, ``hello``, ``heartbeat`` (agent side); ``status``, ``history``,
  ``entry``, ``snapshot``, ``update`` (viewer side).
- ``clock``: ``FakeClock``, the injected monotonic clock that moves only by ``advance()``.
- ``strategies``: hypothesis strategies for every wire model, within its field constraints.
- ``collector``: a real in-process collector on loopback (``make_client`` fixture,
  ``FAST``, ``fast_config``) and the agent's handshake steps over a real websocket
  (``connect_agent``, ``send_heartbeat``, ``receive_message``, ``expect_rejection``).
- ``processes``: real subprocesses (``ProcessGroup``, ``Spawned``, ``CollectorProc``),
  ``wait_until`` and operator-style queries (``get_json``, ``node``, ``health``,
  ``metric``, ``gaps``, ``rss_bytes``, ``agent_connections``).
- ``recorder``: ``StateRecorder``, a real subscriber that logs every liveness transition.
- ``proxy``: ``FaultProxy``, a loopback TCP proxy that stalls, half-opens, slows and resets.
- ``collector_proc``: ``python -m tests.support.collector_proc``, the collector with the
  three timeouts its CLI does not expose.
- ``subscriber_proc``: ``python -m tests.support.subscriber_proc``, a subscriber a test can SIGSTOP.
- ``swarm``: for Qt tests, ``CollectorProcess`` (the collector CLI, restartable on its port)
  and ``AgentSwarm`` (scripted agents over real websockets from a background loop).

Not here: fixtures themselves live in conftest files, which import what they need from here.
"""
