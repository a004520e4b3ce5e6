"""A replica of the budget race in ``test_budgets_shared.py``: threads calling one budgeted API until refused.

Run as ``python budget_race.py THREADS``, configured by the environment (``LLM_*``, the
key variable) as a service is; prints ``{"answered": n, "refused": n}`` as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter

from otel_llm import BudgetExceededError, get_llm_client_smart

API = "keywords"
MESSAGES = [{"role": "user", "content": "Extract the keywords."}]
MAX_TOKENS = 32


def main() -> None:
    threads = int(sys.argv[1])
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker() -> None:
        client = get_llm_client_smart(API)
        start.wait()
        while True:
            try:
                client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
            except BudgetExceededError:
                with lock:
                    outcomes["refused"] += 1
                return
            with lock:
                outcomes["answered"] += 1

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    print(json.dumps(dict(outcomes)))


if __name__ == "__main__":
    main()
