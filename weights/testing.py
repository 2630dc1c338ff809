"""The tiny runner of the weights/ test scripts (test_train.py, test_lesions.py): every ``test_*`` function of a
module's namespace, or those whose name contains one of the command-line arguments; exit status 1 if any failed."""

from __future__ import annotations

import time
import traceback
from typing import Dict, Sequence


def run_tests(namespace: Dict[str, object], only: Sequence[str]) -> int:
    tests = [(k, v) for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for name, fn in tests:
        if only and not any(o in name for o in only):
            continue
        t = time.time()
        try:
            fn()
            passed += 1
            print(f"ok   {name} ({time.time() - t:.1f} s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
