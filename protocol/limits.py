"""Size limits and schema versions, per message kind.

Decoders check the size before parsing anything, so an oversized payload costs
the hub a length comparison, not a JSON parse. The broker enforces an outer
limit too (``message_size_limit`` in the generated Mosquitto config, which is
set to MAX_ANY_PAYLOAD).
"""

from __future__ import annotations

from typing import Final

# Every message carries "v": the schema version of its kind. A reader accepts
# the versions it knows and ignores unknown keys within them, so adding an
# optional field does not need a version bump; changing a meaning does.
SCHEMA_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({1})

MAX_EVENT_BYTES: Final = 1024
MAX_HEALTH_BYTES: Final = 4096
MAX_STATE_BYTES: Final = 512
MAX_ACK_BYTES: Final = 512
MAX_COMMAND_BYTES: Final = 8192  # a `config` push carries masks and zones as polygons
MAX_ALERT_BYTES: Final = 1024
MAX_RECEIPT_BYTES: Final = 512  # MAX_RANGES ranges of 16-digit numbers fit
MAX_SNAPSHOT_BYTES: Final = 64 * 1024  # a snapshot is ~5–12 KB; this is headroom
MAX_SNAPSHOT_HEADER_BYTES: Final = 512
MAX_ANY_PAYLOAD: Final = MAX_SNAPSHOT_BYTES

MAX_ZONE_LEN: Final = 24
MAX_ZONES: Final = 8  # zones a camera may have, so an event names at most this many
MAX_PROFILE_LEN: Final = 16
MAX_ID_LEN: Final = 36  # command and alert ids (a UUID fits)
MAX_ERROR_LEN: Final = 200
MAX_TEXT_LEN: Final = 64

# Device wall-clock bounds the hub accepts before falling back to its own
# receive time: nothing before 2024-01-01, nothing more than a day ahead.
MIN_SANE_TIME_MS: Final = 1_704_067_200_000
MAX_CLOCK_AHEAD_MS: Final = 24 * 3600 * 1000
MAX_TIME_MS: Final = 4_102_444_800_000  # 2100-01-01, a hard upper bound for any t
