"""One COCOeval run split by category over forked processes and put back together.

A category's precision and recall depend on its own ground truth and detections only (COCOeval matches
per image and category and accumulates per category), so evaluating disjoint sets of categories apart
and joining ``eval["precision" | "recall" | "scores"]`` along the category axis gives the arrays of one
run, and with them the same 12 stats bit for bit. The parent evaluates the first set itself; the others
run in processes forked after the ground truth is loaded, so it is shared rather than pickled, and only
the arrays come back. Without fork (not Linux), or for few results, one process does it all.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable

import numpy as np

# A fork and the arrays' way back cost some 20-50 ms: below this many results per process it does not pay.
MIN_RESULTS_PER_PROCESS = 2000
MAX_PROCESSES = 8
# axis of the category in each of COCOeval.eval's arrays ([T, R, K, A, M] and [T, K, A, M])
CATEGORY_AXIS = {"precision": 2, "scores": 2, "recall": 1}


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def process_count(requested: int | None, num_results: int, num_categories: int) -> int:
    """``requested`` processes, or (None) as many as the CPUs and the amount of work make worth it."""
    if sys.platform != "linux":  # fork is Linux's default and safe there; macOS and Windows spawn
        return 1
    if requested is None:
        requested = min(available_cpus(), MAX_PROCESSES, num_results // MIN_RESULTS_PER_PROCESS)
    return max(1, min(requested, num_categories))


def split_categories(cat_ids: list[int], results: list[dict], parts: int) -> list[list[int]]:
    """``cat_ids`` in at most ``parts`` sorted groups of similar result counts (each category, largest
    first, joins the lightest group so far)."""
    counts = Counter(r["category_id"] for r in results)
    groups: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for cat_id in sorted(cat_ids, key=lambda c: -counts[c]):
        lightest = loads.index(min(loads))
        groups[lightest].append(cat_id)
        loads[lightest] += counts[cat_id]
    return [sorted(g) for g in groups if g]


def evaluate_split(evaluate: Callable[[list[int]], object], groups: list[list[int]]):
    """``evaluate(cat_ids)`` (a COCOeval after evaluate() and accumulate()) of every group, the first in
    this process; returns the first group's COCOeval holding all groups' arrays and category ids."""
    if len(groups) == 1:
        return evaluate(groups[0])
    context = multiprocessing.get_context("fork")
    children = []
    for group in groups[1:]:
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_evaluate_in_child, args=(evaluate, group, sender), daemon=True)
        with warnings.catch_warnings():
            # Python >= 3.12 warns about forking a threaded process (torch's pools): the child only runs
            # pycocotools or faster-coco-eval and numpy, and takes none of those threads' locks.
            warnings.simplefilter("ignore", DeprecationWarning)
            child.start()
        sender.close()
        children.append((child, receiver))
    coco_eval = evaluate(groups[0])
    parts = [{key: coco_eval.eval[key] for key in CATEGORY_AXIS}]
    for (child, receiver), group in zip(children, groups[1:]):
        parts.append(_receive(child, receiver, group))
    _join(coco_eval, groups, parts)
    return coco_eval


def _evaluate_in_child(evaluate, group: list[int], sender) -> None:
    try:
        coco_eval = evaluate(group)
        sender.send({key: coco_eval.eval[key] for key in CATEGORY_AXIS})
    except BaseException as error:  # the parent reports it; a traceback here would be lost
        sender.send(f"{type(error).__name__}: {error}")
    finally:
        sender.close()


def _receive(child, receiver, group: list[int]) -> dict:
    try:
        answer = receiver.recv()
    except EOFError:
        child.join()
        answer = f"the process ended with exit code {child.exitcode} before answering"
    else:  # a process with the evaluation's heap takes 20-50 ms to exit: reap it without waiting
        threading.Thread(target=child.join, daemon=True).start()
    if isinstance(answer, str):
        raise RuntimeError(f"COCO evaluation of categories {group} failed: {answer}")
    return answer


def _join(coco_eval, groups: list[list[int]], parts: list[dict]) -> None:
    """The groups' arrays side by side, reordered into sorted category ids, into ``coco_eval``."""
    joined_ids = [c for group in groups for c in group]
    order = np.argsort(joined_ids, kind="stable")
    for key, axis in CATEGORY_AXIS.items():
        joined = np.concatenate([part[key] for part in parts], axis=axis)
        coco_eval.eval[key] = np.take(joined, order, axis=axis)
    coco_eval.params.catIds = sorted(joined_ids)
    if "counts" in coco_eval.eval:
        coco_eval.eval["counts"] = list(coco_eval.eval["precision"].shape)
