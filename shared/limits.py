"""The protocol version and the size bounds of docs/protocol.md, section 5, as plain constants.

Kept apart from ``shared.messages`` so that a peer which packs its own maps
(the agent does, to stay small) can use them without importing pydantic.
Not here: frame-level decode limits (``shared.codec.DecodeLimits``).
"""

PROTOCOL_VERSION = 1

# Limits that keep one message from growing without bound. The receiving
# endpoint's frame-size limit (docs/protocol.md, section 2.2) applies on top:
# a heartbeat at every limit at once would be over 64 KiB and is refused.
MAX_CORES = 1024
MAX_DISKS = 64
MAX_INTERFACES = 64
MAX_SENSORS = 64
# heartbeat.gpus: an 8-GPU HGX board is today's usual maximum and 16-GPU chassis exist; at ~170
# bytes a GPU (all seven fields), 16 add under 3 KiB to one slow-tier heartbeat in five.
MAX_GPUS = 16
MAX_TOP_PROCESSES = 5
MAX_SHORT_TEXT = 256  # host names, mount points, interface and sensor labels
MAX_HISTORY_POINTS = 100_000  # 24 h at 1 Hz plus headroom
MAX_NODES_PER_MESSAGE = 200_000
MAX_ACK_EVERY = 1_000_000  # hello.ack_every: far beyond any backlog an agent holds

# A node id names a machine in the fleet: a hostname, or a name with ':' and '@' for
# "host:container" or "service@host"; it never starts with punctuation, so it can be a
# path segment (/api/v1/nodes/{node_id}) and a Prometheus label without quoting surprises.
NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
NODE_ID_MAX_LEN = 128
# hello.node_credential: HMAC-SHA256 as 64 lowercase hex digits (agent.identity.node_credential).
NODE_CREDENTIAL_PATTERN = r"^[0-9a-f]{64}$"
# hello.interval_s: 20 Hz is as fast as a psutil sample stays cheap; an hour is the slowest
# interval at which "offline after 10 intervals" still means something to a person.
MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 3600.0

# Node labels (``NodeFacts.labels``; the agent's ``--label KEY=VALUE``). A key becomes a Prometheus
# label name as ``label_<key>`` on ``nodewatch_node_info`` (docs/protocol.md 8.3), so keys use that
# charset and at most 63 characters; a value is short text, never empty (Prometheus reads an empty
# label value as no label). 32 labels at the bounds are ~10 KiB, well inside the 64 KiB hello frame,
# and keep every node record, API row and alert selector input small.
MAX_LABELS = 32
LABEL_KEY_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$"
MAX_LABEL_VALUE = 256

# The collector's endpoint paths (docs/protocol.md, section 3); the agent, the viewer and
# the collector's routes read them from here.
INGEST_PATH = "/api/v1/ingest"
SUBSCRIBE_PATH = "/api/v1/subscribe"
HEALTH_PATH = "/api/v1/health"
NODES_PATH = "/api/v1/nodes"
METRICS_PATH = "/metrics"
