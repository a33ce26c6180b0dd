"""The solver's view of the gradient matrix: its columns, in memory or streamed from a file.

The multiplier solvers (:mod:`kktexplain.kkt._selection`) touch the matrix ``a (M, n)``, one
column per sample, only through a few products: ``a @ x``, ``a.T @ r``, the column norms and
the columns of a working set. :class:`DenseColumns` does them on a tensor, exactly as the
solvers did before. :class:`FileColumns` does them on a :class:`GradientFile`, a raw
file of the per-sample gradients written chunk by chunk, read back in blocks of rows into one
reusable buffer: the memory is one block and a few vectors of length ``n``, whatever ``n``
(the file's pages live in the operating system's cache, not in the process).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["DenseColumns", "FileColumns", "GradientFile", "as_columns"]

# rows per block are chosen so that a block holds about this many entries (16 MiB in float32)
_BLOCK_ENTRIES = 1 << 22


class GradientFile:
    """An ``(N, K)`` matrix in a raw file, written by rows and read in blocks.

    Parameters
    ----------
    folder : str or PathLike
        Where the file is created (a fresh name in it). The folder must exist.
    n_rows, n_cols : int
        ``N`` samples, ``K`` entries per sample.
    dtype : torch.dtype, default=torch.float32
        float32 or float64 (the gradients' own dtype).

    Notes
    -----
    The file is removed by :meth:`close` (or when the object is collected); it holds no header,
    because it never outlives the selection that wrote it.
    """

    def __init__(
        self, folder: str | os.PathLike, n_rows: int, n_cols: int, dtype: torch.dtype = torch.float32
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        fd, name = tempfile.mkstemp(prefix="kktexplain-gradients-", suffix=".bin", dir=folder)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b")
        self.shape = (int(n_rows), int(n_cols))
        self.dtype = dtype
        self._np = np.float32 if dtype == torch.float32 else np.float64
        self._item = 4 if dtype == torch.float32 else 8
        self._file.truncate(self.shape[0] * self.shape[1] * self._item)
        self._buffer: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def block_rows(self) -> int:
        """Rows per block read."""
        return max(1, _BLOCK_ENTRIES // max(self.shape[1], 1))

    def write(self, start: int, rows: Tensor) -> None:
        """Write ``rows (n, K)`` at row ``start``."""
        data = np.ascontiguousarray(rows.detach().cpu().to(self.dtype).numpy())
        if data.ndim != 2 or data.shape[1] != self.shape[1] or start + len(data) > self.shape[0]:
            raise ValueError(f"rows of shape {data.shape} do not fit at row {start} of {self.shape}")
        # pwrite may write less than asked (a disk filling up): the rest is written again, and a
        # full disk then raises; a short write left unchecked would read back as zero rows
        view, offset = memoryview(data).cast("B"), start * self.shape[1] * self._item
        while len(view):
            done = os.pwrite(self._file.fileno(), view, offset)
            if done <= 0:
                raise OSError(errno.ENOSPC, f"no space left on the device writing {self.path}")
            view, offset = view[done:], offset + done

    def blocks(self):
        """Yield ``(start, block)`` over all rows; ``block`` is a view of one reused buffer."""
        n, k = self.shape
        step = self.block_rows
        if self._buffer is None:
            self._buffer = np.empty((min(step, max(n, 1)), k), dtype=self._np)
        for start in range(0, n, step):
            m = min(step, n - start)
            view = self._buffer[:m]
            got = os.preadv(self._file.fileno(), [memoryview(view).cast("B")], start * k * self._item)
            if got != view.nbytes:
                raise OSError(f"short read from {self.path}: {got} of {view.nbytes} bytes")
            yield start, torch.from_numpy(view)

    def per_row(self, test) -> Tensor:
        """A per-row ``test (rows (n, K) -> (n,))``, e.g. ``kkt._rows.rows_all_finite``, block by block.

        Returns
        -------
        Tensor of shape (N,)
        """
        parts = [test(block) for _, block in self.blocks()]
        return torch.cat(parts) if parts else test(torch.empty(0, self.shape[1], dtype=self.dtype))

    def rows(self, index: np.ndarray) -> Tensor:
        """The rows ``index`` (sorted or not) as a new ``(len(index), K)`` tensor."""
        k = self.shape[1]
        out = np.empty((len(index), k), dtype=self._np)
        for j, i in enumerate(np.asarray(index, dtype=np.int64)):
            got = os.preadv(self._file.fileno(), [memoryview(out[j]).cast("B")], int(i) * k * self._item)
            if got != out[j].nbytes:
                raise OSError(f"short read from {self.path}: {got} of {out[j].nbytes} bytes")
        return torch.from_numpy(out)

    def close(self) -> None:
        """Close and remove the file."""
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


class DenseColumns:
    """Columns of a tensor ``a (M, n)``: the products as plain tensor operations."""

    def __init__(self, a: Tensor) -> None:
        self.a = a
        self.shape = tuple(a.shape)
        self.dtype = a.dtype
        self.device = a.device

    def mv(self, x: Tensor) -> Tensor:
        """``a @ x``, shape ``(M,)``."""
        return self.a @ x

    def rmv(self, r: Tensor) -> Tensor:
        """``a.T @ r``, shape ``(n,)``."""
        return self.a.T @ r

    def norms(self) -> Tensor:
        """Column norms, shape ``(n,)``."""
        return self.a.norm(dim=0)

    def take(self, index) -> Tensor:
        """``a[:, index]``, shape ``(M, len(index))``."""
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        return self.a[:, index]

    def column_sum(self) -> Tensor:
        """``a.sum(1)``, shape ``(M,)``."""
        return self.a.sum(1)


class FileColumns:
    """Columns ``used`` of a :class:`GradientFile`'s rows, as the solvers' ``a (K, n)``.

    Products are accumulated block by block in the file's dtype; ``used`` (sorted row
    numbers) leaves out samples whose gradient is zero.
    """

    def __init__(self, store: GradientFile, used: np.ndarray) -> None:
        self.store = store
        self.used = np.asarray(used, dtype=np.int64)
        self.shape = (store.shape[1], len(self.used))
        self.dtype = store.dtype
        self.device = torch.device("cpu")
        self._all = len(self.used) == store.shape[0]
        # position of each stored row among the columns (-1: not used)
        self._pos = None if self._all else np.full(store.shape[0], -1, dtype=np.int64)
        if self._pos is not None:
            self._pos[self.used] = np.arange(len(self.used))

    def _blocks(self):
        """``(columns, rows)``: the used rows of each block and where they sit among the columns."""
        for start, block in self.store.blocks():
            if self._all:
                yield slice(start, start + len(block)), block
                continue
            pos = self._pos[start : start + len(block)]
            keep = np.flatnonzero(pos >= 0)
            if keep.size:
                yield torch.from_numpy(pos[keep]), block[torch.from_numpy(keep)]

    def mv(self, x: Tensor) -> Tensor:
        out = torch.zeros(self.shape[0], dtype=x.dtype)
        for cols, rows in self._blocks():
            out += rows.T.to(x.dtype) @ x[cols]
        return out

    def rmv(self, r: Tensor) -> Tensor:
        out = torch.empty(self.shape[1], dtype=r.dtype)
        for cols, rows in self._blocks():
            out[cols] = rows.to(r.dtype) @ r
        return out

    def norms(self) -> Tensor:
        out = torch.empty(self.shape[1], dtype=self.dtype)
        for cols, rows in self._blocks():
            out[cols] = rows.norm(dim=1)
        return out

    def take(self, index) -> Tensor:
        index = np.asarray(index, dtype=np.int64)
        return self.store.rows(self.used[index]).T

    def column_sum(self) -> Tensor:
        out = torch.zeros(self.shape[0], dtype=torch.float64)
        for _, rows in self._blocks():
            out += rows.double().sum(0)
        return out.to(self.dtype)


def as_columns(a) -> DenseColumns | FileColumns:
    """``a`` itself if it is already a columns operator, else :class:`DenseColumns` of the tensor."""
    return a if isinstance(a, DenseColumns | FileColumns) else DenseColumns(a)
