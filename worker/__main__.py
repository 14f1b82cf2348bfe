"""Entry point: ``python -m worker [options]`` (see worker/main.py)."""

import sys
import traceback

try:
    from worker.main import main
except Exception:  # a broken install is a start-up failure, exit code 40 (PROTOCOL.md section 1)
    sys.stderr.write(f"mediaworker: failed to start: {traceback.format_exc()}")
    sys.exit(40)

sys.exit(main())
