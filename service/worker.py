"""`python -m service.worker workers ...`: Dramatiq's own CLI (same arguments as `dramatiq`), with every log
line JSON, the master process's included.

The `dramatiq` command configures logging in its master with `logging.basicConfig` and a text format, and
the master never imports the `workers` package (which sets up JSON logging in each worker process). Here
logging is set up first; `basicConfig` then leaves it alone in the master and in the worker processes it
forks, until the `workers` package's own set-up takes over in those.
"""

from __future__ import annotations

import os
import sys

from dramatiq import cli

from service.logs import setup_logging


def main() -> int:
    setup_logging(os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO")
    return cli.main()


if __name__ == "__main__":
    sys.argv[0] = "dramatiq"  # its usage and error messages name the command people know
    sys.exit(main())
