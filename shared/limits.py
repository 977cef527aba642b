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
MAX_TOP_PROCESSES = 5
MAX_SHORT_TEXT = 256  # host names, mount points, interface and sensor labels
MAX_HISTORY_POINTS = 100_000  # 24 h at 1 Hz plus headroom
MAX_NODES_PER_MESSAGE = 200_000
MAX_ACK_EVERY = 1_000_000  # hello.ack_every: far beyond any backlog an agent holds
