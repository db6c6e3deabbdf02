"""Dataset errors, and the one place that applies the ``on_bad_sample`` policy."""
from __future__ import annotations

import warnings
from collections import Counter

BAD_SAMPLE_POLICIES = ("error", "skip")
MAX_LISTED_PROBLEMS = 10


class DatasetError(ValueError):
    """A dataset file is malformed or inconsistent; the message names the file and the item."""


def check_policy(on_bad_sample: str) -> None:
    if on_bad_sample not in BAD_SAMPLE_POLICIES:
        raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}")


class ProblemLog:
    """Collects problems found while validating a dataset, then raises or summarizes them.

    ``kind`` is a short key (e.g. "invalid_box") used for counting; ``message`` names the item.
    Kinds in ``repaired_kinds`` (a box clipped to the image, a duplicate dropped, a size taken from
    the image) are fixed in memory and never stop a run; every other kind is a bad item.
    """

    def __init__(self, source: str, repaired_kinds: tuple[str, ...] = ()):
        self.source = source  # the annotation file or dataset root, named in every message
        self.repaired_kinds = repaired_kinds
        self.messages: list[str] = []
        self.counts: Counter[str] = Counter()
        self.by_kind: dict[str, list[str]] = {}

    def add(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        self.messages.append(f"{kind}: {message}")
        self.by_kind.setdefault(kind, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    @property
    def bad(self) -> dict[str, int]:
        return {k: n for k, n in sorted(self.counts.items()) if k not in self.repaired_kinds}

    @property
    def repaired(self) -> dict[str, int]:
        return {k: n for k, n in sorted(self.counts.items()) if k in self.repaired_kinds}

    def finish(self, on_bad_sample: str) -> dict[str, int]:
        """Raise DatasetError under "error" if there are bad items; otherwise warn once (one line) when
        items were dropped and return their counts per kind. Repairs alone are not warned about: they
        are in ``repaired`` and in the one summary line a run prints (data_summary)."""
        bad = [m for m in self.messages if m.split(":", 1)[0] not in self.repaired_kinds]
        if not bad:
            return {}
        if on_bad_sample == "error" and bad:
            raise DatasetError(self._describe(bad))
        parts = [f"skipped bad samples ({_counts(self.bad)})" if self.bad else "",
                 f"repaired ({_counts(self.repaired)})" if self.repaired else ""]
        text = f"{self.source}: {'; '.join(p for p in parts if p)}; first: {bad[0]}"
        warnings.warn(text, stacklevel=3)
        return self.bad

    def _describe(self, messages: list[str]) -> str:
        lines = [f"{self.source}: {len(messages)} problem(s) found"]
        lines += [f"  - {m}" for m in messages[:MAX_LISTED_PROBLEMS]]
        if len(messages) > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {len(messages) - MAX_LISTED_PROBLEMS} more")
        lines.append("Fix the file, or pass on_bad_sample='skip' to drop these items.")
        return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind}={n}" for kind, n in counts.items())


def data_summary(dataset, skipped_images: list[str] = ()) -> str | None:
    """One line: what the dataset dropped and repaired when read, and the undecodable images that a
    run skipped (``skipped_images``, "kind: message"); None when there was nothing."""
    log = getattr(dataset, "problems", None)
    bad, repaired = (log.bad, log.repaired) if log is not None else (dict(dataset.skipped), {})
    decode = Counter(m.split(":", 1)[0] for m in skipped_images)
    parts = [f"dropped {_counts(bad)}" if bad else "", f"repaired {_counts(repaired)}" if repaired else "",
             f"skipped while training {_counts(dict(decode))} (first: {skipped_images[0]})" if decode else ""]
    parts = [p for p in parts if p]
    if not parts:
        return None
    return f"data ({dataset.source}): {'; '.join(parts)}; tools/check_dataset.py lists every item"
