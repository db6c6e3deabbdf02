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
    """

    def __init__(self, source: str):
        self.source = source  # the annotation file or dataset root, named in every message
        self.messages: list[str] = []
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        self.messages.append(f"{kind}: {message}")

    def __bool__(self) -> bool:
        return bool(self.messages)

    def finish(self, on_bad_sample: str) -> dict[str, int]:
        """Raise DatasetError under "error"; under "skip" warn once (one line) and return counts per kind."""
        if not self.messages:
            return {}
        if on_bad_sample == "error":
            raise DatasetError(self._describe())
        summary = ", ".join(f"{kind}={n}" for kind, n in sorted(self.counts.items()))
        text = f"{self.source}: skipped bad samples ({summary}); first: {self.messages[0]}"
        warnings.warn(text, stacklevel=3)
        return dict(self.counts)

    def _describe(self) -> str:
        lines = [f"{self.source}: {len(self.messages)} problem(s) found"]
        lines += [f"  - {m}" for m in self.messages[:MAX_LISTED_PROBLEMS]]
        if len(self.messages) > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {len(self.messages) - MAX_LISTED_PROBLEMS} more")
        lines.append("Fix the file, or pass on_bad_sample='skip' to drop these items.")
        return "\n".join(lines)
