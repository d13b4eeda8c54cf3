"""``python run.py`` with Telegram's limit per bot lowered, for the multi-process tests: started as
``python tests/run_limited.py SENDS_A_SECOND [run.py's flags]``.

At Telegram's 30 sends a second, a limit kept by each process alone and one kept by both
together are a fraction of a second apart; at a few sends a second they are seconds apart.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

RUN_PY = Path(__file__).resolve().parent.parent / "run.py"
# Imports as ``python run.py`` finds them: from run.py's folder, not from tests/ (tests/providers).
sys.path[0] = str(RUN_PY.parent)

from providers.base import RateLimits
from providers.telegram import TelegramProvider

if __name__ == "__main__":
    per_second = float(sys.argv.pop(1))
    TelegramProvider.limits = RateLimits(per_chat_interval=TelegramProvider.limits.per_chat_interval,
                                         per_second=per_second)
    sys.argv[0] = str(RUN_PY)
    runpy.run_path(str(RUN_PY), run_name="__main__")
