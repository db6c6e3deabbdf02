"""Where and when a benchmark ran: the numbers mean little without it."""
from __future__ import annotations

import datetime
import os

import torch

from detseg.utils.cpu import cpu_model, describe_cpu


def machine_info() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cuda = torch.cuda.is_available()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_speed": describe_cpu(),  # model, SIMD flags, torch's kernel level, any ISA limit
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "load_average": [round(x, 2) for x in load],
    }
