"""tests/torch_threads.py: one thread inside, the caller's count back afterwards, also after an error."""

from __future__ import annotations

import pytest
import torch

from tests.torch_threads import one_torch_thread


def test_one_thread_inside_and_the_count_back_even_after_an_error() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError), one_torch_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
