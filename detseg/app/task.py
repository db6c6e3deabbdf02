"""The task a model does and the task its data serves, and the one rule that ties them.

Tasks: "detection", "semantic", "classification" (``data.task``). A model's task is its class's ``task``
attribute ("detection" without one); before a model is built, its ``model.arch`` says it. The rule
(checked before training and before evaluating): a classifier goes with classification data and only
with it; a semantic model needs semantic data. Detectors may read semantic data (its boxes are there).
Whether ``data.format`` suits ``data.task`` is the data layer's check (detseg.data.build).
"""
from __future__ import annotations

# the architectures whose models are not detectors (their meta-architectures' ``task``)
_ARCH_TASKS = {"classifier": "classification", "fcn": "semantic", "unet": "semantic"}


def arch_task(arch: str) -> str:
    return _ARCH_TASKS.get(arch, "detection")


def model_task(model) -> str:
    return getattr(model, "task", "detection")


def dataset_task(dataset) -> str:
    """What a built dataset serves: image labels (``label_of``), semantic maps (``with_sem_seg``) or boxes."""
    if callable(getattr(dataset, "label_of", None)):
        return "classification"
    return "semantic" if getattr(dataset, "with_sem_seg", False) else "detection"


def require_matching_task(task: str, data_task: str, arch: str) -> None:
    """One clear line naming the keys when a model of ``task`` (``model.arch`` ``arch``) cannot use the data."""
    if (task == "classification") != (data_task == "classification"):
        raise ValueError(f"model.arch 'classifier' goes with data.task 'classification' and only with it; "
                         f"got arch '{arch}', task '{data_task}'")
    if task == "semantic" and data_task != "semantic":
        raise ValueError(f"model.arch '{arch}' is a semantic model: it is trained and evaluated on semantic data, "
                         f"set data.task=semantic (got '{data_task}')")
