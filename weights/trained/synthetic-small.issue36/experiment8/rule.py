"""The pre-registered rule of the eighth issue-36 experiment (weights/README.md "An eighth experiment"): the seventh's
parts (1)-(3b), and part 4 on the UCSD set's validation half: its AUC at least 0.02 above the committed file's.
Run on one variant's outputs: rule.py DIR [FILE2D]; the selection between the two variants is choose.py."""
import json, os, sys
import numpy as np
HERE = os.path.dirname(os.path.abspath(__file__))
R = sys.argv[1] if len(sys.argv) > 1 else HERE  # the run's outputs (calibration.json, val-real.json, slices2d.json)
# the committed file's 2-D answers (those the third experiment's rule compared against)
FILE2D = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, '..', 'experiment3', 'slices2d-file.json')
sys.path.insert(0, os.path.join(HERE, '..', '..', '..'))
from slices2d import auc  # noqa: E402
REAL = ('qin-lsc-0009', 'qin-lsc-0064', 'lidc-idri-0001', 'rider-1225316081', 'lidc-idri-0003', 'ricord1a-000082')
cal = json.load(open(f'{R}/calibration.json'))
va = cal['validation_answers']
syn = {k: v for k, v in va.items() if k.startswith('syn')}
n1 = sum(v['label'] == v['argmax'] for v in syn.values())
ok1 = n1 >= 77
print(f"(1) val90: {n1} of {len(syn)} (need 77; the file 79)")
vr = json.load(open(f'{R}/val-real.json'))['studies']
copies = [s for s in vr if s['study'] not in REAL]


def gated(s):
    """Copies no classifier can get right: the post-processing (stage 1, untouched) finds no chest CT or cut lungs."""
    return s.get('patient_pred') == 'not a chest CT' or (s.get('chest') or {}).get('lungs_whole') is False


counted = [s for s in copies if not gated(s)]
right = [s for s in counted if s.get('patient_pred') == s['label'] and s.get('supported')]
need = -(-2 * len(counted) // 3)
ok2 = len(right) >= need
print(f"(2) real validation copies right and supported: {len(right)} of {len(counted)} counted (need {need}); "
      f"left out as gated by the post-processing: {', '.join(s['study'] for s in copies if gated(s)) or 'none'}")
for s in copies:
    print(f"    {s['study']:40s} {s['label']:13s} -> {s.get('patient_pred')} p={max(s.get('patient_probs') or [0]):.3f} "
          f"ood={s.get('ood_score')} sup={s.get('supported')} inv={s.get('involvement_pct')}{' (left out)' if gated(s) else ''}")
ok3 = True
clean_right = 0
for s in [s for s in vr if s['study'] in REAL]:
    pred = s.get('patient_pred') if s.get('supported') else 'no class'
    if s['label'] == 'COVID-19':
        ok = pred in ('COVID-19', 'no class')
    else:
        ok = pred in ('no infection', 'no class') and (pred == 'no class' or (s.get('involvement_pct') or 0) < 1.0)
        clean_right += ok and pred == 'no infection'
    ok3 &= ok
    print(f"(3) {s['study']}: {s['label']} -> {s.get('patient_pred')} supported={s.get('supported')} "
          f"p={max(s.get('patient_probs') or [0]):.3f} ood={s.get('ood_score')} involvement {s.get('involvement_pct')} -> {'ok' if ok else 'NOT ok'}")
ok3b = clean_right >= 3
print(f"(3b) clean real validation scans called no infection: {clean_right} of 5 (need 3)")


def half(path, parity):
    d = [s for s in json.load(open(path))['per_slice'] if s['set'] == 'ucsd']
    count, idx = {}, []
    for i, s in enumerate(d):
        c = count.get(s['set'], 0)
        if c % 2 == parity:
            idx.append(i)
        count[s['set']] = c + 1
    y = np.array([d[i]['label'] for i in idx]); p = np.array([d[i]['probs'] for i in idx])
    return float(((p.argmax(1) == 0).astype(int) == y).mean()), auc(p[:, 0], y), len(idx)


fa, fu, n = half(FILE2D, 1); ca, cu, _ = half(f'{R}/slices2d.json', 1)
ok4 = cu >= fu + 0.02  # the AUC alone, above the file's; the accuracy is printed
print(f"(4) UCSD 2-D validation half ({n} slices): candidate {ca:.3f}, AUC {cu:.3f}; file {fa:.3f}, AUC {fu:.3f} -> {'ok' if ok4 else 'NOT ok'}")
ta, tu, m = half(f'{R}/slices2d.json', 0); fta, ftu, _ = half(FILE2D, 0)
print(f"    UCSD 2-D test half ({m} slices, held out): candidate {ta:.3f}, AUC {tu:.3f}; file {fta:.3f}, AUC {ftu:.3f}")
met = ok1 and ok2 and ok3 and ok3b and ok4
print("RULE", "MET" if met else "NOT MET")
print(f"SCORE met={int(met)} clean_no_infection={clean_right} val90={n1}")
