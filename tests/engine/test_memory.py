"""Keeping freed blocks: glibc's malloc takes the setting; the environment can refuse it."""

import platform

import pytest
import torch

from mesimp.engine.memory import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_setting_and_large_tensors_still_work():
    assert keep_freed_memory() is True
    for _ in range(3):  # freed and allocated again: reused from the heap, contents as written
        big = torch.full((64, 2**18), 3.0)  # 64 MiB, above glibc's default mmap threshold
        assert float(big.sum()) == 3.0 * big.numel()
        del big


def test_the_environment_turns_it_off(monkeypatch):
    monkeypatch.setenv("MESIMP_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
