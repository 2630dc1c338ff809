#!/usr/bin/env python3
"""The real CT volumes: fetch step, conversion to the dataset layout, reference lung masks, contact sheets.

Nothing here is downloaded by the script: it reads copies of public GitHub repositories, each at a stated commit,
from one folder (``--clones``), so that a run is reproducible from the commits alone.  Each source of ``SOURCES``
is read from ``<clones>/<repo-name>@<short commit>/<path>`` (7 hex digits; so two commits of one repository can sit
side by side); ``<clones>/<repo-name>/<path>`` is read when that is absent, as the first version of this script had
it (then the commit is not checked).  Two ways to fill the folder:

    # with network: plain clones, each checked out at its commit (the commands are printed, not run)
    /usr/bin/python3 weights/real_data.py clone-commands --clones clones > clone.sh && sh clone.sh
    # from bare mirrors (``<mirrors>/<owner>+<name>/...``): git archive <commit> -- <path> | tar -x, checking the
    # commit and the object id of the path, and that no file of it is missing from the mirror
    /usr/bin/python3 weights/real_data.py from-mirrors --mirrors MIRRORS --clones clones

Then (``prepare --from-mirrors DIR`` does both steps in one)

    /usr/bin/python3 weights/real_data.py prepare --clones clones --out data/real
    /usr/bin/python3 weights/real_data.py sheets --data data/real --out docs/img/real-ct

Without ``--only`` that is all 30 real volumes the project has used, most of them held out from training in
weights/README.md: keep those out of ``train.py --real`` folders (``--only itkelastix-00 dashvtk-ct-lung
totalseg-abdomen-pelvis totalseg-upper-abdomen dcmqa-head`` gives the first data/real of issue 35).

``prepare`` takes each source's files (all of its folder, or the selection the source names: a glob, a list of
names, or a DICOM attribute such as SeriesInstanceUID or AcquisitionNumber that every file must have), checks their
number, converts the DICOM series with dcm2niix (Debian's; it decodes JPEG 2000 and JPEG Lossless and corrects gantry
tilt), brings every volume to the orientation ('L', 'P', 'S') of weights/synth.py (its own affine kept, reoriented),
and writes the dataset layout of docs/training.md:

    <out>/chest/labels.csv                  study,label (each source's label: 'COVID-19' for the RICORD scans,
                                            'no infection' for the others, a reading of cancer collections' images)
    <out>/chest/<study>/scan.nii.gz         int16 HU
    <out>/chest/<study>/lung.nii.gz         uint8 reference lung mask (weights/lung_reference.py)
    <out>/chest/<study>/body.nii.gz         uint8 body mask of the same pipeline (step 1)
    <out>/other/labels.csv                  the same for the scans that are not a whole chest
    <out>/other/<study>/scan.nii.gz         CT that is not a chest (abdomen-pelvis, upper abdomen, head, lower chest)
    <out>/SOURCES.md                        where each volume comes from, its licence and citation

The reference masks are reviewed on the contact sheets that ``sheets`` draws (axial slices from apex to base with
the mask's outline, and a coronal reformat); ``--pred DIR`` adds a model's masks (``DIR/<study>.lung.nii.gz``, on
the scan's grid) in a second colour.  Only the masks of itkelastix-00 and dashvtk-ct-lung were reviewed
(weights/README.md); the others are automatic.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402


class Source(NamedTuple):
    """One real CT volume: where its files are, which of them, what it is."""
    study: str
    kind: str            # 'chest' or 'other' (the dataset folder)
    label: str           # its labels.csv label
    repo: str            # GitHub owner/name
    commit: str          # the full commit hash
    path: str            # inside the repository ('' = the top level): a DICOM folder or a NIfTI file
    tree: str            # the git object id of <commit>:<path> (first 12 hex digits), checked by from-mirrors
    n_files: int         # the number of files the series is made of (after the selection)
    desc: str
    licence: str         # licence and citation
    files: Union[None, str, Tuple[str, ...]] = None  # a glob of names in the folder (not recursive), or the names
    match: Optional[Tuple[str, str]] = None          # (DICOM keyword, value) every selected file must have
    ref: Optional[str] = None  # a ref to fetch for a commit on no branch (a pull request's), which git clone leaves out

    @property
    def name(self) -> str:
        return self.repo.split("/")[1]

    @property
    def short(self) -> str:
        return self.commit[:7]

    @property
    def folder(self) -> str:
        """The clone folder's name under --clones."""
        return f"{self.name}@{self.short}"


def _names(fmt: str, first: int, last: int) -> Tuple[str, ...]:
    return tuple(fmt % i for i in range(first, last + 1))


_TCIA = ("Clark K et al. The Cancer Imaging Archive (TCIA): Maintaining and Operating a Public Information Repository. "
         "J Digit Imaging 26(6):1045-1057, 2013, https://doi.org/10.1007/s10278-013-9622-7")


def _tcia(collection: str, lic: str, carrier: str, note: str = "") -> str:
    return (f"TCIA {collection} ({lic}; cite the collection's data citation on TCIA and {_TCIA}); via {carrier}"
            f"{note}")


_NOLIC = " (no LICENSE file in the carrier; the licence is TCIA's, not re-verified)"
_QIN = ("amarogs/lung-cancer-image-processing", "7d1d5874184c51682e327f82bef5bebe6d44d282")
_QIN_LIC = _tcia("QIN LUNG CT", "CC BY 3.0", "amarogs/lung-cancer-image-processing", _NOLIC)


def _qin(study: str, path: str, tree: str, n: int, desc: str) -> Source:
    return Source(study, "chest", "no infection", _QIN[0], _QIN[1], "QIN LUNG CT/" + path, tree, n, desc, _QIN_LIC,
                  "*.dcm")


SOURCES: List[Source] = [
    # --- issue 35: the first five
    Source("itkelastix-00", "chest", "no infection", "InsightSoftwareConsortium/ITKElastix",
           "787db6d117d5c3de231935163b713f3e0a5c7433", "examples/data/00", "f03612f48f8b", 141,
           "thorax, 141 axial DICOM slices of 512 x 512, 0.98 mm pixels, 2 mm apart",
           "ITKElastix example data, Apache License 2.0 (InsightSoftwareConsortium/ITKElastix)"),
    Source("dashvtk-ct-lung", "chest", "no infection", "plotly/dash-vtk",
           "32195915653a7fd9930faec6a029fe6636cc64c2", "demos/data/ct_lung", "cdc88342de4e", 30,
           "thorax, 30 axial DICOM slices of 512 x 512, 0.65 mm pixels, 8 mm apart; lung cancer (right hilar tumour)",
           "TCIA Lung-PET-CT-Dx (CC BY 4.0): Li, P., Wang, S., Li, T., Lu, J., HuangFu, Y., & Wang, D. (2020). A "
           "Large-Scale CT and PET/CT Dataset for Lung Cancer Diagnosis. The Cancer Imaging Archive. "
           "https://doi.org/10.7937/TCIA.2020.NNC2-0461; via plotly/dash-vtk (MIT)"),
    Source("totalseg-abdomen-pelvis", "other", "no infection", "wasserth/TotalSegmentator",
           "0e65a448d557382b1e925276212b3bec7f5aff83", "tests/reference_files/example_ct.nii.gz", "619b47b19e8c", 1,
           "abdomen and pelvis, 122 x 101 x 112 at 3 mm (NIfTI)",
           "TotalSegmentator test data, Apache License 2.0 (wasserth/TotalSegmentator)"),
    Source("totalseg-upper-abdomen", "other", "no infection", "wasserth/TotalSegmentator",
           "0e65a448d557382b1e925276212b3bec7f5aff83", "tests/reference_files/example_ct_dicom", "862a9a8fa90f", 20,
           "upper abdomen, 20 axial DICOM slices of 512 x 512 (JPEG 2000), 2 mm apart",
           "TotalSegmentator test data, Apache License 2.0 (wasserth/TotalSegmentator)"),
    Source("dcmqa-head", "other", "no infection", "neurolabusc/dcm_qa_ct",
           "d03e30e4c5c8ad07bf16422b96efc3e91e233dc5", "In/GE", "ee8f35d328a3", 28,
           "head, 28 axial DICOM slices of 512 x 512 with 18.5 degree gantry tilt and uneven spacing (dcm2niix "
           "resamples it to 2.6 mm, tilt corrected)",
           "dcm_qa_ct (BSD 2-Clause, Chris Rorden); the GE scan courtesy of Aliza Medical Imaging"),
    # --- weights/README.md "More real chest CT, held out"
    Source("dlwpt-cptac-lscc", "chest", "no infection", "deep-learning-with-pytorch/dlwpt-code",
           "d6c0210143daa133bbdeddaffc8993b1e17b5174", "data/p1ch4/volumetric-dicom/2-LUNG 3.0  B70f-04083",
           "68d4840a365d", 99,
           "thorax, 512 x 512 x 99, 0.56 / 3.0 mm; lung squamous cell carcinoma (spiculated right-lung mass), "
           "contrast, sharp kernel",
           _tcia("CPTAC-LSCC", "CC BY 3.0", "deep-learning-with-pytorch/dlwpt-code", _NOLIC)),
    Source("ricord1a-001012", "chest", "COVID-19", "aryamanwastaken/covid_chestCT_image_analysis",
           "0486ba12772176f0ec2c032a5d1bd4a6ee5c5276", "dicom", "9a856a0f3924", 248,
           "thorax, 512 x 512 x 248, 0.70 / 1.25 mm; COVID-19 (bilateral ground glass and consolidation); JPEG "
           "Lossless",
           _tcia("MIDRC-RICORD-1A", "CC BY-NC 4.0", "aryamanwastaken/covid_chestCT_image_analysis", _NOLIC)),
    Source("lidc-idri-0001", "chest", "no infection", "profmcdan/dicom-project",
           "588f867046cc97f9149eaa08ebcff56cae227c18", "data/767", "a5a8b435f92d", 133,
           "thorax, 512 x 512 x 133, 0.70 / 2.5 mm; lung nodules (the folder's 133 *.dcm; its .xml, .vvi and .mat "
           "left out)",
           _tcia("LIDC-IDRI", "CC BY 3.0", "profmcdan/dicom-project", _NOLIC), "*.dcm"),
    Source("acrinflt-breast013", "chest", "no infection", "andygomez3dart/Project1",
           "bc2e537c71ba26226b1c680c9e602e0cac7ef861", "", "9395f84cee2e", 49,
           "thorax, 512 x 512 x 49, 1.37 / 4.0 mm; breast cancer, clear lungs; low-dose PET/CT attenuation CT, 700 mm "
           "field of view, apices not covered (the 49 1-0xx.dcm at the top level)",
           _tcia("ACRIN-FLT-Breast", "CC BY 3.0", "andygomez3dart/Project1", _NOLIC), "1-0??.dcm"),
    Source("pvdata-pancreas-lowerchest", "other", "no infection", "pyvista/vtk-data",
           "c43678d0d972d416e06c3ca8b9e42d79bddd1716", "Data/DICOM_Stack", "cb1b284c26fc", 134,
           "lower half of the lungs and the abdomen, 512 x 512 x 134, 1.07 / 3.0 mm; pancreatic cancer",
           "TCIA Pancreatic-CT-CBCT-SEG (CC BY 4.0): Hong, J. et al. (2021). Breath-hold CT and cone-beam CT images "
           "with expert manual organ-at-risk segmentations from radiation treatments of locally advanced pancreatic "
           "cancer. The Cancer Imaging Archive. https://doi.org/10.7937/TCIA.ESHQ-4D90 (the folder's Citations "
           "file); via pyvista/vtk-data", "*.dcm", ref="pull/5/head"),
    Source("acrinflt-breast001-upper", "other", "no infection", "arreazavleo/AITest",
           "674a6cd4371507d0b451efec8038fd363ea5abd3", "", "9e70bdc88cc9", 99,
           "head to hila, 512 x 512 x 99, 0.98 / 4.25 mm; breast cancer (1-001.dcm .. 1-099.dcm: one of two series "
           "with one SeriesNumber in the folder, split by SeriesInstanceUID)",
           _tcia("ACRIN-FLT-Breast", "CC BY 3.0", "arreazavleo/AITest", _NOLIC), "1-*.dcm",
           ("SeriesInstanceUID", "1.3.6.1.4.1.14519.5.2.1.7009.2401.264410460039008685576999729346")),
    Source("acrinflt-breast001-abdomen", "other", "no infection", "arreazavleo/AITest",
           "674a6cd4371507d0b451efec8038fd363ea5abd3", "", "9e70bdc88cc9", 99,
           "lung bases to pelvis, 512 x 512 x 99, 0.98 / 4.25 mm; breast cancer (1-100.dcm .. 1-198.dcm, the second "
           "series)",
           _tcia("ACRIN-FLT-Breast", "CC BY 3.0", "arreazavleo/AITest", _NOLIC), "1-*.dcm",
           ("SeriesInstanceUID", "1.3.6.1.4.1.14519.5.2.1.7009.2401.307437172854557023978824805941")),
    # --- "Three more real chest CTs, held out"
    Source("ricord1a-000082", "chest", "COVID-19", "nepalanurag/Biomedical-Imaging-Analysis",
           "91c508da7c93d91d312a8af48daa0dc2311af3fb",
           "MIDRC-RICORD-1A-419639-000082/08-02-2002-NA-CT CHEST WITHOUT CONTRAST-04614/2.000000-ROUTINE CHEST "
           "NON-CON-97100", "76ad9d4b7b73", 255,
           "thorax, 512 x 512 x 255, 0.70 / 1.25 mm; COVID-19 (peripheral ground glass, both lungs); JPEG Lossless "
           "(the folder's lung/lungs.nii.gz left out)",
           _tcia("MIDRC-RICORD-1A", "CC BY-NC 4.0", "nepalanurag/Biomedical-Imaging-Analysis", _NOLIC), "*.dcm"),
    Source("cmbcrc-msb-01068", "chest", "no infection", "stepha-mar/Colon",
           "d2bd890396a1779ad10edca87ffd3dc83068b658", "", "57f99998c50c", 100,
           "thorax, 512 x 512 x 100, 0.90 / 2.5 mm; colorectal cancer, lungs clear (one small nodule), the deepest "
           "posterior recesses cut (1-001.dcm .. 1-100.dcm)",
           _tcia("CMB-CRC", "CC BY 4.0", "stepha-mar/Colon", _NOLIC), _names("1-%03d.dcm", 1, 100)),
    Source("tcgalihc-bc-a3kf", "chest", "no infection", "benjnkns/Automatic-Organ-Segmentation",
           "ce2dcc085535f6b3de5edb4df1a55399347d0c6d", "dicom", "c24a02ee7098", 59,
           "thorax, 512 x 512 x 59, 0.625 / 5.0 mm; liver cancer, lungs clear (acquisition 2 of the folder's 99 "
           "files: 59 of 000116.dcm .. 000176.dcm)",
           _tcia("TCGA-LIHC", "CC BY 3.0", "benjnkns/Automatic-Organ-Segmentation", _NOLIC), "*.dcm",
           ("AcquisitionNumber", "2")),
    # --- "One more real scan, held out"
    Source("hncetux-0522c0015", "chest", "no infection", "katiekirchner/CSC621_project_team_fire",
           "9519f80a6921f101392d00459ebbfa6bcbfa1bc9",
           "data/Head-Neck Cetuximab-Demo/0522c0015/12-29-1999-PETCT HEADNECK CA IN-07866/2-CT Atten Cor Head "
           "In-33276", "ca79d2263e9d", 223,
           "neck to thighs, 512 x 512 x 223, 0.98 / 3.27 mm; low-dose CT of a whole-body PET/CT, head and neck "
           "cancer, lungs clear on its contact sheet (the folder deleted in the carrier's next commit)",
           _tcia("Head-Neck Cetuximab (RTOG 0522)", "CC BY 3.0", "katiekirchner/CSC621_project_team_fire", _NOLIC)),
    # --- "Twelve more real chest CTs, held out"
    _qin("qin-lsc-0003", "QIN-LSC-0003/04-01-2015-1-CT Thorax wContrast-41946/2-THORAX W  3.0  B41 Soft Tissue-71225",
         "98d454194384", 130, "thorax, 3.0 mm; lung cancer (NSCLC)"),
    _qin("qin-lsc-0009", "QIN-LSC-0009/11-06-2014-1-CT Thorax wCont-24434/7-RENAL VEN.  3.0  B30f-45454",
         "2064f68ee9aa", 150, "chest and abdomen, 3.0 mm; lung cancer (NSCLC) (only in the carrier's history)"),
    _qin("qin-lsc-0014", "QIN-LSC-0014/11-06-2014-1-CT Thorax wContrast-34336/2-THORAX W  3.0  B41 Soft Tissue-85906",
         "235f531d6477", 109, "thorax, 3.0 mm; lung cancer (NSCLC)"),
    _qin("qin-lsc-0028", "QIN-LSC-0028/11-06-2014-1-CT Thorax wContrast-24475/2-THORAXW 3.0 B41 Soft Tissue-16822",
         "6372de221316", 112, "thorax, 3.0 mm; lung cancer (NSCLC)"),
    _qin("qin-lsc-0049", "QIN-LSC-0049/11-06-2014-1-CT Thorax wContrast-14304/2-THORAX W  3.0  B41 Soft Tissue-57047",
         "105e56e4bd1b", 110, "thorax, 3.0 mm; lung cancer (NSCLC), a ground-glass halo around the tumour"),
    _qin("qin-lsc-0055", "QIN-LSC-0055/11-06-2014-1-CT Thorax wo Contrast-86597/5-THORAX WO  3.0  B41 Soft "
         "Tissue-77621",
         "0812769f2453", 125, "thorax, 3.0 mm; lung cancer (NSCLC) (only in the carrier's history)"),
    _qin("qin-lsc-0064", "QIN-LSC-0064/11-06-2014-1-CT Thorax wContrast-93556/2-THORAX W  3.0 B41 Soft Tissue-30421",
         "7133c338931c", 103, "thorax, 3.0 mm; lung cancer (NSCLC), mild emphysema"),
    _qin("qin-lsc-0088", "QIN-LSC-0088/11-06-2014-1-CT Thorax wContrast-43458/2-THORAXW  3.0  B40f-95200",
         "f9f0ee00dc9b", 104, "thorax, 3.0 mm; lung cancer (NSCLC)"),
    _qin("qin-lung01-0007", "QIN-LUNG-01-0007/11-06-2014-1-CT Thorax wContrast-47252/2-THORAX W  3.0 B41 Soft "
         "Tissue-52055", "2410a5719841", 118, "thorax, 3.0 mm; lung cancer (NSCLC)"),
    _qin("qin-lung01-0013", "QIN-LUNG-01-0013/04-01-2015-1-CT Thorax wContrast-97602/2-THORAXW 3.0 B41 Soft "
         "Tissue-04801", "f1365408142a", 113,
         "thorax, 3.0 mm; lung cancer (NSCLC), a ground-glass halo around the tumour"),
    # --- the sixth experiment's fourth search (weights/README.md, "A sixth experiment")
    Source("lidc-idri-0002", "chest", "no infection", "drivendataorg/concept-to-clinic",
           "17f399f3cab2c54c416a19e2e3ce54ee58157c63",
           "tests/assets/LIDC-IDRI-0002/1.3.6.1.4.1.14519.5.2.1.6279.6001.490157381160200744295382098329/"
           "1.3.6.1.4.1.14519.5.2.1.6279.6001.619372068417051974713149104919", "6fde632afece", 261,
           "thorax, 261 slices of 1.25 mm; GE LightSpeed16, no contrast, lung nodules (the folder's *.dcm; its "
           "annotation .xml left out; moved to Git LFS three commits later)",
           _tcia("LIDC-IDRI", "CC BY 3.0", "drivendataorg/concept-to-clinic (MIT)"), "*.dcm"),
    Source("lidc-idri-0003", "chest", "no infection", "drivendataorg/concept-to-clinic",
           "17f399f3cab2c54c416a19e2e3ce54ee58157c63",
           "tests/assets/LIDC-IDRI-0003/1.3.6.1.4.1.14519.5.2.1.6279.6001.101370605276577556143013894866/"
           "1.3.6.1.4.1.14519.5.2.1.6279.6001.170706757615202213033480003264", "65b083b7769f", 140,
           "thorax, 140 slices of 2.5 mm; GE LightSpeed16, oral and IV contrast, 3-4 lung nodules (the folder's "
           "*.dcm; its annotation .xml left out)",
           _tcia("LIDC-IDRI", "CC BY 3.0", "drivendataorg/concept-to-clinic (MIT)"), "*.dcm"),
    Source("rider-1225316081", "chest", "no infection", "CSC621-TeamWind/FinalProject",
           "ba67a321e74f401703f8cacf3043a590505db8dc", "src/dcm", "493603a49a47", 233,
           "thorax, 512 x 512 x 233, 0.71 / 1.25 mm; lung cancer, a small ground-glass nodule, lungs otherwise clear",
           _tcia("RIDER Lung CT", "CC BY 3.0", "CSC621-TeamWind/FinalProject", _NOLIC), "*.dcm"),
    Source("tcgathca-de-a4ma", "chest", "no infection", "plotly/dash-vtk",
           "46b48019a6924ca3ef56bb0251c9e74d2831954c", "demos/data/ct_whole_body", "920dd206e680", 269,
           "whole body, 512 x 512 x 269, 0.98 / 2.5 mm; thyroid cancer, PET/CT, lungs clear (deleted in dash-vtk's "
           "next commit, e4c23fd)",
           _tcia("TCGA-THCA", "CC BY 3.0", "plotly/dash-vtk (MIT)", " (the licence is TCIA's, not re-verified)"),
           ref="pull/24/head"),
]


def to_lps(path: str):
    """A NIfTI file reoriented to axcodes ('L','P','S'): (data (X, Y, Z) as stored there, affine)."""
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    if img.dataobj.slope not in (1, None) or img.dataobj.inter not in (0, None):
        data = img.get_fdata(dtype=np.float32)
    tr = ornt_transform(io_orientation(img.affine), axcodes2ornt(("L", "P", "S")))
    out = apply_orientation(data, tr)
    aff = img.affine @ inv_ornt_aff(tr, img.shape[:3])
    return np.ascontiguousarray(out), aff


def save(path: str, xyz: np.ndarray, affine: np.ndarray, dtype) -> None:
    import nibabel as nib
    img = nib.Nifti1Image(xyz.astype(dtype), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_slope_inter(1, 0)
    nib.save(img, path)


def dicom_to_nifti(folder: str, tmp: str) -> str:
    r = subprocess.run(["dcm2niix", "-z", "y", "-b", "n", "-f", "vol", "-o", tmp, folder],
                       capture_output=True, text=True)
    outs = sorted(glob.glob(os.path.join(tmp, "vol*.nii.gz")))
    if r.returncode != 0 or not outs:
        raise SystemExit(f"dcm2niix failed on {folder}: {r.stdout[-400:]} {r.stderr[-400:]}")
    # a tilted series gives vol.nii.gz and the corrected vol_Tilt_Eq_1.nii.gz: take the corrected one
    tilt = [o for o in outs if "Tilt" in o or "_Eq" in o]
    if not tilt and len(outs) > 1:
        print(f"  warning: dcm2niix wrote {len(outs)} volumes from {folder}; taking {os.path.basename(outs[-1])}")
    return (tilt or outs)[-1]


# ----------------------------------------------------------------------------------------------
# Where the files are: clones, bare mirrors, the selection
# ----------------------------------------------------------------------------------------------

def source_path(clones: str, src: Source) -> str:
    """``<clones>/<repo-name>@<short commit>/<path>``, or ``<clones>/<repo-name>/<path>`` when only that exists."""
    new = os.path.join(clones, src.folder, src.path)
    old = os.path.join(clones, src.name, src.path)
    return old if not os.path.exists(new) and os.path.exists(old) else new


def select_files(src: Source, folder: str) -> List[str]:
    """The files of a source's series (full paths, sorted): every file under its folder, or those its ``files``
    names or matches (in the folder itself), then those whose DICOM attribute ``match`` has the stated value."""
    if src.files is None:
        paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)
    elif isinstance(src.files, str):
        paths = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                       if fnmatch.fnmatchcase(f, src.files) and os.path.isfile(os.path.join(folder, f)))
    else:
        paths = [os.path.join(folder, f) for f in src.files]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise SystemExit(f"{src.study}: {len(missing)} named files missing, e.g. {missing[0]}")
    if src.match is not None:
        import pydicom
        key, value = src.match
        paths = [p for p in paths
                 if str(getattr(pydicom.dcmread(p, stop_before_pixels=True, specific_tags=[key]), key, "")) == value]
    return paths


def _git(gitdir: str, *args: str, check: bool = True) -> str:
    r = subprocess.run(["git", "--literal-pathspecs", f"--git-dir={gitdir}", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {r.stderr.strip()[-300:]}")
    return r.stdout.strip() if r.returncode == 0 else ""


def find_mirror(mirrors: str, repo: str) -> Optional[str]:
    """The git directory of a bare mirror of ``owner/name`` under ``mirrors``: ``<owner>+<name>/repo(/.git)``,
    ``<owner>+<name>(.git)`` or ``<name>(.git)``."""
    owner, name = repo.split("/")
    for base in (f"{owner}+{name}", name):
        for sub in ("repo/.git", "repo", ".git", ""):
            for cand in (os.path.join(mirrors, base, sub), os.path.join(mirrors, base + ".git", sub)):
                if os.path.isdir(cand) and _git(cand, "rev-parse", "--git-dir", check=False):
                    return cand
    return None


def _object_at(gitdir: str, commit: str, path: str) -> str:
    return _git(gitdir, "rev-parse", "--verify", "-q", f"{commit}:{path}", check=False)


def nearest_commit(gitdir: str, src: Source) -> Optional[str]:
    """When a source's commit is not in a mirror: the commit nearest in time (of all refs) whose ``<path>`` is the
    same git object (so the same files, blob for blob)."""
    for c in _git(gitdir, "rev-list", "--all", "--date-order").split():
        if _object_at(gitdir, c, src.path).startswith(src.tree):
            return c
    return None


def from_mirrors(mirrors: str, clones: str, only: Optional[Sequence[str]] = None) -> List[str]:
    """Write each source's ``<clones>/<repo-name>@<short commit>/<path>`` from a bare mirror with
    ``git archive <commit> -- <path> | tar -x``; checks that the commit is there (else takes the nearest commit with
    the same object at the path, and says so), that the path is the recorded object, and that no file of it is
    missing from the mirror (large files can be).  Returns the studies that could not be written."""
    failed: List[str] = []
    for src in SOURCES:
        if only and src.study not in only:
            continue
        gitdir = find_mirror(mirrors, src.repo)
        if gitdir is None:
            print(f"{src.study}: no mirror of {src.repo} under {mirrors}")
            failed.append(src.study)
            continue
        commit = _git(gitdir, "rev-parse", "--verify", "-q", f"{src.commit}^{{commit}}", check=False)
        if not commit:
            commit = nearest_commit(gitdir, src) or ""
            print(f"{src.study}: commit {src.commit} not in {gitdir}; "
                  + (f"using {commit}, which holds the same object at {src.path!r}" if commit else "no commit holds "
                     f"object {src.tree} at {src.path!r}"))
            if not commit:
                failed.append(src.study)
                continue
        obj = _object_at(gitdir, commit, src.path)
        if not obj.startswith(src.tree):
            print(f"{src.study}: {src.repo}@{commit[:7]}:{src.path!r} is {obj or 'absent'}, expected {src.tree}")
            failed.append(src.study)
            continue
        # the files to write: those of the path that the source's name selection keeps
        listing = _git(gitdir, "ls-tree", "-r", "-z", commit, "--", *([src.path] if src.path else []))
        entries = []
        for item in listing.split("\0"):
            if not item:
                continue
            meta, name = item.split("\t", 1)
            rel = os.path.relpath(name, src.path) if src.path and name != src.path else os.path.basename(name)
            if isinstance(src.files, str) and ("/" in rel or not fnmatch.fnmatchcase(rel, src.files)):
                continue
            if isinstance(src.files, tuple) and rel not in src.files:
                continue
            if meta.split()[1] == "blob":
                entries.append((meta.split()[2], name))
        r = subprocess.run(["git", f"--git-dir={gitdir}", "cat-file", "--batch-check"],
                           input="".join(i + "\n" for i, _ in entries), capture_output=True, text=True)
        missing = [line.split()[0] for line in r.stdout.splitlines() if line.endswith("missing")]
        if missing:
            print(f"{src.study}: {len(missing)} of {len(entries)} files absent from the mirror {gitdir}, e.g. "
                  f"{dict((i, n) for i, n in entries)[missing[0]]}")
            failed.append(src.study)
            continue
        dest = os.path.join(clones, src.folder)
        os.makedirs(dest, exist_ok=True)
        paths = [src.path] if src.files is None and src.path else [n for _, n in entries]
        with tempfile.TemporaryFile() as log:  # git warns of the mirror's absent blobs outside the paths: kept quiet
            arch = subprocess.Popen(["git", "--literal-pathspecs", f"--git-dir={gitdir}", "archive", "--format=tar",
                                     commit, "--", *paths], stdout=subprocess.PIPE, stderr=log)
            tar = subprocess.run(["tar", "-x", "-C", dest], stdin=arch.stdout, capture_output=True, text=True)
            arch.stdout.close()
            rc = arch.wait()
            log.seek(0)
            err = log.read().decode(errors="replace")
        if rc != 0 or tar.returncode != 0:
            print(f"{src.study}: git archive | tar failed: {err[-300:]} {tar.stderr[-300:]}")
            failed.append(src.study)
            continue
        print(f"{src.study}: {src.repo}@{commit[:7]}:{src.path or '.'} ({len(entries)} files) -> {dest}")
    return failed


def clone_commands(clones: str) -> List[str]:
    """Shell commands that clone each repository of ``SOURCES`` into ``<clones>/<repo-name>@<short commit>`` and check
    out its commit (one clone per repository and commit; a commit that only a pull request holds is fetched by its
    ref first)."""
    cmds: List[str] = []
    seen = set()
    for src in SOURCES:
        if (src.repo, src.commit) in seen:
            continue
        seen.add((src.repo, src.commit))
        dest = shlex.quote(os.path.join(clones, src.folder))
        fetch = f" && git -C {dest} fetch -q origin {src.ref}" if src.ref else ""
        cmds.append(f"git clone -q https://github.com/{src.repo} {dest}{fetch} && "
                    f"git -C {dest} checkout -q {src.commit}")
    return cmds


def _selection(src: Source) -> str:
    if src.files is None:
        sel = ""
    elif isinstance(src.files, str):
        sel = f" `{src.files}`"
    else:
        sel = f" `{src.files[0]}` .. `{src.files[-1]}` ({len(src.files)} names)"
    if src.match is not None:
        sel += f" with {src.match[0]} {src.match[1]}"
    return sel


# ----------------------------------------------------------------------------------------------
# The dataset layout
# ----------------------------------------------------------------------------------------------

def prepare(clones: str, out: str, only: Optional[List[str]] = None) -> List[str]:
    """Convert every source (or those in ``only``) to the dataset layout under ``out``; returns the studies that
    failed (their files absent or not the expected number), after doing the others."""
    import lung_reference as lr
    os.makedirs(out, exist_ok=True)
    rows: Dict[str, List[Tuple[str, str]]] = {"chest": [], "other": []}
    failed: List[str] = []
    for src in SOURCES:
        if only and src.study not in only:
            continue
        path = source_path(clones, src)
        if not os.path.exists(path):
            print(f"{src.study}: {path} not found; clone {src.repo} at {src.commit} into {clones}/{src.folder} "
                  "(clone-commands, from-mirrors)")
            failed.append(src.study)
            continue
        folder = os.path.join(out, src.kind, src.study)
        with tempfile.TemporaryDirectory() as tmp:
            if path.endswith((".nii", ".nii.gz")):
                nii = path
            else:
                files = select_files(src, path)
                if len(files) != src.n_files:
                    print(f"{src.study}: {len(files)} files in {path}{_selection(src)}, expected {src.n_files}")
                    failed.append(src.study)
                    continue
                series = path
                if src.files is not None or src.match is not None:
                    series = os.path.join(tmp, "series")
                    os.makedirs(series)
                    for i, f in enumerate(files):
                        shutil.copy(f, os.path.join(series, f"{i:05d}_{os.path.basename(f)}"))
                nii = dicom_to_nifti(series, os.path.join(tmp))
            xyz, aff = to_lps(nii)
        os.makedirs(folder, exist_ok=True)
        xyz = np.clip(np.rint(xyz), -32768, 32767)
        save(os.path.join(folder, "scan.nii.gz"), xyz, aff, np.int16)
        sp = tuple(float(np.linalg.norm(aff[:3, i])) for i in (2, 1, 0))
        if src.kind == "chest":
            zyx = np.transpose(xyz, (2, 1, 0)).astype(np.float32)
            mask, parts = lr.reference_lung_mask(zyx, sp, return_parts=True)
            save(os.path.join(folder, "lung.nii.gz"), np.transpose(mask, (2, 1, 0)), aff, np.uint8)
            save(os.path.join(folder, "body.nii.gz"), np.transpose(parts["body"], (2, 1, 0)), aff, np.uint8)
            s = lr.summary(mask, sp)
            print(f"{src.study}: {xyz.shape} spacing {tuple(round(v, 3) for v in sp)} lung {s['lung_ml']:.0f} mL, "
                  f"slices {s['first_slice']}..{s['last_slice']}, airway {int(parts['airway'].sum())} voxels")
        else:
            print(f"{src.study}: {xyz.shape} spacing {tuple(round(v, 3) for v in sp)}")
        rows[src.kind].append((src.study, src.label))
    for kind, rs in rows.items():
        if not rs:
            continue
        path = os.path.join(out, kind, "labels.csv")
        old = []
        if os.path.exists(path):
            with open(path, newline="") as f:
                old = [(r["study"], r["label"]) for r in csv.DictReader(f) if r["study"] not in {s for s, _ in rs}]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["study", "label"])
            w.writerows(sorted(old + rs))
    with open(os.path.join(out, "SOURCES.md"), "w") as f:
        f.write("# Real CT volumes (weights/real_data.py prepare)\n\n"
                "| study | kind | label | from (repository @ commit: path, selection) | what | licence, citation |\n"
                "|---|---|---|---|---|---|\n")
        for src in SOURCES:
            f.write(f"| {src.study} | {src.kind} | {src.label} | [{src.repo}](https://github.com/{src.repo}) @ "
                    f"{src.commit}: `{src.path or '.'}`{_selection(src)} ({src.n_files} files) | {src.desc} | "
                    f"{src.licence} |\n")
    if failed:
        print(f"failed: {' '.join(failed)}")
    return failed


# ----------------------------------------------------------------------------------------------
# Contact sheets
# ----------------------------------------------------------------------------------------------

def _window(a: np.ndarray, lo: float = -1150.0, hi: float = 350.0) -> np.ndarray:
    return (np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _outline(m: np.ndarray) -> np.ndarray:
    m = m.astype(bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def _tile(img: np.ndarray, masks: List[Tuple[np.ndarray, Tuple[int, int, int]]], size: Tuple[int, int]):
    from PIL import Image
    g = np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))
    rgb = np.repeat(g[..., None], 3, axis=2)
    for m, col in masks:
        mm = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127
        rgb[_outline(mm)] = col
    return Image.fromarray(rgb)


def contact_sheet(scan: str, lung: str, out_png: str, title: str, pred: Optional[str] = None,
                  n_axial: int = 12, tile: int = 300, pred_label: str = "model") -> None:
    """Axial slices from the top of the lungs to below their base (lung window, reference outline in green, a
    model's in magenta) and a coronal reformat through the lung centre, in one PNG."""
    from PIL import Image, ImageDraw
    import nibabel as nib
    hu = np.transpose(np.asarray(nib.load(scan).dataobj), (2, 1, 0)).astype(np.float32)
    ref = np.transpose(np.asarray(nib.load(lung).dataobj), (2, 1, 0)) > 0
    prd = np.transpose(np.asarray(nib.load(pred).dataobj), (2, 1, 0)) > 0 if pred else None
    aff = nib.load(scan).affine
    dz, dy, dx = (float(np.linalg.norm(aff[:3, i])) for i in (2, 1, 0))
    zs = np.flatnonzero(ref.reshape(ref.shape[0], -1).any(1))
    lo, hi = (int(zs[0]), int(zs[-1])) if len(zs) else (0, ref.shape[0] - 1)
    lo = max(0, lo - max(1, int(round(15 / dz))))  # a little below the base: liver, bowel must stay out
    ks = np.unique(np.linspace(hi, lo, n_axial).round().astype(int))[::-1]
    green, magenta = (40, 230, 60), (255, 40, 220)
    tiles = []
    for k in ks:
        ms = [(ref[k], green)] + ([(prd[k], magenta)] if prd is not None else [])
        t = _tile(_window(hu[k]), ms, (tile, int(round(tile * hu.shape[1] * dy / (hu.shape[2] * dx)))))
        ImageDraw.Draw(t).text((4, 2), f"k={k}", fill=(255, 255, 0))
        tiles.append(t)
    yc = int(np.round(np.mean(np.nonzero(ref)[1]))) if ref.any() else hu.shape[1] // 2
    cor = _window(hu[::-1, yc, :])
    ms = [(ref[::-1, yc, :], green)] + ([(prd[::-1, yc, :], magenta)] if prd is not None else [])
    ch = int(round(tile * 2 * hu.shape[0] * dz / (hu.shape[2] * dx)))
    ctile = _tile(cor, ms, (tile * 2, max(ch, 40)))
    cols = 4
    th = max(t.size[1] for t in tiles)
    rows = (len(tiles) + cols - 1) // cols
    W = cols * tile + tile * 2 + 10
    H = max(rows * th, ctile.size[1]) + 24
    sheet = Image.new("RGB", (W, H), (0, 0, 0))
    d = ImageDraw.Draw(sheet)
    legend = title + "   green: reference mask" + (f"   magenta: {pred_label}" if prd is not None else "")
    d.text((4, 4), legend, fill=(255, 255, 255))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * tile, 24 + (i // cols) * th))
    sheet.paste(ctile, (cols * tile + 10, 24))
    d.text((cols * tile + 14, 26), f"coronal j={yc}", fill=(255, 255, 0))
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    sheet.convert("P", palette=Image.ADAPTIVE, colors=96).save(out_png, optimize=True)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="convert the sources to the dataset layout")
    p.add_argument("--clones", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--only", nargs="*")
    p.add_argument("--from-mirrors", metavar="DIR", help="first write --clones from the bare mirrors under DIR")
    c = sub.add_parser("clone-commands", help="print the git clone and checkout commands for all sources")
    c.add_argument("--clones", default="clones")
    m = sub.add_parser("from-mirrors", help="write <clones>/<repo-name>@<short commit>/<path> from bare mirrors")
    m.add_argument("--mirrors", required=True, help="folder of bare mirrors, <owner>+<name>/...")
    m.add_argument("--clones", required=True)
    m.add_argument("--only", nargs="*")
    s = sub.add_parser("sheets")
    s.add_argument("--data", required=True, help="the --out of prepare")
    s.add_argument("--out", required=True, help="folder for <study>.png")
    s.add_argument("--pred", help="folder with <study>.lung.nii.gz of a model, drawn in magenta")
    s.add_argument("--suffix", default="", help="added to the PNG names")
    s.add_argument("--pred-label", default="model", help="the legend's name for --pred")
    a = ap.parse_args(argv)
    if a.cmd == "clone-commands":
        print("\n".join(clone_commands(a.clones)))
    elif a.cmd == "from-mirrors":
        return 1 if from_mirrors(a.mirrors, a.clones, a.only) else 0
    elif a.cmd == "prepare":
        failed = from_mirrors(a.from_mirrors, a.clones, a.only) if a.from_mirrors else []
        failed += prepare(a.clones, a.out, [s.study for s in SOURCES if (not a.only or s.study in a.only)
                                            and s.study not in failed])
        return 1 if failed else 0
    else:
        root = os.path.join(a.data, "chest")
        with open(os.path.join(root, "labels.csv"), newline="") as f:
            studies = [r["study"] for r in csv.DictReader(f)]
        for st in studies:
            pred = os.path.join(a.pred, f"{st}.lung.nii.gz") if a.pred else None
            out = os.path.join(a.out, f"{st}{a.suffix}.png")
            if pred and not os.path.exists(pred):
                pred = None
            contact_sheet(os.path.join(root, st, "scan.nii.gz"), os.path.join(root, st, "lung.nii.gz"), out, st, pred,
                          pred_label=a.pred_label)
            print(f"{out} ({os.path.getsize(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
