"""The relay: how a shard commit's control-side effects reach control state, exactly once.

A unit's alert steps and outbox messages write control keys (``llmtap:{c}:...``) while its
XACKs write its shard's (``llmtap:{s<k>}:...``); on a cluster those are two slots, and one
script cannot span them. So the commit (:mod:`.commit`) appends them, as one *record*, to the
shard's control outbox of the group (``keys.control_outbox``, a stream in the shard's slot),
atomically with the XACKs: a record exists exactly when its entries are acknowledged. The
relay then applies the records to control state in id order, in one script in the control
slot that skips every record at or below the group's cursor for that shard
(``keys.relayed``), applies the others (the notifications, then the steps, through the same
script parts the single-slot commit used) and moves the cursor; then it trims the applied
records. A crash between the two steps leaves the records in the outbox, and the next relay
(this consumer's next commit, or any replica's periodic pass) applies them; a record applied
but not yet trimmed is skipped by the cursor. Stream ids only grow, so one cursor per
(group, shard) replaces per-record marks, and nothing expires. The same code runs on a single
Redis, where the two steps are simply two scripts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.resources import files
from typing import Any, Final

import redis.asyncio as aredis
from redis.commands.core import AsyncScript

from llmtap import keys
from llmtap.consumers.runtime.commit import RECORD_FIELD, ScriptPart, compose

log = logging.getLogger(__name__)

RELAY_LUA: Final = (
    files("llmtap.consumers.runtime").joinpath("lua/relay.lua").read_text(encoding="utf-8")
)
# Records applied per script call (a record is one unit's steps and messages).
BATCH: Final = 100
_RECORD: Final = RECORD_FIELD.encode()


def relay_script(parts: Sequence[ScriptPart] = ()) -> str:
    """Return the relay script composed with ``parts`` (their sources, STEPS, ``relay.lua``)."""
    return compose(parts, RELAY_LUA)


def after(entry_id: bytes | str) -> str:
    """Return the smallest stream id above ``entry_id`` (``XTRIM MINID`` keeps ids >= it)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


class Relay:
    """Applies one group's control outbox on one shard (see the module docstring)."""

    def __init__(
        self, client: aredis.Redis, parts: Sequence[ScriptPart], group: str, shard: int
    ) -> None:
        self.client = client
        self.outbox = keys.on_shard(keys.control_outbox(group), shard)
        self.cursor = keys.relayed(group, shard)
        self._script: AsyncScript = client.register_script(relay_script(parts))

    async def run(self) -> int:
        """Apply every record in the outbox that is not applied yet; return how many this
        call applied (records a concurrent relay applied first are not counted).

        Raises redis errors as they come: the records stay, and the next call applies them.
        """
        applied = 0
        while True:
            rows: Any = await self.client.xrange(self.outbox, "-", "+", count=BATCH)
            if not rows:
                return applied
            args: list[bytes] = []
            for entry_id, fields in rows:
                args += [entry_id, fields.get(_RECORD, b"{}")]
            cursor, count = await self._script(keys=[self.cursor], args=args)
            applied += int(count)
            # Everything at or below the cursor is applied (by this call or another one).
            await self.client.xtrim(self.outbox, minid=after(cursor), approximate=False)
            if len(rows) < BATCH:
                if applied:
                    log.debug("relayed %d control records from %s", applied, self.outbox)
                return applied
