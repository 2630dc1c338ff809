"""The pre-registered selection of the eighth issue-36 experiment (weights/README.md "An eighth experiment"): rule.py
on each variant's outputs (validation only); the candidate is a variant that meets the rule, and of two that do, the
one with more clean real validation scans called "no infection" under 1 %, then more of the 90 synthetic validation
studies right, then the larger 2-D weight (variant a).  choose.py [DIR_A DIR_B]; default: a/ and b/ beside it."""
import os, re, subprocess, sys
HERE = os.path.dirname(os.path.abspath(__file__))
dirs = sys.argv[1:3] if len(sys.argv) > 2 else [os.path.join(HERE, 'a'), os.path.join(HERE, 'b')]
scores = []
for name, d in zip('ab', dirs):
    out = subprocess.run([sys.executable, os.path.join(HERE, 'rule.py'), d], check=True, capture_output=True,
                         text=True).stdout
    print(f"== variant {name} ({d})\n{out}")
    m = re.search(r"SCORE met=(\d) clean_no_infection=(\d+) val90=(\d+)", out)
    scores.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), name))
best = max(scores, key=lambda s: (s[0], s[1], s[2], s[3] == 'a'))
print("CANDIDATE", f"variant {best[3]}" if best[0] else "none: no variant meets the rule")
