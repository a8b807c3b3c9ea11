"""`make mutation`'s summary: mutmut's results per module (killed, survived, no test ran the code, timed
out) and the score, then every survivor with its change, written to build/mutation/survivors.txt."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "mutation"
MUTMUT = str(Path(sys.executable).parent / "mutmut")
# "    worker.drain.agent.xǁDrainAgentǁcheck__mutmut_3: survived" or "    worker.drain.agent.x_main__mutmut_48: killed"
LINE = re.compile(r"^\s*(?P<module>[\w.]+?)\.x(?:_|ǁ)(?P<function>\S+)__mutmut_\d+: (?P<status>.+)$")


def main() -> int:
    listed = subprocess.run(
        [MUTMUT, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for line in listed.splitlines():
        match = LINE.match(line)
        if match is None:
            continue
        counts[match["module"]][match["status"]] += 1
        if match["status"] == "survived":
            survivors.append(line.split(":")[0].strip())
    if not counts:
        print("mutation: mutmut reported no mutants; see build/mutation/run.log", file=sys.stderr)
        return 1
    header = (
        f"{'module':26} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no test':>7} "
        f"{'not run':>7} {'score':>6} {'tested':>6}"
    )
    print(header)
    for module, c in sorted(counts.items()):
        total = sum(c.values())
        caught = c["killed"] + c["timeout"]
        checked = total - c["not checked"]
        tested = caught + c["survived"]
        score = f"{caught / checked:6.0%}" if checked else "     -"
        of_tested = f"{caught / tested:6.0%}" if tested else "     -"
        print(
            f"{module:26} {total:7} {c['killed']:6} {c['timeout']:7} {c['survived']:8} {c['no tests']:7} "
            f"{c['not checked']:7} {score} {of_tested}"
        )
    print(
        "score = (killed + timed out) / mutants run (a mutant of code no selected test runs counts against it); "
        "tested = the same over mutants some test ran; 'not run': the run was stopped before them"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "survivors.txt").open("w") as report:
        for name in survivors:
            shown = subprocess.run([MUTMUT, "show", name], cwd=ROOT, capture_output=True, text=True, check=False)
            change = [row for row in shown.stdout.splitlines() if row[:1] in "+-" and row[:3] not in ("+++", "---")]
            report.write(f"{name}\n" + "\n".join(f"    {row}" for row in change) + "\n")
    print(f"{len(survivors)} survivors, each with its change: {OUT / 'survivors.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
