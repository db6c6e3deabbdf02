import pytest
import torch


@pytest.fixture
def two_threads():
    """Two intra-op threads, so that the threaded CPU ops (RoIAlign/RoIPool chunks, NMS groups) take
    their threaded path whatever the worker's share of the cores (tests/conftest.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
