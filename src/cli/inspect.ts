/**
 * `covidct inspect <path>`: what a scan or weights file holds, without a GPU. For a DICOM folder: every series
 * found (and why any was split), the files skipped and why, the series `analyze` would choose (or why none),
 * then that series read: dimensions, spacing, orientation code, HU range, transfer syntax. For a DICOM file:
 * its header and its pixels decoded (so a codec failure shows), whatever its modality. For a NIfTI file: its
 * header and the volume read. For a weights file: its metadata, config and tensors.
 * @module
 */
import { parseArgs } from 'node:util';
import { axisCodes } from '../analysis/grid.js';
import { weightsInfo } from '../analysis/weights-info.js';
import { ScanError } from '../io/errors.js';
import { chooseSeries, describeDicomFile, readDicomSeries, transferSyntaxName } from '../io/dicom/index.js';
import { readNifti, readNiftiHeader } from '../io/nifti.js';
import { parseSafetensors } from '../io/safetensors.js';
import { checkWeights, openWeights, WeightsError } from '../models/load.js';
import { checkScan, detectScan, readScan, readScanFile, safetensorsVolume, scanDicomFolder, shortPath } from '../node/scan-path.js';
import { VolumeError, type Volume } from '../volume/volume.js';
import { errorLine, EXIT, UsageError, type CliIO } from './common.js';

export const INSPECT_HELP = `usage: covidct inspect <path> [--series UID] [--debug]
  <path>  a DICOM folder or file, a NIfTI file, a safetensors scan ('hu') or a weights file; no GPU needed`;

function range(v: Volume): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of v.data) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

function volumeLines(v: Volume): string[] {
  const [lo, hi] = range(v);
  return [
    `  dimensions: ${v.dims.join(' x ')} (columns x rows x slices)`,
    `  spacing: ${v.spacing.map((s) => +s.toFixed(4)).join(' x ')} mm`,
    `  orientation: ${axisCodes(v.affine, v.space)}`,
    `  HU range: ${lo} .. ${hi}`,
    ...(v.source.transferSyntax?.length ? [`  transfer syntax: ${v.source.transferSyntax.map((t) => `${t} (${transferSyntaxName(t)})`).join(', ')}`] : []),
    ...v.source.notes.map((n) => `  note: ${n}`),
  ];
}

/** The inspect command. */
export async function inspectCommand(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { series: { type: 'string' }, debug: { type: 'boolean' }, help: { type: 'boolean' } } });
  if (values.help) {
    io.stdout(INSPECT_HELP + '\n');
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(`inspect takes one path, got ${positionals.length}`);
  const path = positionals[0]!;
  const kind = await detectScan(path);
  const out: string[] = [];
  const say = (s: string) => out.push(s);
  let code: number = EXIT.ok;
  // What analyze would refuse: the same readers and the same checks (checkScan, checkWeights), reported here with
  // exit code 3 instead of stopping the description.
  const refused = (e: unknown, prefix: string, suffix = '') => {
    if (!(e instanceof ScanError || e instanceof VolumeError || e instanceof WeightsError)) throw e;
    say(`${prefix}${e instanceof ScanError ? e.problem : e instanceof WeightsError ? errorLine(e).replace(/^covidct: (.*?: )?/, '') : e.message}${suffix}`);
    code = EXIT.input;
  };
  const analysable = async (read: () => Promise<Volume>) => {
    let v: Volume;
    try {
      v = await read();
    } catch (e) {
      return refused(e, '  cannot be read: ');
    }
    out.push(...volumeLines(v));
    try {
      checkScan(v, path);
    } catch (e) {
      refused(e, '  analyze cannot use it: ');
    }
  };
  try {
    if (kind === 'dicom-folder') {
      const scan = await scanDicomFolder(path);
      say(`${path}: DICOM folder, ${scan.series.length} series, ${scan.skipped.length} file(s) skipped`);
      for (const s of scan.series) {
        say(`  series ${s.key}: ${s.modality || 'no modality'}${s.isLocalizer ? ' localizer' : ''}, "${s.description}", ${s.slices} slice(s) of ${s.columns} x ${s.rows}, ${s.files.length} file(s), ${s.transferSyntaxes.map((t) => `${t} (${transferSyntaxName(t)})`).join(', ')}${s.isCT ? '' : ' (not CT)'}`);
        if (s.splitReason) say(`    split: ${s.splitReason}`);
      }
      for (const sk of scan.skipped.slice(0, 20)) say(`  skipped ${shortPath(sk.path, path)}: ${sk.reason}`);
      if (scan.skipped.length > 20) say(`  ... and ${scan.skipped.length - 20} more skipped`);
      for (const n of scan.notes) say(`  note: ${n}`);
      let chosen;
      try {
        chosen = chooseSeries(scan, values.series);
      } catch (e) {
        refused(e, '  chosen: none (', ')');
      }
      if (chosen) {
        say(`  chosen: series ${chosen.key} (${values.series ? 'asked for' : 'the CT series with the most slices'})`);
        await analysable(() => readDicomSeries(scan, chosen, readScanFile));
      }
    } else if (kind === 'dicom-file') {
      const d = await describeDicomFile(await readScanFile(path), path);
      say(`${path}: DICOM file, ${d.modality || 'no modality'}, SOP class ${d.sopClassUID || 'none'}`);
      say(`  series ${d.seriesUID || '(none)'} "${d.seriesDescription}"${d.imageType.length ? `, image type ${d.imageType.join('\\')}` : ''}`);
      say(`  transfer syntax: ${d.transferSyntaxName}`);
      say(`  ${d.columns} x ${d.rows}, ${d.frames} frame(s), ${d.bitsStored}/${d.bitsAllocated} bits ${d.pixelRepresentation ? 'signed' : 'unsigned'}, ${d.photometric}`);
      if (d.pixelSpacing) say(`  pixel spacing: ${d.pixelSpacing.join(' x ')} mm`);
      if (d.orientation) say(`  orientation (ImageOrientationPatient): ${d.orientation.map((v) => +v.toFixed(4)).join('\\')}`);
      if (d.position) say(`  position (ImagePositionPatient): ${d.position.map((v) => +v.toFixed(3)).join('\\')}`);
      if (d.valueRange) say(`  value range: ${d.valueRange[0]} .. ${d.valueRange[1]}${d.paddingVoxels ? ` (${d.paddingVoxels} padding voxels)` : ''}`);
      for (const n of d.notes) say(`  note: ${n}`);
      // As analyze reads it: the file as a series of one (CT only), then the same checks.
      await analysable(async () => (await readScan(path, values.series !== undefined ? { series: values.series } : {})).volume);
    } else if (kind === 'nifti') {
      const bytes = await readScanFile(path);
      const h = await readNiftiHeader(bytes, path);
      say(`${path}: NIfTI-${h.version}${h.gzipped ? ' (gzip)' : ''}, ${h.littleEndian ? 'little' : 'big'} endian, dims ${h.dims.join(' x ')}, ${h.datatypeName}${h.datatypeSupported ? '' : ' (not supported)'}`);
      say(`  affine from ${h.affineFrom} (qform_code ${h.qformCode}, sform_code ${h.sformCode}), orientation ${h.axcodes}, spacing ${h.spacing.map((s) => +s.toFixed(4)).join(' x ')} ${h.spatialUnit}`);
      say(`  scl_slope ${h.sclSlope}, scl_inter ${h.sclInter}; intent ${h.intentCode}${h.intentName ? ` (${h.intentName})` : ''}; descrip "${h.description}"`);
      await analysable(() => readNifti(bytes, path));
    } else if (kind === 'safetensors') {
      const bytes = await readScanFile(path);
      const f = parseSafetensors(bytes, path);
      if (f.has('hu')) {
        say(`${path}: safetensors scan`);
        await analysable(async () => safetensorsVolume(bytes, path));
      } else {
        const w = weightsInfo(path, f.metadata, null);
        say(`${path}: safetensors, ${f.tensors.length} tensors${f.metadata['covidct.config'] ? ', covidct weights' : ''}`);
        say(`  notice: ${w.notice}`);
        for (const [k, v] of Object.entries(f.metadata)) say(`  ${k}: ${v}`);
        for (const t of f.tensors) say(`  tensor ${t.name} ${t.dtype} [${t.shape.join(', ')}]`);
        // As --weights takes them: the config and every tensor against the graphs it builds.
        try {
          checkWeights(openWeights(bytes, path));
        } catch (e) {
          refused(e, '  analyze cannot use these weights: ');
        }
      }
    } else throw new ScanError(path, 'not a DICOM, NIfTI or safetensors file (unrecognised content)', 'malformed');
  } catch (e) {
    if (out.length) io.stdout(out.join('\n') + '\n');
    throw e;
  }
  io.stdout(out.join('\n') + '\n');
  if (code !== EXIT.ok) io.stderr(errorLine(new ScanError(path, 'described, but analyze cannot use it (see above)', 'unusable')) + '\n');
  return code;
}
