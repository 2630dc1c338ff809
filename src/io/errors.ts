/**
 * The typed error every scan reader (NIfTI, DICOM, pixel decoders) throws for bad input: it names the file and
 * the problem in one line, so the CLI can print it without a stack trace and the web page can show it.
 * @module
 */

/** What kind of problem, for exit codes and for tests that must tell them apart. */
export type ScanErrorKind =
  /** The bytes are not a valid file of the format (truncated, corrupt, impossible header values). */
  | 'malformed'
  /** A valid file that this program does not handle (a transfer syntax, a datatype, 5 volumes). */
  | 'unsupported'
  /** Valid files that do not make a volume the analysis can use (no CT, 2-D, mismatched slices, geometry). */
  | 'unusable'
  /** Nothing to read (an empty folder, no image objects). */
  | 'empty';

/** A scan that cannot be read, naming the file (or folder) and the problem. */
export class ScanError extends Error {
  constructor(
    /** The file or folder the problem is in ('' when the bytes came without a name). */
    readonly path: string,
    /** The problem, without the path. */
    readonly problem: string,
    readonly kind: ScanErrorKind = 'malformed',
  ) {
    super(path ? `${path}: ${problem}` : problem);
    this.name = 'ScanError';
  }
}
