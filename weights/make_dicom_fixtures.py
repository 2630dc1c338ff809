#!/usr/bin/env python3
"""Write the DICOM fixtures of test/dicom.test.ts, and dump what independent tools make of them.

    /usr/bin/python3 weights/make_dicom_fixtures.py            writes test/fixtures/scans/dicom/<case>/
    /usr/bin/python3 weights/make_dicom_fixtures.py --dump [CASE ...] [--no-dcm2niix]
        prints JSON (test/dicom.test.ts runs this): per case, what pydicom decodes per file (HU after rescale,
        positions; compressed files first decoded by dcmtk or gdcm) and every NIfTI dcm2niix converts from the
        case folder, as nibabel reads it (affine in RAS, voxels in HU, Fortran order)

Needs Debian's python3-pydicom and numpy (and python3-nibabel and dcm2niix for --dump); the compressed transfer
syntaxes are transcoded from the explicit little-endian files with Debian tools: dcmtk (dcmcrle, dcmcjpeg,
dcmcjpls, dcmconv for deflate and big endian) and libgdcm-tools (gdcmconv --j2k). Output is deterministic
(seeded generator, fixed UIDs), so rerunning it rewrites the same bytes up to the codecs' own headers.

Every series is small (16 columns x 12 rows, 5 to 8 slices). Voxel values are seeded random HU (noise, so a
flipped row or slice cannot pass unnoticed). Cases (folder names):

valid: ordered (InstanceNumber reversed against position, shuffled file names), multi (two CT series, a
localizer sharing the first series' UID, an SR object, a file that is not DICOM), localizer_axial (an axial
localizer of the series' size and UID, 200 mm away), rescale (per-slice slope and
intercept, non-integral), padding_signed (PixelPaddingValue -2000, signed storage), padding_unsigned
(PixelPaddingValue 0 with PixelPaddingRangeLimit 30, unsigned storage, implicit VR), unsigned (unsigned
storage, intercept -1024), unsigned_wide (unsigned values up to 65534, no intercept: beyond int16), bits12_signed (BitsStored 12, negatives stored without sign extension),
bits12_signed_extended (BitsStored 12, negatives sign-extended into the high bits),
bits12_unsigned (BitsStored 12, garbage in the 4 high bits), big_endian, deflate, rle, jpeg_lossless (process
14 SV1), jpeg_lossless_p14 (process 14, predictor 6), jpegls, j2k, sagittal, enhanced (Enhanced CT, one
multi-frame file, frames in reverse position order, per-frame rescale), enhanced_shared (the same with
one rescale in the shared functional groups), tilt (gantry tilt 15 degrees),
duplicates (one slice duplicated with identical pixels), single (one slice: a 2-D image).
bad: missing_slice, duplicates_conflict (same position, different pixels), mismatched_sizes (two sizes in one
series and orientation), truncated (a file cut inside its pixel data), no_pixels (a CT header without pixel
data), unsupported_ts (JPEG baseline header with junk pixel bytes), mr_only (an MR series: no CT).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'scans', 'dicom')
UID_ROOT = '1.2.826.0.1.3680043.8.498.77.'
CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2'
ENHANCED_CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2.1'
MR_STORAGE = '1.2.840.10008.5.1.4.1.1.4'
SR_STORAGE = '1.2.840.10008.5.1.4.1.1.88.11'
COLS, ROWS = 16, 12
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]

_uid_counter = [0]


def uid(tag):
    _uid_counter[0] += 1
    return f"{UID_ROOT}{ {'sop': 1, 'series': 2, 'dim': 3}[tag]}.{_uid_counter[0]}"


def hu_slices(rng, n, rows=ROWS, cols=COLS, lo=-1024, hi=1500):
    return rng.integers(lo, hi, size=(n, rows, cols)).astype(np.int64)


def base_dataset(sop_class, modality, series_uid, study_uid, series_number, description):
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid('sop')
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID_ROOT + '1'
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = 'Fixture^DICOM'
    ds.PatientID = 'covidct-fixture'
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = '20260101'
    ds.StudyTime = '120000'
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = study_uid + '.1'
    return ds


def set_pixels(ds, raw, signed, bits_stored=16, bits_allocated=16):
    rows, cols = raw.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = {8: ('<i1' if signed else '<u1'), 16: ('<i2' if signed else '<u2')}[bits_allocated]
    if bits_allocated == 16 and bits_stored < 16:
        arr = (raw.astype(np.int64) & 0xFFFF).astype('<u2')   # the caller decides what the high bits hold
    else:
        arr = raw.astype(dtype)
    ds.PixelData = arr.tobytes()
    ds['PixelData'].VR = 'OW' if bits_allocated > 8 else 'OB'


def write(ds, path, implicit=False):
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.is_little_endian = True
    ds.is_implicit_VR = implicit
    ds.save_as(path, write_like_original=False)


def ct_series(folder, rng, n=7, hu=None, iop=AXIAL, origin=(-40.0, -30.0, 100.0), spacing=(0.8, 0.7),
              step=None, signed=True, intercept=0.0, slope=1.0, names=None, instance=None, series_uid=None,
              study_uid=None, series_number=1, description='fixture CT', implicit=False, extra=None, modality='CT',
              sop_class=CT_STORAGE):
    """Writes n single-frame slices; returns (raw per slice, positions, file paths)."""
    os.makedirs(folder, exist_ok=True)
    if hu is None:
        hu = hu_slices(rng, n)
    row_dir = np.array(iop[:3], float)
    col_dir = np.array(iop[3:], float)
    normal = np.cross(row_dir, col_dir)
    if step is None:
        step = normal * 1.25
    series_uid = series_uid or uid('series')
    study_uid = study_uid or UID_ROOT + '9'
    paths = []
    positions = []
    raws = []
    for k in range(n):
        ds = base_dataset(sop_class, modality, series_uid, study_uid, series_number, description)
        pos = np.array(origin, float) + k * np.asarray(step, float)
        ds.ImagePositionPatient = [round(float(v), 4) for v in pos]
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.PixelSpacing = [spacing[1], spacing[0]]   # row spacing (between rows), column spacing
        ds.SliceThickness = 5.0                       # deliberately not the spacing: readers must not use it
        ds.InstanceNumber = (instance[k] if instance else k + 1)
        ds.ImageType = ['ORIGINAL', 'PRIMARY', 'AXIAL']
        s = slope[k] if isinstance(slope, (list, tuple)) else slope
        b = intercept[k] if isinstance(intercept, (list, tuple)) else intercept
        raw = np.round((hu[k] - b) / s).astype(np.int64)
        if modality == 'CT' or modality == 'MR':
            ds.RescaleIntercept = b
            ds.RescaleSlope = s
            ds.RescaleType = 'HU'
        set_pixels(ds, raw, signed)
        if extra:
            extra(ds, k, raw)
        path = os.path.join(folder, names[k] if names else f'slice{k:03d}.dcm')
        write(ds, path, implicit)
        paths.append(path)
        positions.append(pos)
        raws.append(raw)
    return raws, positions, paths


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def transcode(folder, cmd):
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        tmp = p + '.tmp'
        run(cmd + [p, tmp])
        os.replace(tmp, p)


def make_all():
    require_tools(['dcmconv', 'dcmcrle', 'dcmcjpeg', 'dcmcjpls', 'gdcmconv'])
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    rng = np.random.default_rng(20261130)
    d = lambda name: os.path.join(ROOT, name)

    # ordered: InstanceNumber reversed against position, file names shuffled
    n = 7
    perm = rng.permutation(n)
    ct_series(d('ordered'), rng, n=n, instance=[n - k for k in range(n)], names=[f'IM{perm[k]:04d}' for k in range(n)])

    # multi: two series, a localizer with the first series' UID, an SR, a non-DICOM file
    study = UID_ROOT + '10'
    s1 = uid('series')
    ct_series(d('multi'), rng, n=5, series_uid=s1, study_uid=study, series_number=2, description='thick',
              names=[f'a{k}.dcm' for k in range(5)], step=(0, 0, 2.5))
    ct_series(d('multi'), rng, n=8, study_uid=study, series_number=3, description='thin', origin=(-35.0, -20.0, 98.0),
              spacing=(0.75, 0.75), names=[f'b{k}.dcm' for k in range(8)], step=(0, 0, 1.0))

    def localizer(ds, k, raw):
        ds.ImageType = ['ORIGINAL', 'PRIMARY', 'LOCALIZER']
    ct_series(d('multi'), rng, n=1, series_uid=s1, study_uid=study, series_number=2, description='thick',
              iop=[1, 0, 0, 0, 0, -1], hu=hu_slices(rng, 1, rows=10, cols=16), names=['scout.dcm'], extra=localizer)
    sr = base_dataset(SR_STORAGE, 'SR', uid('series'), study, 99, 'dose report')
    sr.ValueType = 'CONTAINER'
    write(sr, d('multi/dose_sr.dcm'))
    with open(d('multi/README.txt'), 'w') as f:
        f.write('not a DICOM file\n')

    # an axial localizer of the same size sharing the series' UID, far from the slices: split off by ImageType
    su = uid('series')
    ct_series(d('localizer_axial'), rng, n=6, series_uid=su, names=[f'ax{k}.dcm' for k in range(6)])
    ct_series(d('localizer_axial'), rng, n=1, series_uid=su, origin=(-40.0, -30.0, 300.0), names=['scout.dcm'], extra=localizer)

    # per-slice rescale, non-integral slopes
    ct_series(d('rescale'), rng, n=6, signed=True, slope=[1.0, 0.5, 2.0, 1.0, 0.25, 1.5],
              intercept=[0.0, -10.0, -1024.0, 5.5, 0.0, -3.0])

    # padding, signed: PixelPaddingValue -2000 stored SS
    def pad_signed(ds, k, raw):
        ds.PixelPaddingValue = -2000
        ds['PixelPaddingValue'].VR = 'SS'
    hu = hu_slices(rng, 5, lo=-1000)
    hu[:, :2, :] = -2000 + 0   # raw == hu (slope 1, intercept 0)
    hu[:, :, :1] = -2000
    ct_series(d('padding_signed'), rng, n=5, hu=hu, extra=pad_signed)

    # padding, unsigned with range, implicit VR: raw 0..30 are padding, intercept -1024
    def pad_unsigned(ds, k, raw):
        ds.PixelPaddingValue = 0
        ds['PixelPaddingValue'].VR = 'US'
        ds.PixelPaddingRangeLimit = 30
        ds['PixelPaddingRangeLimit'].VR = 'US'
    hu = hu_slices(rng, 5, lo=-990)
    hu[:, -2:, :] = -1024 + rng.integers(0, 31, size=(5, 2, COLS))
    ct_series(d('padding_unsigned'), rng, n=5, hu=hu, signed=False, intercept=-1024.0, implicit=True,
              extra=pad_unsigned)

    # unsigned storage, the usual intercept
    ct_series(d('unsigned'), rng, n=6, signed=False, intercept=-1024.0)

    # unsigned, no intercept, values above int16 (a volume that needs Float32)
    ct_series(d('unsigned_wide'), rng, n=5, signed=False, hu=hu_slices(rng, 5, lo=0, hi=65535))

    # BitsStored 12, signed: negatives stored as 12-bit two's complement with the high 4 bits zero
    def bits12(ds, k, raw):
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelData = (raw & 0x0FFF).astype('<u2').tobytes()
    ct_series(d('bits12_signed'), rng, n=5, hu=hu_slices(rng, 5, lo=-2048, hi=2047), extra=bits12)

    # BitsStored 12, signed, negatives sign-extended into the high 4 bits (what most writers do)
    def bits12x(ds, k, raw):
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelData = raw.astype('<i2').tobytes()
    ct_series(d('bits12_signed_extended'), rng, n=5, hu=hu_slices(rng, 5, lo=-2048, hi=2047), extra=bits12x)

    # BitsStored 12, unsigned with garbage (overlay bits) in the high 4 bits
    def bits12u(ds, k, raw):
        ds.BitsStored = 12
        ds.HighBit = 11
        garbage = rng.integers(0, 16, size=raw.shape) << 12
        ds.PixelData = ((raw & 0x0FFF) | garbage).astype('<u2').tobytes()
    ct_series(d('bits12_unsigned'), rng, n=5, hu=hu_slices(rng, 5, lo=-1024, hi=3071), signed=False,
              intercept=-1024.0, extra=bits12u)

    # transfer syntaxes (from explicit VR LE files)
    ct_series(d('big_endian'), rng, n=5)
    transcode(d('big_endian'), ['dcmconv', '+tb'])
    ct_series(d('deflate'), rng, n=5, signed=False, intercept=-1024.0)
    transcode(d('deflate'), ['dcmconv', '+td'])
    ct_series(d('rle'), rng, n=5)
    transcode(d('rle'), ['dcmcrle'])
    ct_series(d('jpeg_lossless'), rng, n=5, signed=False, intercept=-1024.0)
    transcode(d('jpeg_lossless'), ['dcmcjpeg', '+e1'])
    ct_series(d('jpeg_lossless_p14'), rng, n=5, signed=False, intercept=-1024.0)
    transcode(d('jpeg_lossless_p14'), ['dcmcjpeg', '+el', '+sv', '6'])
    ct_series(d('jpegls'), rng, n=5, signed=False, intercept=-1024.0)
    transcode(d('jpegls'), ['dcmcjpls'])
    ct_series(d('j2k'), rng, n=5, signed=False, intercept=-1024.0)
    for name in sorted(os.listdir(d('j2k'))):
        p = os.path.join(d('j2k'), name)
        run(['gdcmconv', '--j2k', p, p + '.tmp'])
        os.replace(p + '.tmp', p)

    # sagittal: rows along -z, columns along +y, slices along +x
    ct_series(d('sagittal'), rng, n=6, iop=[0, 1, 0, 0, 0, -1], origin=(-20.0, -60.0, 150.0), step=(3.0, 0, 0))

    # gantry tilt as scanners write it: the image plane tilted 15 degrees about x, the table (positions) along z
    t = np.deg2rad(15.0)
    def tilt(ds, k, raw):
        ds.GantryDetectorTilt = 15.0
    ct_series(d('tilt'), rng, n=6, iop=[1.0, 0.0, 0.0, 0.0, float(np.cos(t)), float(-np.sin(t))], step=(0.0, 0.0, 1.25),
              extra=tilt)

    # duplicates: slice 2 written twice with identical pixels (a second SOP instance)
    hu = hu_slices(rng, 6)
    raws, pos, paths = ct_series(d('duplicates'), rng, n=6, hu=hu)
    dup = pydicom.dcmread(paths[2])
    dup.SOPInstanceUID = uid('sop')
    dup.file_meta.MediaStorageSOPInstanceUID = dup.SOPInstanceUID
    dup.InstanceNumber = 7
    dup.save_as(d('duplicates/slice002_copy.dcm'), write_like_original=False)

    # single slice: a 2-D image
    ct_series(d('single'), rng, n=1)

    # --- bad cases ---
    # missing slice: positions 0..7 without 4
    raws, pos, paths = ct_series(d('missing_slice'), rng, n=8)
    os.remove(paths[4])

    # duplicates with different pixels at one position
    raws, pos, paths = ct_series(d('duplicates_conflict'), rng, n=6)
    dup = pydicom.dcmread(paths[3])
    dup.SOPInstanceUID = uid('sop')
    dup.file_meta.MediaStorageSOPInstanceUID = dup.SOPInstanceUID
    arr = dup.pixel_array.copy()
    arr[0, 0] += 7
    dup.PixelData = arr.astype('<i2').tobytes()
    dup.save_as(d('duplicates_conflict/slice003_other.dcm'), write_like_original=False)

    # mismatched sizes: one series, one orientation, slices 0..2 16x12 and 3..5 20x12
    su = uid('series')
    ct_series(d('mismatched_sizes'), rng, n=3, series_uid=su, names=[f's{k}.dcm' for k in range(3)])
    ct_series(d('mismatched_sizes'), rng, n=3, series_uid=su, hu=hu_slices(rng, 3, cols=20), origin=(-40.0, -30.0, 103.75),
              names=[f's{k + 3}.dcm' for k in range(3)])

    # truncated: a 6-slice series whose slice 3 is cut half way through its pixel data
    raws, pos, paths = ct_series(d('truncated'), rng, n=6)
    with open(paths[3], 'rb') as f:
        b = f.read()
    with open(paths[3], 'wb') as f:
        f.write(b[:len(b) - ROWS * COLS])

    # a CT header without pixel data
    ds = base_dataset(CT_STORAGE, 'CT', uid('series'), UID_ROOT + '9', 1, 'no pixels')
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = AXIAL
    ds.Rows, ds.Columns = ROWS, COLS
    os.makedirs(d('no_pixels'))
    write(ds, d('no_pixels/nopix.dcm'))

    # unsupported transfer syntax: JPEG baseline (process 1) header, junk fragments
    raws, pos, paths = ct_series(d('unsupported_ts'), rng, n=3)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = '1.2.840.10008.1.2.4.50'
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = pydicom.encaps.encapsulate([b'\xff\xd8\xff\xe0junk\xff\xd9\x00'])
        ds['PixelData'].VR = 'OB'
        ds['PixelData'].is_undefined_length = True
        ds.save_as(p, write_like_original=False)

    # MR only
    ct_series(d('mr_only'), rng, n=5, modality='MR', sop_class=MR_STORAGE, description='an MR series')

    # enhanced CT: one file, 6 frames in reverse position order, per-frame rescale
    make_enhanced(d('enhanced'), rng, per_frame_rescale=True)
    make_enhanced(d('enhanced_shared'), rng, per_frame_rescale=False)


def make_enhanced(folder, rng, per_frame_rescale):
    os.makedirs(folder)
    n = 6
    hu = hu_slices(rng, n, lo=-990)   # stored = HU - intercept stays >= 0 for every frame's intercept
    ds = base_dataset(ENHANCED_CT_STORAGE, 'CT', uid('series'), UID_ROOT + '9', 5, 'enhanced')
    ds.ImageType = ['ORIGINAL', 'PRIMARY', 'AXIAL', 'NONE']
    ds.NumberOfFrames = n
    ds.InstanceNumber = 1
    ds.ContentDate = '20260101'
    ds.ContentTime = '120000'
    ds.AcquisitionDateTime = '20260101120000'
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [0.6, 0.9]
    pm.SliceThickness = 3.0
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = AXIAL
    shared.PlaneOrientationSequence = Sequence([po])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    dim_uid = uid('dim')
    d1 = Dataset()
    d1.DimensionOrganizationUID = dim_uid
    ds.DimensionOrganizationSequence = Sequence([d1])
    di = Dataset()
    di.DimensionOrganizationUID = dim_uid
    di.DimensionIndexPointer = 0x00209057          # InStackPositionNumber
    di.FunctionalGroupPointer = 0x00209111         # FrameContentSequence
    ds.DimensionIndexSequence = Sequence([di])
    per = []
    raws = []
    intercepts = [-1024.0, -1000.0, -1024.0, -1010.0, -1024.0, -1024.0] if per_frame_rescale else [-1024.0] * n
    if not per_frame_rescale:
        pv = Dataset()
        pv.RescaleIntercept = -1024.0
        pv.RescaleSlope = 1.0
        pv.RescaleType = 'HU'
        shared.PixelValueTransformationSequence = Sequence([pv])
    for f in range(n):
        k = n - 1 - f                      # frame f holds the slice at position k
        g = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [-30.0, -25.0, 50.0 + 2.0 * k]
        g.PlanePositionSequence = Sequence([pp])
        fc = Dataset()
        fc.InStackPositionNumber = k + 1
        fc.DimensionIndexValues = [k + 1]
        fc.StackID = '1'
        g.FrameContentSequence = Sequence([fc])
        if per_frame_rescale:
            pv = Dataset()
            pv.RescaleIntercept = intercepts[f]
            pv.RescaleSlope = 1.0
            pv.RescaleType = 'HU'
            g.PixelValueTransformationSequence = Sequence([pv])
        per.append(g)
        raws.append(hu[k] - intercepts[f])
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    set_pixels(ds, np.stack(raws), signed=False)
    write(ds, os.path.join(folder, 'enhanced.dcm'))


DECOMPRESS = {
    '1.2.840.10008.1.2.1.99': ['dcmconv', '+te'],
    '1.2.840.10008.1.2.5': ['dcmdrle'],
    '1.2.840.10008.1.2.4.57': ['dcmdjpeg'],
    '1.2.840.10008.1.2.4.70': ['dcmdjpeg'],
    '1.2.840.10008.1.2.4.80': ['dcmdjpls'],
    '1.2.840.10008.1.2.4.81': ['dcmdjpls'],
    '1.2.840.10008.1.2.4.90': ['gdcmconv', '-w'],
    '1.2.840.10008.1.2.4.91': ['gdcmconv', '-w'],
}


def decompressed_copy(folder, dest):
    """Copies a case folder, decoding compressed or deflated files with dcmtk / gdcm (independent of ours)."""
    os.makedirs(dest)
    tools = set()
    for name in sorted(os.listdir(folder)):
        src = os.path.join(folder, name)
        dst = os.path.join(dest, name)
        try:
            ts = str(pydicom.dcmread(src, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        except Exception:
            ts = ''
        cmd = DECOMPRESS.get(ts)
        if cmd:
            subprocess.run(cmd + [src, dst], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            tools.add(cmd[0])
        else:
            shutil.copyfile(src, dst)
    return sorted(tools)


def read_niftis(nd):
    import nibabel as nib
    niis = []
    for name in sorted(os.listdir(nd)):
        if name.endswith('.nii') or name.endswith('.nii.gz'):
            img = nib.load(os.path.join(nd, name))
            data = np.asarray(img.dataobj, dtype=np.float64)
            if data.ndim == 2:
                data = data[:, :, None]
            niis.append({'name': name, 'shape': list(data.shape[:3]), 'affine': img.affine.tolist(),
                         'data': data.reshape(-1, order='F').tolist()})
    return niis


def require_tools(names):
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        sys.exit(f'make_dicom_fixtures.py: missing {", ".join(missing)} (Debian packages: dcmtk for dcmconv/dcmdrle/'
                 'dcmdjpeg/dcmdjpls/dcmcrle/dcmcjpeg/dcmcjpls, libgdcm-tools for gdcmconv, dcm2niix)')


def dump(root, cases, with_dcm2niix):
    """JSON on stdout: per case, pydicom's decoding of every file (after dcmtk/gdcm decompression of compressed
    files) and, with_dcm2niix, nibabel's reading of what dcm2niix converts (from the original files, or from
    the decompressed copy when this dcm2niix cannot read the transfer syntax)."""
    require_tools(['dcmconv', 'dcmdrle', 'dcmdjpeg', 'dcmdjpls', 'gdcmconv'] + (['dcm2niix'] if with_dcm2niix else []))
    out = {}
    tmp = tempfile.mkdtemp(prefix='dicom-ref-')
    try:
        for case in cases:
            folder = os.path.join(root, case)
            plain = os.path.join(tmp, 'plain', case)
            tools = decompressed_copy(folder, plain)
            files = []
            for name in sorted(os.listdir(plain)):
                try:
                    ds = pydicom.dcmread(os.path.join(plain, name))
                except Exception as e:  # not DICOM
                    files.append({'name': name, 'error': str(e)[:200]})
                    continue
                entry = {'name': name, 'modality': str(ds.get('Modality', ''))}
                try:
                    arr = ds.pixel_array
                except Exception as e:
                    entry['error'] = str(e)[:200]
                    files.append(entry)
                    continue
                frames = arr.reshape((-1,) + arr.shape[-2:]).astype(np.float64)
                if 'PerFrameFunctionalGroupsSequence' in ds:
                    hu, pos = [], []
                    for f, g in enumerate(ds.PerFrameFunctionalGroupsSequence):
                        pvs = g.get('PixelValueTransformationSequence') or \
                            ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
                        pv = pvs[0]
                        hu.append(frames[f] * float(pv.RescaleSlope) + float(pv.RescaleIntercept))
                        pos.append([float(v) for v in g.PlanePositionSequence[0].ImagePositionPatient])
                    entry['positions'] = pos
                    entry['hu'] = [h.ravel().tolist() for h in hu]
                    entry['raw'] = [f.ravel().tolist() for f in frames]
                else:
                    s = float(ds.get('RescaleSlope', 1.0))
                    b = float(ds.get('RescaleIntercept', 0.0))
                    entry['positions'] = [[float(v) for v in ds.ImagePositionPatient]]
                    entry['hu'] = [(frames[0] * s + b).ravel().tolist()]
                    entry['raw'] = [frames[0].ravel().tolist()]
                files.append(entry)
            case_out = {'files': files, 'decompressedWith': tools}
            if with_dcm2niix:
                nd = os.path.join(tmp, 'nii', case)
                os.makedirs(nd)
                r = subprocess.run(['dcm2niix', '-z', 'n', '-b', 'n', '-f', 'series%s', '-o', nd, folder],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                niis = read_niftis(nd)
                case_out['dcm2niixInput'] = 'original'
                if not niis and tools:
                    nd2 = os.path.join(tmp, 'nii2', case)
                    os.makedirs(nd2)
                    r = subprocess.run(['dcm2niix', '-z', 'n', '-b', 'n', '-f', 'series%s', '-o', nd2, plain],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    niis = read_niftis(nd2)
                    case_out['dcm2niixInput'] = 'decompressed with ' + ', '.join(tools)
                case_out['dcm2niixLog'] = r.stdout[-2000:]
                case_out['nifti'] = niis
            out[case] = case_out
    finally:
        shutil.rmtree(tmp)
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    if len(sys.argv) >= 2 and sys.argv[1] == '--dump':
        args = sys.argv[2:]
        with_dcm2niix = '--no-dcm2niix' not in args
        cases = [a for a in args if not a.startswith('--')] or sorted(os.listdir(ROOT))
        dump(ROOT, cases, with_dcm2niix)
    else:
        make_all()
        total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ROOT) for f in fs)
        print(f'wrote {ROOT} ({total} bytes)')
