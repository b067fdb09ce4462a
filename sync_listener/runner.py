"""One sync run: the configured command as a child process, and how it is stopped.

What a caller may rely on: :meth:`CommandRunner.run` returns the command's exit status (127 when
it cannot be started). The child runs in its own session, in ``run_directory``, with stdin closed
and its output on the listener's stderr. Its environment is the listener's without any
``SYNC_LISTENER_*`` or ``MELTANO_UTILIZE_*`` variable (they hold the webhook key), plus
``MELTANO_RUN_ID`` (so ``meltano run`` records the same id as the ledger's events),
``SYNC_LISTENER_RUN_ID``, ``SYNC_LISTENER_DIRECTION`` and ``SYNC_LISTENER_LOCATION_ID``, and
what the caller adds for this run (a forced reconciliation pass, :mod:`sync_listener.deletes`).
Cancelling ``run`` (listener shutdown) sends SIGTERM to the child's process group, then SIGKILL
after a grace period. If the listener itself is killed, the child finishes on its own; Meltano
refuses a second run of the same job while it lasts, and the listener retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from sync_listener.settings import ENV_PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from sync_ledger.events import Lane

log = logging.getLogger(__name__)

#: The shell's status for a command that could not be run.
CANNOT_RUN = 127


#: Where ``meltano invoke sync-listener`` puts the listener's settings (the webhook key among
#: them): ``SYNC_LISTENER_*`` and ``MELTANO_UTILIZE_*``. A run needs none of them.
_SETTINGS_PREFIXES = (ENV_PREFIX, "MELTANO_UTILIZE_")


def child_environment(
    environ: Mapping[str, str],
    run_id: str,
    lane: Lane,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a run: the listener's minus its own settings, plus ``extra`` and ids."""
    env = {
        name: value for name, value in environ.items() if not name.startswith(_SETTINGS_PREFIXES)
    }
    env.update(extra or {})
    env["MELTANO_RUN_ID"] = run_id
    env[ENV_PREFIX + "RUN_ID"] = run_id
    env[ENV_PREFIX + "DIRECTION"] = lane.direction
    env[ENV_PREFIX + "LOCATION_ID"] = lane.location_id
    return env


def _output_fd() -> int | None:
    """The listener's stderr for the child's output (stdout carries the listening line)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class CommandRunner:
    """Runs commands in ``directory``; on cancellation stops the child within ``grace_seconds``."""

    def __init__(self, directory: Path, grace_seconds: float = 10.0) -> None:
        self._directory = directory
        self._grace = grace_seconds

    async def run(
        self,
        command: Sequence[str],
        run_id: str,
        lane: Lane,
        extra_env: Mapping[str, str] | None = None,
    ) -> int:
        """Run ``command`` for ``lane`` as run ``run_id`` (``extra_env`` added); its exit status."""
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=self._directory,
                env=child_environment(os.environ, run_id, lane, extra_env),
                stdin=subprocess.DEVNULL,
                stdout=_output_fd(),
                start_new_session=True,
            )
        except OSError as error:
            log.error(  # noqa: TRY400  (the reason is the whole story; no traceback needed)
                "run %s: cannot start %r: %s", run_id, command[0], error.strerror or error
            )
            return CANNOT_RUN
        try:
            return await process.wait()
        except asyncio.CancelledError:
            await self._stop(process, run_id)
            raise

    async def _stop(self, process: asyncio.subprocess.Process, run_id: str) -> None:
        log.warning("run %s: stopping it (listener shutting down)", run_id)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                await asyncio.wait_for(process.wait(), self._grace)
            except asyncio.TimeoutError:
                continue
            return
