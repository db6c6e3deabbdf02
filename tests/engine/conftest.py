import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The engine tests run tiny tensors: OpenMP threads only add contention on a busy
    machine (a 4x8 batch norm went from <1 ms to 40 ms with 2 threads under load)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
