"""Benchmarks that print figures (accuracy, throughput, scale); run as ``python -m bench.NAME`` from the repository.

One BLAS thread, as in the analysis workers (:mod:`tasks.features.workers`): CPU times then measure the work,
not idle BLAS threads spinning on a busy machine (they inflated them 3-4x here). Set here, before numpy is imported.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
