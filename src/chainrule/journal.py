"""The History of a checkpointed run, stored incrementally: one JSON line per epoch.

A checkpoint is rewritten after every epoch; if it held the whole History, writing it
after epoch 10,000 would cost a thousand times more than after epoch 10 (the homework's
6,000 epochs took 580 s instead of 2.5 s). So :func:`chainrule.train.fit` appends each
epoch's logs and diagnostics to a journal file next to the checkpoint,
``<checkpoint>.<token>.history``, and the checkpoint records only the journal's
:meth:`HistoryJournal.state`: its token, how many epochs and bytes of it belong to the
checkpoint, and a digest chained over its lines. Writing a checkpoint then costs the
same at every epoch.

Crash safety follows from the order of writes: the journal is appended (and
``fsync``-ed) before the checkpoint that counts the new lines is renamed into place,
so a checkpoint never counts lines the journal lacks; lines beyond the count (a writer
killed in between, a rolled-back epoch) are ignored on reading and cut off at the next
append. A new run writes a journal of its own (a new token), so the previous run's
checkpoint stays resumable until the new checkpoint replaces it; journals of other
tokens are removed once a checkpoint is committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets

__all__ = ["HistoryJournal", "JOURNAL_SUFFIX"]

JOURNAL_SUFFIX = ".history"
_STATE_KEYS = ("bytes", "digest", "epochs", "token")
_TOKEN = re.compile(r"[0-9a-f]{16}")
_GENESIS = hashlib.sha256(b"chainrule history journal v1").hexdigest()


def _chain(digest: str, line: bytes) -> str:
    return hashlib.sha256(digest.encode("ascii") + line).hexdigest()


def _line(history, epoch: int) -> bytes:
    entry = {"logs": {k: v[epoch] for k, v in history.history.items()},
             "diagnostics": history.diagnostics[epoch]}
    return (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()


class HistoryJournal:
    """The journal file of one run's History (see the module docstring).

    Parameters
    ----------
    checkpoint : str or os.PathLike
        The checkpoint the journal belongs to.
    token : str, optional
        16 hex digits naming this run's journal; a new one by default.
    """

    def __init__(self, checkpoint, token: str | None = None):
        self.checkpoint = os.fspath(checkpoint)
        self.token = secrets.token_hex(8) if token is None else token
        self.path = f"{self.checkpoint}.{self.token}{JOURNAL_SUFFIX}"
        # After epoch e: the journal's length in bytes, and the chained digest.
        self.offsets, self.digests = [0], [_GENESIS]

    def state(self) -> dict:
        """What the checkpoint records: token, epochs, bytes and digest."""
        return {"token": self.token, "epochs": len(self.offsets) - 1,
                "bytes": self.offsets[-1], "digest": self.digests[-1]}

    def sync(self, history) -> dict:
        """Make the journal hold exactly the epochs of ``history``, appending only
        those not yet written (and cutting off any beyond them); return :meth:`state`.

        Costs O(new epochs), not O(all epochs).
        """
        n = history.epochs
        del self.offsets[n + 1:], self.digests[n + 1:]
        lines = [_line(history, e) for e in range(len(self.offsets) - 1, n)]
        with open(self.path, "a+b") as fh:
            fh.truncate(self.offsets[-1])
            for line in lines:
                fh.write(line)
                self.offsets.append(self.offsets[-1] + len(line))
                self.digests.append(_chain(self.digests[-1], line))
            fh.flush()
            os.fsync(fh.fileno())
        return self.state()

    def remove_others(self) -> None:
        """Remove the journals of this checkpoint with another token (an earlier
        run's, or one killed before its first checkpoint)."""
        folder = os.path.dirname(os.path.abspath(self.checkpoint))
        prefix = os.path.basename(self.checkpoint) + "."
        for name in os.listdir(folder):
            token = name[len(prefix):-len(JOURNAL_SUFFIX)]
            if (name.startswith(prefix) and name.endswith(JOURNAL_SUFFIX)
                    and _TOKEN.fullmatch(token) and token != self.token):
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    pass

    @classmethod
    def load(cls, checkpoint, state) -> tuple[HistoryJournal, dict]:
        """Read the journal a checkpoint's ``state`` describes.

        Returns
        -------
        journal : HistoryJournal
            Ready to append the next epoch.
        data : dict
            ``{"history": {key: list}, "diagnostics": list}`` of the ``state["epochs"]``
            epochs, for :meth:`chainrule.history.History.from_dict` to check.

        Raises
        ------
        ValueError
            Naming the problem: a malformed state, a missing, short or altered
            journal (its digest differs), or a line that is not an epoch entry.
        """
        if not (isinstance(state, dict) and sorted(state) == list(_STATE_KEYS)
                and isinstance(state["token"], str) and _TOKEN.fullmatch(state["token"])
                and all(type(state[k]) is int and state[k] >= 0 for k in ("bytes", "epochs"))
                and isinstance(state["digest"], str)):
            raise ValueError(f"the journal state {state!r} is malformed")
        journal = cls(checkpoint, state["token"])
        try:
            with open(journal.path, "rb") as fh:
                # Bounded by the file's real size: never more than it holds.
                data = fh.read(min(state["bytes"], os.fstat(fh.fileno()).st_size))
        except OSError as exc:
            raise ValueError(f"its History journal {journal.path!r} cannot be read "
                             f"({exc.strerror})") from None
        if len(data) != state["bytes"]:
            raise ValueError(f"its History journal {journal.path!r} holds {len(data)} "
                             f"bytes, the checkpoint counts {state['bytes']}")
        lines = data.splitlines(keepends=True)
        if len(lines) != state["epochs"] or (lines and not lines[-1].endswith(b"\n")):
            raise ValueError(f"its History journal {journal.path!r} holds {len(lines)} "
                             f"epochs, the checkpoint counts {state['epochs']}")
        history: dict[str, list] = {}
        diagnostics = []
        for line in lines:
            journal.offsets.append(journal.offsets[-1] + len(line))
            journal.digests.append(_chain(journal.digests[-1], line))
        if journal.digests[-1] != state["digest"]:
            raise ValueError(f"its History journal {journal.path!r} was modified (digest "
                             f"mismatch)")
        for e, line in enumerate(lines):
            try:
                entry = json.loads(line)
                logs, diag = entry["logs"], entry["diagnostics"]
                for key, value in logs.items():
                    history.setdefault(key, []).append(value)
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ValueError(f"line {e + 1} of its History journal {journal.path!r} "
                                 f"is not an epoch entry") from None
            diagnostics.append(diag)
        return journal, {"history": history, "diagnostics": diagnostics}
