"""One worker pool for the corpus tools, so `prepare` and `photos` share their progress and error handling."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def run_jobs(fn: Callable, jobs: Iterable, workers: int, chunksize: int, progress=None) -> list:
    """`fn` over `jobs` in order, in `workers` spawned processes (1: in this one); `progress(1)` per job."""
    jobs = list(jobs)
    results = []
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for res in pool.imap(fn, jobs, chunksize=chunksize):
                results.append(res)
                if progress:
                    progress(1)
    else:
        for job in jobs:
            results.append(fn(job))
            if progress:
                progress(1)
    return results
