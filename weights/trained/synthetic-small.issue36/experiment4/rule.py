"""The pre-registered rule of the fourth issue-36 experiment (weights/README.md "A fourth experiment")."""
import json, sys
R = sys.argv[1] if len(sys.argv) > 1 else '.'
REAL = ('qin-lsc-0009', 'qin-lsc-0064', 'lidc-idri-0001', 'rider-1225316081', 'ricord1a-000082')
cal = json.load(open(f'{R}/calibration.json'))
va = cal['validation_answers']
syn = {k: v for k, v in va.items() if k.startswith('syn')}
n1 = sum(v['label'] == v['argmax'] for v in syn.values())
ok1 = n1 >= 77
print(f"(1) val90: {n1} of {len(syn)} (need 77; the file 79)")
vr = json.load(open(f'{R}/val-real.json'))['studies']
copies = [s for s in vr if s['study'] not in REAL]
right = [s for s in copies if s.get('patient_pred') == s['label'] and s.get('supported')]
need = -(-2 * len(copies) // 3)
ok2 = len(right) >= need
print(f"(2) real validation copies right and supported: {len(right)} of {len(copies)} (need {need})")
ok3 = True
clean_right = 0
for s in [s for s in vr if s['study'] in REAL]:
    pred = s.get('patient_pred')
    if s['label'] == 'COVID-19':
        ok = pred in ('COVID-19', 'no class')
    else:
        ok = pred in ('no infection', 'no class')
        clean_right += pred == 'no infection'
    ok3 &= ok
    print(f"(3) {s['study']}: {s['label']} -> {pred} p={max(s.get('patient_probs') or [0]):.3f} ood={s.get('ood_score')} -> {'ok' if ok else 'NOT ok'}")
ok3b = clean_right >= 2
print(f"(3b) clean real validation scans called no infection: {clean_right} of 4 (need 2)")
print("RULE", "MET" if ok1 and ok2 and ok3 and ok3b else "NOT MET")
