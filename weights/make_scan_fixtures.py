#!/usr/bin/env python3
"""Write the NIfTI fixtures of test/nifti.test.ts and test/volume.test.ts with nibabel (Debian's python3-nibabel),
and record what nibabel itself reads from each file, so the tests check our reader against an independent one.

    /usr/bin/python3 weights/make_scan_fixtures.py        (a second or two; writes test/fixtures/scans/nifti/)

Files (7 x 6 x 5 voxels unless said, a few KB each):

* good files, one per case: every datatype we read (uint8, int8, int16, uint16, int32, uint32, float32, float64),
  big endian, vox_offset not a multiple of the voxel size (353 for int16, 354 for big-endian float32), NIfTI-2
  (little and big endian), ``.nii.gz`` (nibabel's own gzip writer; several gzip members:
  Python's gzip of three parts concatenated, one member's header with every optional field, zero padding after
  the last member, and bgzip's BGZF blocks, made by Debian's bgzip from the tabix package), scl_slope/scl_inter
  (integer and non-integer results, slope 0 and NaN meaning none), sform only, qform only (qfac -1), both
  (different: the sform must win), neither (pixdim only, nibabel's fall-back affine), oblique, sagittal and
  coronal storage, RAS and LPI storage, 4-D with one volume, 2-D, NaN / infinite voxels.
  Headers are nibabel's (``Nifti1Header`` / ``Nifti2Header`` set up and serialised by nibabel), the voxels
  written after them raw (so scaling and header fields are exactly as set here; nibabel's image writer would
  choose its own scaling). ``expected.json`` holds, for each, what ``nib.load`` gives: ``shape``, ``affine``
  (``img.affine``, rows), ``axcodes`` (``nib.aff2axcodes``), ``zooms``, ``on_disk_dtype`` and ``values``
  (``img.get_fdata()`` flattened x fastest, NaN and infinities as null).
* bad files (``bad`` in expected.json, with the ScanError kind and a pattern of the message): truncated ``.nii``
  and ``.nii.gz`` (a cut gzip stream, and a whole gzip stream of a cut file), impossible dimensions with a tiny
  file (NIfTI-1 32767^3, NIfTI-2 2^30^3, plain and gzipped), a zero and a negative dimension, dim[0] = 8,
  vox_offset past the end and inside the header, not a NIfTI file, too short for a header, 5 volumes, int64 and
  complex64 datatypes, a header/image pair header, an impossible qform quaternion.
* ``axcodes_cases`` in expected.json: nibabel's ``aff2axcodes`` of 120 random general (sheared) affines.
"""
import gzip
import hashlib
import io
import json
import math
import os
import struct
import subprocess
import zlib

import numpy as np
import nibabel as nib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'scans', 'nifti')
SHAPE = (7, 6, 5)

# A typical dcm2niix/nibabel axial CT affine: LAS (x flipped), 0.7 x 0.8 x 2.5 mm.
A_LAS = np.array([[-0.7, 0, 0, 90.5], [0, 0.8, 0, -120.25], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])


def rot(axis, deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    m = np.eye(4)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def affine(cols, zooms, trans):
    """Affine whose voxel axes run along the given unit world directions (columns) with the given sizes."""
    a = np.eye(4)
    for k in range(3):
        a[:3, k] = np.asarray(cols[k], float) * zooms[k]
    a[:3, 3] = trans
    return a


A_OBLIQUE = rot(0, 20) @ rot(2, 10) @ A_LAS
A_OBLIQUE_QFAC = rot(1, -15) @ affine([(1, 0, 0), (0, 1, 0), (0, 0, -1)], (0.6, 0.75, 3.0), (-80.0, 95.0, 40.0))
# Sagittal storage: i runs anterior -> posterior, j superior -> inferior, k right -> left... here k towards R.
A_SAGITTAL = affine([(0, -1, 0), (0, 0, -1), (1, 0, 0)], (0.8, 0.9, 2.0), (-60.0, 110.0, 75.0))
A_CORONAL = affine([(-1, 0, 0), (0, 0, -1), (0, 1, 0)], (0.7, 0.75, 3.0), (100.0, -40.0, 60.0))
A_RAS = affine([(1, 0, 0), (0, 1, 0), (0, 0, 1)], (0.9, 0.9, 1.5), (-95.0, -100.0, -50.0))
A_LPI = affine([(-1, 0, 0), (0, -1, 0), (0, 0, -1)], (0.5, 0.6, 1.25), (80.0, 90.0, 10.0))


def data_for(dtype, seed, shape=SHAPE):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    lohi = {
        'u1': (0, 255), 'i1': (-128, 127), 'i2': (-1024, 3071), 'u2': (0, 65535),
        'i4': (-100000, 100000), 'u4': (0, 4_000_000_000), 'i8': (-5, 5),
    }
    kind = np.dtype(dtype).str[1:]
    if kind in lohi:
        lo, hi = lohi[kind]
        v = rng.integers(lo, hi, size=n, endpoint=True)
        v[:2] = [lo, hi]
    elif kind.startswith('f'):
        v = rng.normal(-300, 500, size=n)
    elif kind.startswith('c'):
        v = rng.normal(size=n) + 1j * rng.normal(size=n)
    else:
        raise ValueError(kind)
    return v.astype(dtype).reshape(shape, order='F')


def header(version=1, endian='<', qform=None, qcode=0, sform=None, scode=0, pixdim=None):
    hdr = (nib.Nifti1Header if version == 1 else nib.Nifti2Header)(endianness=endian)
    if qform is not None:
        hdr.set_qform(qform, code=qcode)
    else:
        hdr['qform_code'] = 0
    if sform is not None:
        hdr.set_sform(sform, code=scode)
    else:
        hdr['sform_code'] = 0
    if pixdim is not None:
        hdr['pixdim'][1:1 + len(pixdim)] = pixdim
    return hdr


def raw_file(hdr, data, slope=None, inter=None, offset=None):
    """Header serialised by nibabel, then the voxels as they are (Fortran order, the header's byte order), from
    byte ``offset`` when given (zeros between the header and it)."""
    hdr = hdr.copy()
    hdr.set_data_shape(data.shape)
    hdr.set_data_dtype(data.dtype.newbyteorder('='))
    if offset is not None:
        hdr.set_data_offset(offset)
    if slope is not None:
        hdr['scl_slope'] = slope
        hdr['scl_inter'] = inter
    buf = io.BytesIO()
    hdr.write_to(buf)
    off = hdr.get_data_offset()
    assert buf.tell() <= off, (buf.tell(), off)
    buf.write(b'\0' * (off - buf.tell()))
    buf.write(np.asarray(data, dtype=hdr.get_data_dtype()).tobytes(order='F'))
    return buf.getvalue()


def gzip_member_all_fields(data):
    """One gzip member whose header has FEXTRA, FNAME, FCOMMENT and FHCRC (RFC 1952), written by hand: Python's
    gzip writes none of them but FNAME."""
    extra = b'AB' + struct.pack('<H', 3) + b'xyz'
    head = b'\x1f\x8b\x08' + bytes([2 | 4 | 8 | 16]) + struct.pack('<I', 0) + b'\x00\xff'
    head += struct.pack('<H', len(extra)) + extra + b'part.nii\x00' + b'a comment\x00'
    head += struct.pack('<H', zlib.crc32(head) & 0xffff)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return head + c.compress(data) + c.flush() + struct.pack('<II', zlib.crc32(data), len(data) & 0xffffffff)


def jsonable(x):
    return [None if not np.isfinite(v) else float(v) for v in x]


def describe(path):
    img = nib.load(path)
    data = img.get_fdata()
    if data.ndim == 4:
        data = data[..., 0]
    hdr = img.header
    return {
        'shape': [int(s) for s in img.shape],
        'affine': img.affine.tolist(),
        'axcodes': ''.join(nib.aff2axcodes(img.affine)),
        'zooms': [float(z) for z in hdr.get_zooms()],
        'on_disk_dtype': hdr.get_data_dtype().name,
        'byteorder': '>' if hdr.endianness == '>' else '<',
        'values': jsonable(data.reshape(-1, order='F')),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    good = {}
    bad = {}

    def put(name, blob):
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(blob)

    def add(name, blob):
        put(name, blob)
        good[name] = describe(os.path.join(OUT, name))

    typical = dict(qform=A_LAS, qcode=1, sform=A_LAS, scode=1)
    for seed, dt in enumerate(['u1', 'i1', 'i2', 'u2', 'i4', 'u4', 'f4', 'f8']):
        name = {'u1': 'uint8', 'i1': 'int8', 'i2': 'int16', 'u2': 'uint16', 'i4': 'int32', 'u4': 'uint32',
                'f4': 'float32', 'f8': 'float64'}[dt]
        add(f'{name}.nii', raw_file(header(**typical), data_for('<' + dt, seed)))
    add('float32_integers.nii', raw_file(header(**typical), np.round(data_for('<f4', 20)).astype('<f4')))
    add('int16_be.nii', raw_file(header(endian='>', **typical), data_for('>i2', 21)))
    add('float64_be.nii', raw_file(header(endian='>', **typical), data_for('>f8', 22)))
    add('uint16_be.nii', raw_file(header(endian='>', **typical), data_for('>u2', 23)))
    # vox_offset not a multiple of the voxel size (allowed; nibabel reads it): the voxels start unaligned.
    add('odd_offset.nii', raw_file(header(**typical), data_for('<i2', 57), offset=353))
    add('odd_offset_float32_be.nii', raw_file(header(endian='>', **typical), data_for('>f4', 58), offset=354))
    add('nifti2.nii', raw_file(header(version=2, **typical), data_for('<i2', 24)))
    add('nifti2_be_qform.nii', raw_file(header(version=2, endian='>', qform=A_OBLIQUE_QFAC, qcode=1), data_for('>f4', 25)))

    # gzip, by nibabel's own writer (the image's data as int16, no scaling) and by Python's gzip of our raw files.
    img = nib.Nifti1Image(data_for('<i2', 26), A_LAS)
    img.set_data_dtype(np.int16)
    img.header.set_qform(A_LAS, code=1)
    img.header.set_sform(A_LAS, code=1)
    nib.save(img, os.path.join(OUT, 'int16.nii.gz'))
    good['int16.nii.gz'] = describe(os.path.join(OUT, 'int16.nii.gz'))
    add('nifti2_float32.nii.gz', gzip.compress(raw_file(header(version=2, **typical), data_for('<f4', 27)), mtime=0))
    # Several members: read as one stream by zlib (Node), Python's gzip and nibabel; Chromium's DecompressionStream
    # reads one member only, so the reader goes member by member there.
    multi = raw_file(header(**typical), data_for('<i2', 55))
    add('multi_member.nii.gz', gzip.compress(multi[:100], mtime=0) + gzip_member_all_fields(multi[100:500]) + gzip.compress(multi[500:], mtime=0))
    add('zero_padded.nii.gz', gzip.compress(raw_file(header(**typical), data_for('<i2', 56)), mtime=0) + b'\0' * 24)
    ramp = (np.arange(48 * 40 * 24) % 2000 - 1000).astype('<i2').reshape((48, 40, 24), order='F')
    bgz = subprocess.run(['bgzip', '-c'], input=raw_file(header(**typical), ramp), capture_output=True, check=True).stdout
    put('bgzip.nii.gz', bgz)
    # 46,080 values would add 250 KB to expected.json: nibabel's values go in as the SHA-256 of their float64 bytes.
    d = describe(os.path.join(OUT, 'bgzip.nii.gz'))
    vals = np.asarray(nib.load(os.path.join(OUT, 'bgzip.nii.gz')).get_fdata()).reshape(-1, order='F')
    assert np.array_equal(vals, ramp.reshape(-1, order='F'))
    d['values'] = None
    d['values_sha256'] = hashlib.sha256(vals.astype('<f8').tobytes()).hexdigest()
    d['values_int16'] = True
    good['bgzip.nii.gz'] = d

    add('scaled_integer.nii', raw_file(header(**typical), data_for('<i2', 28) + 1024, slope=1.0, inter=-1024.0))
    add('scaled_float.nii', raw_file(header(**typical), data_for('<i2', 29), slope=0.5, inter=-1000.25))
    add('scaled_uint8.nii', raw_file(header(**typical), data_for('<u1', 30), slope=2.0, inter=-100.0))
    add('scaled_float32.nii', raw_file(header(**typical), data_for('<f4', 31), slope=1.5, inter=10.0))
    add('slope_zero.nii', raw_file(header(**typical), data_for('<i2', 32), slope=0.0, inter=5.0))
    add('slope_nan.nii', raw_file(header(**typical), data_for('<i2', 33), slope=float('nan'), inter=5.0))

    add('sform_only.nii', raw_file(header(sform=A_OBLIQUE, scode=2), data_for('<i2', 34)))
    add('qform_only_qfac.nii', raw_file(header(qform=A_OBLIQUE_QFAC, qcode=1), data_for('<i2', 35)))
    add('qform_and_sform_differ.nii', raw_file(header(qform=A_OBLIQUE_QFAC, qcode=1, sform=A_OBLIQUE, scode=1), data_for('<i2', 36)))
    add('pixdim_only.nii', raw_file(header(pixdim=(0.8, 0.9, 3.0)), data_for('<i2', 37)))
    add('oblique.nii', raw_file(header(qform=A_OBLIQUE, qcode=1, sform=A_OBLIQUE, scode=1), data_for('<i2', 38)))
    for name, a, seed in [('sagittal.nii', A_SAGITTAL, 39), ('coronal.nii', A_CORONAL, 40), ('ras.nii', A_RAS, 41), ('lpi.nii', A_LPI, 42)]:
        add(name, raw_file(header(qform=a, qcode=1, sform=a, scode=1), data_for('<i2', seed)))
    add('four_d_one_volume.nii', raw_file(header(**typical), data_for('<i2', 43, SHAPE + (1,))))
    add('two_d.nii', raw_file(header(**typical), data_for('<i2', 44, SHAPE[:2])))
    nan = data_for('<f4', 45)
    nan[0, 0, 0], nan[3, 2, 1], nan[6, 5, 4], nan[1, 1, 1] = np.nan, np.inf, -np.inf, np.nan
    add('nan.nii', raw_file(header(**typical), nan))
    nan_int = np.round(data_for('<f4', 46))
    nan_int[2, 2, 2] = np.nan
    add('nan_integers.nii', raw_file(header(**typical), nan_int.astype('<f4')))

    # Bad files. A valid int16 file to cut and edit (header 348 + 4, data 7*6*5*2 = 420 bytes).
    base = raw_file(header(**typical), data_for('<i2', 50))
    assert len(base) == 352 + 420

    def set_at(blob, fmt, offset, *values):
        b = bytearray(blob)
        struct.pack_into(fmt, b, offset, *values)
        return bytes(b)

    def add_bad(name, blob, kind, pattern):
        put(name, blob)
        bad[name] = {'kind': kind, 'pattern': pattern}

    add_bad('truncated.nii', base[:352 + 100], 'malformed', r'expected 772 bytes.*found 452')
    add_bad('truncated.nii.gz', gzip.compress(base, mtime=0)[:-40], 'malformed', r'corrupt or truncated')
    add_bad('short_data.nii.gz', gzip.compress(base[:352 + 300], mtime=0), 'malformed', r'expected 772 bytes.*found 652 after decompression')
    add_bad('huge_dims.nii', set_at(base, '<8h', 40, 3, 32767, 32767, 32767, 1, 1, 1, 1), 'malformed', r'impossible NIfTI header: 32767 x 32767 x 32767 = \d+ int16 voxels .* in a file of 772 bytes')
    n2 = raw_file(header(version=2, **typical), data_for('<i2', 51))
    huge2 = set_at(n2, '<8q', 16, 3, 2 ** 30, 2 ** 30, 2 ** 30, 1, 1, 1, 1)
    add_bad('huge_dims_nifti2.nii', huge2, 'malformed', r'impossible NIfTI header: 1073741824 x 1073741824 x 1073741824 = .* in a file of 964 bytes')
    add_bad('huge_dims_nifti2.nii.gz', gzip.compress(huge2, mtime=0), 'unsupported', r'voxels, more than the 2147483648')
    add_bad('zero_dim.nii', set_at(base, '<h', 44, 0), 'malformed', r'dim\[2\] is 0')
    add_bad('negative_dim.nii', set_at(base, '<h', 46, -5), 'malformed', r'dim\[3\] is -5')
    add_bad('dim0_8.nii', set_at(base, '<h', 40, 8), 'malformed', r'dim\[0\].* is 8')
    add_bad('vox_offset_past_end.nii', set_at(base, '<f', 108, 100000.0), 'malformed', r'expected 100420 bytes.*found 772')
    add_bad('vox_offset_in_header.nii', set_at(base, '<f', 108, 100.0), 'malformed', r'vox_offset is 100')
    add_bad('not_nifti.nii', b'this is not a NIfTI file\n' * 20, 'malformed', r'not a NIfTI file: sizeof_hdr')
    add_bad('too_short.nii', base[:200], 'malformed', r'too short for a NIfTI header: 200 bytes')
    add_bad('empty.nii.gz', gzip.compress(b'', mtime=0), 'malformed', r'too short for a NIfTI header: 0 bytes')
    add_bad('five_volumes.nii', raw_file(header(**typical), data_for('<i2', 52, SHAPE + (5,))), 'unsupported', r'5 volumes')
    add_bad('int64.nii', raw_file(header(**typical), data_for('<i8', 53)), 'unsupported', r'datatype 1024 \(int64\)')
    add_bad('complex64.nii', raw_file(header(**typical), data_for('<c8', 54)), 'unsupported', r'datatype 32 \(complex64\)')
    add_bad('pair_header.hdr', set_at(base[:348], '4s', 344, b'ni1\0'), 'unsupported', r'header/image pair')
    add_bad('bad_quaternion.nii', set_at(set_at(base, '<h', 254, 0), '<3f', 256, 0.9, 0.9, 0.9), 'malformed', r'quaternion')

    # nibabel agrees these are unreadable as they are (a sanity check of the fixtures themselves; it reads a zero
    # dimension as an empty image, which we refuse).
    for name in ['truncated.nii', 'huge_dims.nii', 'bad_quaternion.nii']:
        try:
            img = nib.load(os.path.join(OUT, name))
            img.get_fdata()
            img.affine  # noqa: B018
            if name == 'bad_quaternion.nii':
                img.header.get_qform()
            raise SystemExit(f'nibabel read bad fixture {name}')
        except SystemExit:
            raise
        except Exception:
            pass

    # nibabel's aff2axcodes of random general (sheared, badly conditioned) affines: the nearest-rotation step of
    # io_orientation matters for these, not for the fixtures' orthogonal ones.
    rng = np.random.default_rng(99)
    axcases = []
    for _ in range(120):
        a = np.eye(4)
        a[:3, :3] = np.round(rng.normal(size=(3, 3)), 3)
        a[:3, 3] = np.round(rng.normal(scale=50, size=3), 2)
        if abs(np.linalg.det(a[:3, :3])) < 1e-2:
            continue
        axcases.append({'affine': a.tolist(), 'axcodes': ''.join(nib.aff2axcodes(a))})

    # One line per file, to keep the file small and its diffs readable.
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        f.write('{"nibabel": %s,\n "axcodes_cases": [\n' % json.dumps(nib.__version__))
        f.write(',\n'.join('  ' + json.dumps(c, separators=(',', ':')) for c in axcases))
        f.write('\n ],\n "good": {\n')
        f.write(',\n'.join(f'  {json.dumps(k)}: {json.dumps(v, separators=(",", ":"))}' for k, v in good.items()))
        f.write('\n },\n "bad": {\n')
        f.write(',\n'.join(f'  {json.dumps(k)}: {json.dumps(v)}' for k, v in bad.items()))
        f.write('\n }\n}\n')
    total = sum(os.path.getsize(os.path.join(OUT, x)) for x in os.listdir(OUT))
    print(f'{len(good)} good and {len(bad)} bad NIfTI fixtures, {total} bytes in {os.path.relpath(OUT)}')


if __name__ == '__main__':
    main()
