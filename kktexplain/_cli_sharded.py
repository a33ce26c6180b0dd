"""``kktexplain select --nproc N``: selection in N local processes (gloo, file rendezvous)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["select_sharded"]


def select_sharded(args: argparse.Namespace, nproc: int) -> int:
    """Selection in ``nproc`` local processes started by :func:`torch.multiprocessing.spawn`.

    The processes meet through a file in a temporary folder (``file://`` rendezvous, no port)
    and form a gloo group; :func:`kktexplain._gather.gather_gradients` shards the rows over
    it. Every process solves the same gathered problem; rank 0 writes ``--out``. gloo also
    serves a CUDA ``--device``: the gradients are gathered on the CPU. A worker's input error
    or NaN comes back as its message (:func:`_select_worker`); an interrupt stops the workers.
    """
    import tempfile

    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    from . import DSVResult
    from ._io import check_writable

    if not dist.is_available() or not dist.is_gloo_available():
        raise ValueError("--nproc > 1 needs torch.distributed with the gloo backend, not in this torch")
    if args.offload_dir is not None:  # before the processes start, not in each of them
        raise ValueError("--offload-dir works in one process: drop it or pass --nproc 1")
    out = check_writable(args.out, "--out")
    threads = max(1, torch.get_num_threads() // nproc)
    with tempfile.TemporaryDirectory(prefix="kktexplain-select-") as tmp:
        workers = mp.spawn(_select_worker, args=(nproc, tmp, threads, args), nprocs=nproc, join=False)
        try:
            while not workers.join(grace_period=10):  # peers of a failed worker end on their own
                pass
        except ProcessException as e:
            for kind, error in _WORKER_ERRORS.items():  # the message, not the traceback
                found = sorted(Path(tmp).glob(f"{kind}.*"))
                if found:
                    raise error(found[0].read_text(encoding="utf-8")) from None
            raise RuntimeError(f"a selection process failed: {e}") from e
        except BaseException:  # Ctrl-C or SIGTERM here: the workers would run on, and be waited for
            for process in workers.processes:
                if process.is_alive():
                    process.terminate()
            for process in workers.processes:
                process.join()
            raise
    from ._cli_verbs import _summary  # the verbs import this module when --nproc > 1

    return _summary(DSVResult.load(out), out)


# what a worker of select_sharded writes to "<kind>.<rank>" in the shared folder, and the
# exception the main process raises with that message (an input error; a NaN or inf)
_WORKER_ERRORS = {"error": ValueError, "nonfinite": FloatingPointError}


def _select_worker(rank: int, world: int, tmp: str, threads: int, args: argparse.Namespace) -> None:
    """One process of :func:`select_sharded` (module level, for :func:`torch.multiprocessing.spawn`)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        from ._cli_verbs import _select_result

        result = _select_result(args, progress=rank == 0 and not args.no_progress)
        if rank == 0:
            result.save(args.out)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as e:
        kind = "nonfinite" if isinstance(e, FloatingPointError) else "error"
        Path(tmp, f"{kind}.{rank}").write_text(str(e), encoding="utf-8")
        raise
    finally:
        dist.destroy_process_group()
