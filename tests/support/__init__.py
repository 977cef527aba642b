"""The one test support package: builders, fakes and real-part fixtures that every test layer shares.

Tests import from here, never from a conftest or from another test module.
Benches never import it: the real-process plumbing that ``bench/faults.py``
shares with the fault tests lives in ``bench/_procs.py`` and its siblings,
and ``processes`` re-exports it for tests.

What is where:

- ``messages``: valid wire-message builders on one epoch, ``WALL_T0``:
  ``facts``, ``hello``, ``heartbeat`` (agent side); ``status``, ``history``,
  ``entry``, ``snapshot``, ``update`` (viewer side).
- ``clock``: ``FakeClock``, the injected monotonic clock that moves only by ``advance()``.
- ``strategies``: hypothesis strategies for every wire model, within its field constraints.
- ``collector``: a real in-process collector on loopback (``make_client`` fixture,
  ``FAST``, ``fast_config``) and the agent's handshake steps over a real websocket
  (``connect_agent``, ``send_heartbeat``, ``receive_message``, ``expect_rejection``).
- ``processes``: real subprocesses (``ProcessGroup``, ``Spawned``, ``CollectorProc``; its
  ``collector(launcher=True)`` reaches three timeouts the CLI does not expose and
  ``subscriber(url)`` starts a subscriber process a test can SIGSTOP, ``fleet(...)`` runs
  ``bench/fleet.py``; collectors of a group share ``data_dir``), ``wait_until`` and
  operator-style queries (``get_json``, ``node``, ``health``, ``metric``, ``protocol_errors``,
  ``gaps``, ``rss_bytes``, ``agent_connections``), ``StateRecorder`` (a real subscriber that logs every
  liveness transition), ``FaultProxy`` (a loopback TCP proxy that stalls, half-opens, slows
  and resets) and ``storm``/``HealthProbe`` (connection floods and a health poller).
- ``swarm``: for Qt tests, ``CollectorProcess`` (the collector CLI, restartable on its port)
  and ``AgentSwarm`` (scripted agents over real websockets from a background loop).

Not here: conftest files. A fixture defined here (``collector.make_client``) is registered by
importing it into the conftest of the tests that use it.
"""
