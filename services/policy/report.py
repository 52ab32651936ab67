"""``permitbus policy test FILE…``: run situation files, print pass or fail per situation.

Each failure is printed as a diff of the decisions expected and those made, step by step, people
by their names in the file and any other ID number masked (``320111********123X``). Exit 0 when
every situation passes, 1 when one fails or a file cannot be run (the file and the situation
named). ``--coverage`` lists the conditions and reason codes of the rules that no situation of
these files covers (``services/policy/run.py``, ``Coverage``).
"""

from __future__ import annotations

import sys

from services.policy.run import Coverage, differences, run
from services.policy.situations import SituationError, load
from services.rules import params


def main(files: list[str], settings, coverage: bool = False, out=None) -> int:
    out = out or sys.stdout
    try:
        params.use(settings.params_dir)
    except params.ParameterError as exc:
        print(f"permitbus policy test: {exc}", file=out)
        return 1
    cover = Coverage() if coverage else None
    passed = failed = 0
    for path in files:
        try:
            situations = load(path)
        except SituationError as exc:
            print(f"ERROR {exc}", file=out)
            failed += 1
            continue
        print(path, file=out)
        for s in situations:
            try:
                diff = differences(s, run(s, cover))
            except (ValueError, params.ParameterError) as exc:  # a situation's own "what if" parameters
                diff = [str(exc)]
            if diff:
                failed += 1
                print(f"  FAIL  {s.name}", file=out)
                for line in diff:
                    print(f"        {line}", file=out)
            else:
                passed += 1
                print(f"  pass  {s.name}", file=out)
    print(f"{passed + failed} situations: {passed} passed, {failed} failed", file=out)
    if cover is not None:
        missing = cover.missing()
        print("coverage: every condition and reason code of every rule covered" if not missing else
              f"coverage: {len(missing)} not covered:", file=out)
        for line in missing:
            print(f"  {line}", file=out)
    return 1 if failed else 0
