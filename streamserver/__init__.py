"""streamserver: real-time redaction of personal data from live speech."""

import os as _os

# numpy's OpenBLAS starts a pool of spinning threads at import (one per core),
# outside the model pool's control and at full priority: our matrices are
# small, and those threads would compete with the event loop and the models.
# Set before numpy is first imported; an explicit setting still wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
